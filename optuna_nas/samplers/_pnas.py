"""Progressive NAS (Liu et al., ECCV 2018): grow cells a block at a time, train only what a
predictor ranks best.

Paper: https://arxiv.org/abs/1712.00559
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._decided import is_decided
from optuna_nas._validation import check_int
from optuna_nas.samplers import rewards
from optuna_nas.samplers._base import Decision
from optuna_nas.samplers._base import NASSampler
from optuna_nas.samplers._base import Plan
from optuna_nas.samplers._dedup import DedupKey
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._registry import register_sampler
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import NASBench201Space
from optuna_nas.spaces import Space

#: Stage queues kept in memory per sampler (each a function of the finished trials it was made from).
_QUEUES_KEPT = 16
#: The most candidates ranked once every stage is done (one-step changes of the best cells).
_LATE_CANDIDATES = 2000

Params = dict[str, Any]


class _Growth:
    """How a space's architectures grow: their size, the smallest ones, the children one step up."""

    def __init__(self, space: Space) -> None:
        self.space = space

    @property
    def largest(self) -> int:
        """The size of the space's largest architectures."""
        raise NotImplementedError

    def size(self, params: Params) -> int:
        raise NotImplementedError

    def smallest(self) -> list[Params]:
        raise NotImplementedError

    def children(self, params: Params) -> list[Params]:
        raise NotImplementedError

    def neighbours(self, params: Params) -> list[Params]:
        """The architectures of the same size that differ in one op."""
        raise NotImplementedError

    def names(self) -> frozenset[str]:
        """Every decision the space can ask."""
        raise NotImplementedError


class _CellGrowth(_Growth):
    """PNAS cells (:class:`~optuna_nas.spaces.CellSpace`): a block at a time."""

    space: CellSpace

    @property
    def largest(self) -> int:
        return self.space.max_blocks

    def size(self, params: Params) -> int:
        return int(params["num_blocks"])

    def smallest(self) -> list[Params]:
        return self._with_block({"num_blocks": 1}, 0)

    def children(self, params: Params) -> list[Params]:
        size = self.size(params)
        if size >= self.space.max_blocks:
            return []
        return self._with_block({**params, "num_blocks": size + 1}, size)

    def _with_block(self, params: Params, block: int) -> list[Params]:
        inputs = range(2 + block)
        ops = self.space.ops
        return [
            {
                **params,
                f"block_{block}/input_a": a,
                f"block_{block}/op_a": op_a,
                f"block_{block}/input_b": b,
                f"block_{block}/op_b": op_b,
            }
            for a, op_a, b, op_b in itertools.product(inputs, ops, inputs, ops)
        ]

    def names(self) -> frozenset[str]:
        halves = ("input_a", "op_a", "input_b", "op_b")
        return frozenset(["num_blocks"] + [f"block_{b}/{h}" for b in range(self.space.max_blocks) for h in halves])

    def neighbours(self, params: Params) -> list[Params]:
        out = []
        for block in range(self.size(params)):
            for half in ("a", "b"):
                name = f"block_{block}/op_{half}"
                out += [{**params, name: op} for op in self.space.ops if op != params[name]]
        return out


class _EdgeGrowth(_Growth):
    """NAS-Bench-201 cells (:class:`~optuna_nas.spaces.NASBench201Space`): an edge at a time; the
    size is the number of edges that are not ``none``.
    """

    def __init__(self, space: Space) -> None:
        from optuna_nas.spaces import NB201_EDGES
        from optuna_nas.spaces import NB201_OPS

        super().__init__(space)
        self.names_in_order = [f"edge_{source}_to_{target}" for target, source in NB201_EDGES]
        self.ops = [op for op in NB201_OPS if op != "none"]

    @property
    def largest(self) -> int:
        return len(self.names_in_order)

    def size(self, params: Params) -> int:
        return sum(params[name] != "none" for name in self.names_in_order)

    def smallest(self) -> list[Params]:
        return self.children(dict.fromkeys(self.names_in_order, "none"))

    def children(self, params: Params) -> list[Params]:
        return [{**params, name: op} for name in self.names_in_order if params[name] == "none" for op in self.ops]

    def names(self) -> frozenset[str]:
        return frozenset(self.names_in_order)

    def neighbours(self, params: Params) -> list[Params]:
        return [
            {**params, name: op}
            for name in self.names_in_order
            if params[name] != "none"
            for op in self.ops
            if op != params[name]
        ]


