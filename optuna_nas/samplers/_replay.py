"""What a sampler derives from one study's trials, kept up to date at the cost of what changed.

* **Episodes**: each finished trial is converted once, when it is first seen finished. The study is
  read whole once (:meth:`StudyReplay.sync`); after that, :meth:`StudyReplay.refresh` reads only the
  trials that were unfinished at the last read and the new ones.
* **Learned state**: the fold of the learner over the finished episodes numbered below a trial, in
  number order. States are kept as checkpoints keyed by the exact sequence of trial numbers they
  fold (a rolling hash), so a trial extends the longest checkpoint that is a prefix of its own
  sequence: appending in number order costs one ``learn`` call per new episode, and a trial that
  finishes out of order costs a replay from the last checkpoint before it, never more than a
  rebuild. The result is always the state a rebuild from scratch would give.
* **Duplicate trie**: whole architectures evaluated, plus the pending ones (decided and running) of
  the latest sync.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._decided import claimed_params
from optuna_nas.samplers._dedup import EvaluatedTrie
from optuna_nas.samplers._history import FINISHED
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._history import RewardLedger
from optuna_nas.samplers._history import is_whole

#: Checkpoints kept: the most recent ones, and sparse ones every ``_SPARSE_EVERY`` episodes.
_RECENT_CHECKPOINTS = 32
_SPARSE_EVERY = 256
_SPARSE_CHECKPOINTS = 64


class Learner:
    """The three functions a replay folds with (the sampler's hooks)."""

    def __init__(
        self,
        initial: Callable[[], Any],
        learn: Callable[[Any, Episode], Any],
        copy: Callable[[Any], Any],
        convert: Callable[[FrozenTrial], Episode],
        new_ledger: Callable[[], RewardLedger],
    ) -> None:
        self.initial, self.learn, self.copy, self.convert = initial, learn, copy, convert
        self.new_ledger = new_ledger


class StudyReplay:
    """Episodes, learned-state checkpoints and the duplicate trie of one study, for one sampler."""

    def __init__(self, learner: Learner, trie: EvaluatedTrie) -> None:
        self.lock = threading.RLock()
        self._learner = learner
        self.trie = trie
        self._frontier = 0  # every trial numbered below it was looked at
        self._unsettled: dict[int, int] = {}  # number -> trial id, below the frontier, unfinished when last seen
        self._first_trial_id: int | None = None
        self.episodes: dict[int, Episode] = {}
        self._numbers: list[int] = []  # finished trial numbers, sorted
        self._hashes: list[int] = [0]  # _hashes[k]: rolling hash of _numbers[:k]
        self._checkpoints: OrderedDict[int, tuple[int, RewardLedger, Any]] = OrderedDict()
        self._sparse: dict[int, tuple[int, RewardLedger, Any]] = {}
        self._pending: dict[int, dict[str, Any]] = {}  # number -> claimed params of running decided trials

    # -- Reading storage ------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Whether the replay has read the study once (after that, :meth:`refresh` keeps it current)."""
        return self._first_trial_id is not None

    def sync(self, trials: Sequence[FrozenTrial]) -> None:
        """Take in all of the study's trials (in number order): the first read of a study."""
        with self.lock:
            if trials:
                self._first_trial_id = trials[0]._trial_id
            self._take_in(trials, max(self._frontier, len(trials)))

    def refresh(self, storage: Any, study_id: int) -> None:
        """Take in what changed, reading only the trials unfinished at the last sync and new ones.

        The cost does not grow with the study: one read per unfinished trial, one per new trial, and
        one to check that trial 0 is still the one read first.

        Raises:
            _StudyReplaced: The study's trials are not the ones read before (it was deleted and made
                again under the same id).
        """
        with self.lock:
            seen = []
            frontier = self._frontier
            try:
                if storage.get_trial_id_from_study_id_trial_number(study_id, 0) != self._first_trial_id:
                    raise _StudyReplaced()
                for _number, trial_id in sorted(self._unsettled.items()):
                    seen.append(storage.get_trial(trial_id))
                while True:
                    try:
                        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frontier)
                    except KeyError:
                        break
                    seen.append(storage.get_trial(trial_id))
                    frontier += 1
            except KeyError:
                raise _StudyReplaced() from None
            self._take_in(seen, frontier)

    def _take_in(self, trials: Sequence[FrozenTrial], frontier: int) -> None:
        """Take in trials read from storage; ``frontier`` is the first number not read.

        A finished trial leaves the unfinished ones only once converted, and the frontier moves
        only after every trial was taken in: if converting raises (a reward function that fails),
        nothing is lost, and the next sync reads the same trials again.
        """
        pending: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        for trial in trials:
            number = trial.number
            if trial.state in FINISHED:
                self._take_finished(trial)
                self._unsettled.pop(number, None)
            else:
                self._unsettled[number] = trial._trial_id
                if trial.state == TrialState.RUNNING and is_whole(trial):
                    claimed = claimed_params(trial)
                    pending[number] = (claimed, {name: trial.distributions[name] for name in claimed})
        self._frontier = max(self._frontier, frontier)
        self._set_pending(pending)

    def _take_finished(self, trial: FrozenTrial) -> None:
        if trial.number in self.episodes:
            return
        episode = self._learner.convert(trial)
        self.episodes[trial.number] = episode
        self.trie.add(episode.params, episode.distributions, whole=episode.whole, number=trial.number)
        position = bisect.bisect_left(self._numbers, trial.number)
        self._numbers.insert(position, trial.number)
        if position == len(self._numbers) - 1:
            self._hashes.append(hash((self._hashes[-1], trial.number)))
        else:  # finished out of order: the sequences after it are new
            del self._hashes[position + 1 :]
            for number in self._numbers[position:]:
                self._hashes.append(hash((self._hashes[-1], number)))

    def _set_pending(self, pending: dict[int, tuple[dict[str, Any], dict[str, Any]]]) -> None:
        for number in [n for n in self._pending if n not in pending]:
            self.trie.remove_pending(self._pending.pop(number))
        for number, (params, distributions) in pending.items():
            if self._pending.get(number) != params:
                if number in self._pending:
                    self.trie.remove_pending(self._pending.pop(number))
                self.trie.add(params, distributions, whole=True, pending=True)
                self._pending[number] = params

    def holders(self, params: dict[str, Any], *, current: int) -> list[int]:
        """Numbers of the other trials that hold exactly these decisions: the first finished one
        that evaluated them, and the running ones that claimed them (as of the last sync).
        """
        with self.lock:
            numbers = [n for n, p in self._pending.items() if n != current and p == params]
            first = self.trie.evaluated_by(params)
            if first is not None and first != current:
                numbers.append(first)
            return sorted(numbers)

    # -- Learned state --------------------------------------------------------------------------

    def n_finished(self, before: int | None) -> int:
        """How many finished trials are numbered below ``before`` (all of them for ``None``)."""
        with self.lock:
            return len(self._numbers) if before is None else bisect.bisect_left(self._numbers, before)

    def state_before(self, before: int | None) -> Any:
        """The learned state after every finished episode numbered below ``before``, in number order.

        The state returned may be shared: read it, do not change it.
        """
        with self.lock:
            k = self.n_finished(before)
            start, ledger, state = self._best_checkpoint(k)
            if start == k:
                return state
            if start < 0:
                start, ledger, state = 0, self._learner.new_ledger(), self._learner.initial()
            else:
                ledger, state = ledger.copy(), self._learner.copy(state)
            for index in range(start, k):
                episode = ledger.settle(self.episodes[self._numbers[index]])
                state = self._learner.learn(state, episode)
                if (index + 1) % _SPARSE_EVERY == 0 and index + 1 < k:
                    self._keep_sparse(index + 1, ledger, state)
                    ledger, state = ledger.copy(), self._learner.copy(state)
            self._checkpoints[k] = (self._hashes[k], ledger, state)
            self._checkpoints.move_to_end(k)
            while len(self._checkpoints) > _RECENT_CHECKPOINTS:
                self._checkpoints.popitem(last=False)
            return state

    def _keep_sparse(self, k: int, ledger: RewardLedger, state: Any) -> None:
        self._sparse[k] = (self._hashes[k], ledger, state)
        if len(self._sparse) > _SPARSE_CHECKPOINTS:
            del self._sparse[min(self._sparse)]

    def _best_checkpoint(self, k: int) -> tuple[int, RewardLedger, Any]:
        best: tuple[int, RewardLedger, Any] = (-1, self._learner.new_ledger(), None)
        for store in (self._checkpoints, self._sparse):
            for start, (digest, ledger, state) in store.items():
                if best[0] < start <= k and self._hashes[start] == digest:
                    best = (start, ledger, state)
        return best


class _StudyReplaced(Exception):
    """The study's trials are not the ones this replay was built from (a study recreated)."""
