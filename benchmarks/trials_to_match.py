"""How many trials one sampler needs to reach another's answer, from ``nasbench201.py --out`` files.

    python benchmarks/trials_to_match.py --target evo-200.json:evolution \
        --candidate results-100.json:evolution-guided

The target's answer is its best signal (12-epoch validation accuracy) at the end of its budget. For
the candidate, the script reports the first trial at which its mean best-signal curve (over seeds)
reaches the target's mean, and per seed (the same seeds in both files) the first trial at which the
candidate's best signal reaches that seed's target answer.
"""

from __future__ import annotations

import argparse
import json
import statistics


def load_runs(spec: str) -> tuple[int, dict[int, dict]]:
    """``path:sampler`` -> (the file's budget, that sampler's runs by seed)."""
    path, _, sampler = spec.rpartition(":")
    with open(path) as f:
        data = json.load(f)
    runs = {run["seed"]: run for run in data["runs"] if run["sampler"] == sampler}
    if not runs:
        raise SystemExit(f"{spec}: no runs of {sampler!r} in {path}")
    return data["budget"], runs


def first_reaching(curve: list[float], level: float) -> int | None:
    """The 1-based trial at which ``curve`` first reaches ``level``, or ``None``."""
    return next((i + 1 for i, value in enumerate(curve) if value >= level - 1e-9), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="PATH:SAMPLER whose final answer is the level")
    parser.add_argument("--candidate", required=True, help="PATH:SAMPLER whose curve is measured")
    args = parser.parse_args()
    target_budget, targets = load_runs(args.target)
    candidate_budget, candidates = load_runs(args.candidate)
    seeds = sorted(set(targets) & set(candidates))
    level = statistics.mean(targets[s]["curve"][-1] for s in seeds)
    test = statistics.mean(targets[s]["test_200ep"] for s in seeds)
    length = min(len(candidates[s]["curve"]) for s in seeds)
    mean_curve = [statistics.mean(candidates[s]["curve"][i] for s in seeds) for i in range(length)]
    reached = first_reaching(mean_curve, level)
    per_seed = [first_reaching(candidates[s]["curve"], targets[s]["curve"][-1]) for s in seeds]
    within_half = sum(n is not None and n <= target_budget // 2 for n in per_seed)
    print(
        f"target {args.target}: budget {target_budget}, {len(seeds)} seeds, "
        f"mean signal {level:.2f} %, test {test:.2f} %"
    )
    print(
        f"candidate {args.candidate}: its mean curve reaches it at trial "
        f"{reached if reached is not None else f'> {candidate_budget}'} of {candidate_budget}; mean signal at "
        f"{target_budget // 2}: {mean_curve[min(target_budget // 2, length) - 1]:.2f} %"
    )
    found = sorted(n for n in per_seed if n is not None)
    median = f"{statistics.median(found):.0f}" if len(found) > len(per_seed) / 2 else f"> {candidate_budget}"
    print(
        f"per seed: the candidate reaches the target's answer in {len(found)} of {len(seeds)} seeds, "
        f"{within_half} within {target_budget // 2} trials; median trial {median}"
    )


if __name__ == "__main__":
    main()