def _growth(space: Space) -> _Growth:
    if isinstance(space, CellSpace):
        if space.min_blocks != 1:
            raise ValueError(f"space: PNAS grows cells from one block; got CellSpace(min_blocks={space.min_blocks}).")
        return _CellGrowth(space)
    if isinstance(space, NASBench201Space):
        return _EdgeGrowth(space)
    raise ValueError(f"space must be a CellSpace or a NASBench201Space, got {space!r}.")


class PNASSampler(NASSampler):
    """Progressive NAS: cells grow one block (NAS-Bench-201: one edge) at a time; a predictor
    chooses which of the larger cells to train.

    Stage 1 evaluates every distinct 1-block cell (``stage_one=n``: a sample of ``n`` of them,
    drawn with the seed). Stage ``b`` = 2 ... ``max_blocks``: the ``beam_size`` best finished
    ``b - 1``-block cells (by reward) are each expanded by one block in every possible way; a
    predictor fitted on every finished trial smaller than ``b`` ranks the expansions; the
    ``beam_size`` best are evaluated. After the last stage, it proposes the predicted best cells not
    yet evaluated among the expansions of the last beam and the one-op changes of the best cells.

    The stages, beams and queues are a function of the study's finished trials, so the sampler is
    rebuilt from storage like the others; with several workers, each takes the first cell of the
    current queue that is neither evaluated nor pending in another worker, and a worker that finds
    its stage's queue all taken goes on to the next stage's queue, made from the trials finished so
    far. No cell is evaluated twice. Cells are told apart by the space's canonical key
    (``space.dedup_key``; cells that compute the same function are one).

    NAS-Bench-201 (``NASBench201Space``) grows by edges: a cell's size is its number of edges that
    are not ``none``; stage 1 is the 24 one-edge cells, and ``max_blocks`` is at most 6. An edge
    into or out of a node that no input-to-output path crosses computes nothing alone, so such a
    child is grown by one edge more: a stage's cells may have one edge more than its number, and
    the stage after it is then empty (from the one-edge cells, stage 2 trains three-edge cells and
    stage 3 has none).

    Trials are rewarded as by every sampler of the package (``reward``); the predictor learns the
    reward. The objective must suggest its architecture from ``space``: a trial whose decisions are
    not this space's fails with a message saying so.

    Args:
        space: A :class:`~optuna_nas.spaces.CellSpace` (``min_blocks=1``) or
            :class:`~optuna_nas.spaces.NASBench201Space`.
        beam_size: K, the cells kept and trained per stage (PNAS: 256).
        max_blocks: B, the last stage; default: the space's largest cell.
        stage_one: How many 1-block cells stage 1 evaluates; ``None``: all distinct ones.
        predictor: An unfitted :class:`~optuna_nas.predictors.Predictor` to copy and fit (PNAS: an
            ensemble of 5 LSTMs or MLPs, :class:`~optuna_nas.predictors.LSTMEnsemble`,
            :class:`~optuna_nas.predictors.MLPEnsemble`); default
            :class:`~optuna_nas.predictors.TreeEnsemble` (a random forest of 100 trees, which
            ranks NAS-Bench-201 cells best in this package's comparison), seeded with the seed.
        seed, reward: As in :class:`~optuna_nas.samplers.NASSampler`.
        pruned: As in :class:`~optuna_nas.samplers.NASSampler`; beams and the predictor read complete
            trials only, so a pruned or failed cell is never expanded (and never trained again).

    Raises:
        ValueError: An argument is out of range or of the wrong kind; the message names it.
    """

    def __init__(
        self,
        *,
        space: Space,
        beam_size: int = 16,
        max_blocks: int | None = None,
        stage_one: int | None = None,
        predictor: Any = None,
        seed: int | None = None,
        reward: rewards.RewardFunction | None = None,
        pruned: str = "last_value",
    ) -> None:
        growth = _growth(space)
        dedup_key: DedupKey = space.dedup_key
        super().__init__(seed=seed, reward=reward, pruned=pruned, dedup_key=dedup_key)
        largest = growth.largest
        self._beam_size = check_int("beam_size", beam_size, minimum=1)
        if self._beam_size > 10_000:
            raise ValueError(f"beam_size must be at most 10000, got {beam_size!r}.")
        self._max_blocks = largest if max_blocks is None else check_int("max_blocks", max_blocks, minimum=1)
        if self._max_blocks > largest:
            raise ValueError(f"max_blocks must be at most {largest} in this space, got {max_blocks!r}.")
        smallest = _distinct(growth.smallest(), dedup_key)
        if stage_one is not None:
            check_int("stage_one", stage_one, minimum=1)
            order = np.random.default_rng([self.seed, 1]).permutation(len(smallest))
            smallest = [smallest[int(i)] for i in sorted(order[:stage_one])]
        from optuna_nas.predictors import Predictor

        if predictor is not None and not isinstance(predictor, Predictor):
            raise ValueError(f"predictor must be an optuna_nas.predictors.Predictor, got {predictor!r}.")
        self._space = space
        self._growth = growth
        self._stage_one = smallest
        self._prototype = predictor

    _CACHES = (*NASSampler._CACHES, "_queue_lock", "_queues")

    def _init_caches(self) -> None:
        super()._init_caches()
        self._queue_lock = threading.Lock()
        self._queues: OrderedDict[tuple[Any, ...], list[Params]] = OrderedDict()

    @property
    def beam_size(self) -> int:
        """K, the cells trained per stage."""
        return self._beam_size

    def stage(self, study: optuna.Study) -> int:
        """The stage a new trial would be in, read from storage now (``max_blocks + 1`` once every
        stage's queue is taken).
        """
        state = self.learned_state(study)
        return self._current(study, state)[0]

    # -- Learning: the finished cells by size --------------------------------------------------

    def initial_state(self) -> list[tuple[int, Params, float, int]]:
        return []

    def copy_state(self, state: list[tuple[int, Params, float, int]]) -> list[tuple[int, Params, float, int]]:
        return list(state)

    def learn(
        self, state: list[tuple[int, Params, float, int]], episode: Episode
    ) -> list[tuple[int, Params, float, int]]:
        if episode.state == TrialState.COMPLETE and episode.reward is not None and episode.feasible:
            try:
                self._space.spec_from_params(episode.params)
            except ValueError:
                raise ValueError(
                    f"PNASSampler: trial {episode.number}'s decisions {sorted(episode.params)} are not those of the "
                    f"space it was given ({self._space.name!r}); the objective must suggest from that space."
                ) from None
            state.append(
                (episode.number, dict(episode.params), float(episode.reward), self._growth.size(episode.params))
            )
        return state

    # -- Deciding -------------------------------------------------------------------------------

    def plan(self, study: optuna.Study, trial: FrozenTrial, state: Any, n_finished: int) -> Plan | None:
        # Workers that began just before this one may not have taken their cell yet: each leaves the
        # free cells to the undecided trials numbered below it, so concurrent workers take distinct ones.
        running = study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
        skip = sum(other.number < trial.number and not is_decided(other.system_attrs) for other in running)
        stage, params = self._current(study, state, skip=skip)
        if params is None:
            return None
        return Plan(params=params, attrs={"stage": stage})

    def propose(self, decision: Decision) -> int:
        if decision.name not in self._growth.names():
            raise ValueError(
                f"PNASSampler: the decision {decision.name!r} is not one of the space's ({self._space.name!r}); the "
                "objective must suggest from the space given to the sampler."
            )
        plan = decision.plan
        if plan is not None and decision.name in plan.params and decision.actions.contains(plan.params[decision.name]):
            # The base found the planned value leading only to seen cells. Its look-ahead samples the
            # completions of large prefixes, so it may be wrong: the planned cell itself decides.
            follows_plan = all(plan.params.get(name) == value for name, value in decision.params.items())
            if follows_plan and not self.is_evaluated(decision.study, plan.params):
                return decision.actions.action_of(plan.params[decision.name])
        return decision.random_action()  # the planned cell was taken meanwhile by another worker

    def _current(
        self, study: optuna.Study, state: Sequence[tuple[int, Params, float, int]], *, skip: int = 0
    ) -> tuple[int, Params | None]:
        """The current stage and the first cell of its queue that is neither evaluated nor pending,
        after ``skip`` such cells (those left to other workers' trials; a stage with too few sends
        the rest on to the next).
        """
        for stage in range(1, self._max_blocks + 1):
            queue = self._stage_one if stage == 1 else self._queue(study, state, stage)
            for params in queue:
                if not self.is_evaluated(study, params):
                    if skip == 0:
                        return stage, params
                    skip -= 1
        return self._max_blocks + 1, self._late(study, state, skip=skip)

    def _queue(self, study: optuna.Study, state: Sequence[tuple[int, Params, float, int]], stage: int) -> list[Params]:
        """Stage ``stage``'s queue: the K expansions of the beam the predictor ranks best."""
        smaller = [item for item in state if item[3] < stage]
        key = (id(study._storage), study._study_id, stage, tuple(item[0] for item in smaller))
        with self._queue_lock:
            queue = self._queues.get(key)
        if queue is not None:
            return queue
        beam = sorted((item for item in smaller if item[3] == stage - 1), key=lambda item: (-item[2], item[0]))
        # A child that computes what a smaller cell already did (an edge or block no path uses) is
        # not a new cell: it is left out, as are repeats.
        known = {self._key(params) for _, params, _, _ in smaller}
        children = [child for _, params, _, _ in beam[: self._beam_size] for child in self._grown(params)]
        candidates = [child for child in _distinct(children, self._dedup_key) if self._key(child) not in known]
        queue = self._ranked(smaller, candidates)[: self._beam_size]
        with self._queue_lock:
            self._queues[key] = queue
            while len(self._queues) > _QUEUES_KEPT:
                self._queues.popitem(last=False)
        return queue

    def _key(self, params: Params) -> Any:
        return self._space.dedup_key(params)

    def _grown(self, params: Params) -> list[Params]:
        """The children of ``params`` that compute something else. A NAS-Bench-201 edge into or out
        of a node that no input-to-output path crosses changes nothing alone: such a child is grown
        once more, by the edges that bring the node onto a path.
        """
        parent = self._key(params)
        grown = []
        for child in self._growth.children(params):
            if self._key(child) != parent:
                grown.append(child)
                continue
            grown += [grandchild for grandchild in self._growth.children(child) if self._key(grandchild) != parent]
        return grown

    def _late(
        self, study: optuna.Study, state: Sequence[tuple[int, Params, float, int]], *, skip: int = 0
    ) -> Params | None:
        """After the last stage: the predicted best cell not yet evaluated among the expansions of
        the last beam and the one-op changes of the best last-stage cells.
        """
        last = self._max_blocks
        ranked = sorted(state, key=lambda item: (-item[2], item[0]))
        beam = [params for _, params, _, size in ranked if size == last - 1][: self._beam_size]
        best = [params for _, params, _, size in ranked if size == last][: self._beam_size]
        pool = [child for params in beam for child in self._grown(params)]
        pool += [neighbour for params in best for neighbour in self._growth.neighbours(params)]
        fresh = [params for params in _distinct(pool, self._dedup_key) if not self.is_evaluated(study, params)]
        if not fresh:
            return None
        if len(fresh) > _LATE_CANDIDATES:
            order = np.random.default_rng([self.seed, len(state)]).permutation(len(fresh))[:_LATE_CANDIDATES]
            fresh = [fresh[int(i)] for i in sorted(order)]
        return self._ranked(list(state), fresh)[min(skip, len(fresh) - 1)]

    def _ranked(self, examples: Sequence[tuple[int, Params, float, int]], candidates: list[Params]) -> list[Params]:
        """``candidates`` in the order of the predictor fitted on ``examples`` (best first); in
        their own order while fewer than 2 examples exist.
        """
        if len(examples) < 2 or not candidates:
            return candidates
        from optuna_nas.predictors import fit_on_architectures

        specs = [self._space.spec_from_params(params) for _, params, _, _ in examples]
        targets = [reward for _, _, reward, _ in examples]
        fitted = fit_on_architectures(specs, targets, predictor=self._prototype, seed=self.seed)
        mean, _ = fitted.predict([self._space.spec_from_params(params) for params in candidates])
        order = np.argsort(-mean, kind="stable")
        return [candidates[int(i)] for i in order]


def _distinct(candidates: list[Params], key: DedupKey | None) -> list[Params]:
    """``candidates`` without repeats (by ``key``), in order."""
    seen: set[Any] = set()
    out = []
    for params in candidates:
        mark = key(params) if key is not None else repr(sorted(params.items()))
        if mark not in seen:
            seen.add(mark)
            out.append(params)
    return out


def _pnas(*, seed: int | None, space: Space | None = None, **options: Any) -> PNASSampler:
    if space is None:
        raise ValueError("space: the pnas sampler needs the search space (space=...).")
    return PNASSampler(space=space, seed=seed, **options)


register_sampler("pnas", _pnas)
