"""Small objectives the sampler tests share."""

from __future__ import annotations

import optuna

from optuna_nas import spaces
from optuna_nas.samplers import AgingEvolutionSampler
from optuna_nas.samplers import MetaQNNSampler

NB201 = spaces.NASBench201Space()
SCORES = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0, "avg_pool_3x3": 0.5}


def nb201_score(trial: optuna.Trial) -> float:
    """A tabular stand-in: more 3x3 convs, more reward; instant and deterministic."""
    spec = NB201.suggest(trial)
    return sum(SCORES[op] for op in spec.ops) + 0.01 * spec.ops.index(spec.ops[-1])


def nb201_two_objectives(trial: optuna.Trial) -> tuple[float, float]:
    spec = NB201.suggest(trial)
    convs = sum(op.startswith("nor_conv") for op in spec.ops)
    return sum(SCORES[op] for op in spec.ops), float(convs)


def trained_architectures(study: optuna.Study) -> list[tuple]:
    """The architectures trained, after checking that each appears once and that every other trial
    yielded, untrained, to a complete trial with the same params."""
    trained = [t for t in study.trials if "optuna_nas:duplicate_of" not in t.system_attrs]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trained)
    for yielded in (t for t in study.trials if "optuna_nas:duplicate_of" in t.system_attrs):
        holder = study.trials[yielded.system_attrs["optuna_nas:duplicate_of"]]
        assert yielded.state == optuna.trial.TrialState.PRUNED and holder.state == optuna.trial.TrialState.COMPLETE
        assert holder.params == yielded.params
    architectures = [tuple(t.params.values()) for t in trained]
    assert len(set(architectures)) == len(architectures)
    return architectures


class Counting:
    """Counts the learn calls of the sampler it is mixed into."""

    learn_calls = 0

    def learn(self, state, episode):
        self.learn_calls += 1
        return super().learn(state, episode)


class CountingMetaQNN(Counting, MetaQNNSampler):
    pass


class CountingEvolution(Counting, AgingEvolutionSampler):
    pass
