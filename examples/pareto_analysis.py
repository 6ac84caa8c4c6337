"""Multi-objective search and Pareto analysis: accuracy against params and FLOPs.

Run:  python examples/pareto_analysis.py

Uses the NAS-Bench-201 table (accuracy) with the real networks' params and FLOPs, so it runs in
seconds; swap in ``objectives.ImageClassification`` for a search that trains.
"""

from __future__ import annotations

import optuna

from optuna_nas import analysis
from optuna_nas import objectives
from optuna_nas import samplers

if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = objectives.NASBench201(objectives.DEFAULT_TABLE, "cifar10", multi_objective=True)
    sampler = samplers.AgingEvolutionSampler(selection="pareto", seed=0)
    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    study.set_metric_names(objective.metric_names)
    study.optimize(objective, n_trials=150)

    front = analysis.pareto_front(study)
    print(f"Pareto front: {len(front)} of {len(study.trials)} cells")
    for trial in front:
        accuracy, params, flops = trial.values
        print(
            f"  {100 * accuracy:6.2f} %  {params / 1e6:5.2f} M params  {flops / 1e6:7.1f} MFLOPs  "
            f"{trial.user_attrs['arch']}"
        )
    reference = [0.0, 2e6, 500e6]
    print(f"hypervolume vs (0 %, 2 M params, 500 MFLOPs): {analysis.hypervolume(study, reference):.4g}")
    paths = analysis.plot_pareto(study, x="flops", y="accuracy", out_dir="pareto-example")
    print(f"plots: {paths['png']}, {paths['html']}")
