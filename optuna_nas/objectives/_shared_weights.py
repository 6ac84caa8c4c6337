"""ENAS's objective (Pham et al. 2018): every trial's child trains and is scored in one shared supernet.

Paper: https://arxiv.org/abs/1802.03268
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import runtime_checkable

import numpy as np
import optuna
from optuna.distributions import BaseDistribution

from optuna_nas._validation import check_bool
from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas.objectives._common import DEFAULT_OBJECTIVES
from optuna_nas.objectives._common import MetricObjective
from optuna_nas.objectives._common import check_objectives
from optuna_nas.objectives._common import record_architecture
from optuna_nas.objectives._common import resolve_dataset
from optuna_nas.objectives._common import training_failures
from optuna_nas.spaces import ArchitectureSpec
from optuna_nas.spaces import DistributionDecider
from optuna_nas.spaces import Space
from optuna_nas.storages import check_param_order

if TYPE_CHECKING:
    import torch

    from optuna_nas.data import ImageDataset
    from optuna_nas.metrics import ComputeCost
    from optuna_nas.models import SuperNetwork

#: Study system attr naming the objective that trains the study's shared weights.
OWNER_KEY = "SharedWeights:owner"
#: Study system attr pointing to the latest saved shared weights (an artifact of the study).
WEIGHTS_KEY = "SharedWeights:weights"
#: What a saved weights file says it is.
WEIGHTS_FORMAT = "optuna_nas.shared_weights/1"


class SharedWeights(MetricObjective):
    """ENAS: train one supernet's shared weights with each trial's child, and score the child in it.

    Each call asks ``space`` for the trial's architecture (``space.suggest(trial)``, so the study's
    sampler - ENAS's controller, :class:`~optuna_nas.samplers.ENASSampler` - takes the decisions),
    trains the supernet's weights with that child for ``batches_per_trial`` training mini-batches,
    and returns the child's accuracy under the shared weights on ``eval_batches`` validation
    batches, then by default its parameters and FLOPs as a standalone network
    (:func:`~optuna_nas.models.build_model`, :func:`~optuna_nas.metrics.count_cost`): a reward costs
    a few mini-batches instead of a training. After the search, :func:`derive` picks an
    architecture to retrain from scratch with :class:`ImageClassification`.

    The supernet is :func:`~optuna_nas.models.build_supernet`'s for the space: ``CellSpace`` (micro
    search: weights for every op on every input of every block, in every cell) or ``ChainSpace``
    (macro search, with ``skip_connections=True`` as ENAS; a layer's weights are made when a child
    first uses them). Training follows ENAS: SGD with Nesterov momentum 0.9, weight decay, the
    gradient norm clipped at ``gradient_clip``, mini-batches drawn epoch after epoch through the
    training split (the order of epoch ``e`` from ``(seed, e)``, so it follows from the number of
    batches trained). Every BatchNorm of the supernet normalises with the statistics of the batch
    (ENAS evaluates its children in training mode): running averages over many children fit none.
    The validation batches are the same for every child (drawn once from ``seed``), so children are
    compared on equal terms.

    **The shared weights live in this object, in this process.** So one objective trains a
    study's weights: the first trial records in the study's system attrs (``SharedWeights:owner``)
    a token of this object, with the host and process; another ``SharedWeights`` on the study (another
    process, a worker on another machine, or a second objective in this one) refuses to train with a
    ``ValueError`` naming the owner, rather than train a second supernet whose rewards would not
    compare. The controller itself is a function of the study's trials and may run anywhere, but
    run the trials of one ENAS study in one process (``n_jobs > 1`` only queues the trials on the
    supernet, one at a time). ENAS's controller samples a child again when it likes it; the
    project's samplers avoid evaluated architectures by default, so pass
    ``ENASSampler(avoid_duplicates=False)`` for ENAS's behaviour.

    **Saving and resuming.** With an ``artifact_store``, the weights (and the optimizer's momentum)
    are saved as an artifact of the study every ``save_every`` trained trials, as a NumPy ``.npz``
    file of plain arrays, read back with ``allow_pickle=False``; :meth:`save` saves at once, and
    :meth:`release` saves and gives the study up. A new ``SharedWeights`` on a study with saved
    weights starts from the latest (the trials trained after it are lost). When the owner ended
    without :meth:`release` (interrupted, killed), the study still names it: make the new objective
    with ``take_over=True`` to take the study over from it - only once that process is gone, as
    the old owner, if it still runs, then stops with a ``ValueError`` at its next trial.

    Recorded in ``trial.user_attrs``: ``spec``, ``spec_hash``, ``architecture``, ``dataset``,
    ``input_shape``, ``num_classes`` (what :func:`~optuna_nas.analysis.pareto_front` and
    :func:`~optuna_nas.analysis.export` read, as for :class:`ImageClassification`), ``params``,
    ``macs``, ``flops``, ``device``, ``train_loss`` (the mean over the trial's batches),
    ``shared_batches`` (batches the shared weights have trained on, this trial's included),
    ``train_seconds``, and ``latency_ms`` when measured. A NaN or infinite loss prunes the trial
    before the weights take that step; a CUDA out-of-memory error fails it (values NaN).

    Args:
        space: The search space: a ``CellSpace`` or ``ChainSpace`` (any space with a registered
            supernet, :func:`~optuna_nas.models.available_supernets`).
        dataset: An :class:`~optuna_nas.data.ImageDataset`, or a name for :func:`optuna_nas.data.load`.
        batches_per_trial: Training mini-batches of the shared weights with each trial's child.
        batch_size: Images per mini-batch, in training and scoring.
        learning_rate: SGD's learning rate (ENAS: 0.05, with a cosine schedule over its epochs;
            here constant, as a search has no set length).
        momentum: Nesterov momentum.
        weight_decay: L2 weight decay (ENAS: 1e-4 for cells, 2.5e-4 for chains).
        gradient_clip: Largest norm of the child's gradient (ENAS: 5).
        eval_batches: Validation mini-batches a child is scored on (fewer when the split is smaller).
        objectives: Metrics to return, in order, from ``accuracy`` (under the shared weights),
            ``params``, ``flops``, ``macs`` and ``latency`` (of the standalone network, in ms).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; on CUDA
            data stays on the device, the supernet is channels-last and runs under bf16 autocast.
        seed: Seed of the initial weights (each module's from ``(seed, its key)``), of the order of
            the training batches and of the validation batches.
        artifact_store: An Optuna artifact store for the saved weights, or ``None`` to keep them in
            memory only (no resuming).
        save_every: Save every this many trained trials (with an ``artifact_store``).
        take_over: Take the study over from an owner that ended without :meth:`release`.

    Raises:
        ValueError: An argument is out of range (the message names it and shows the value), the
            space has no supernet, or it does not fit the dataset's images.

    Example:
        >>> import optuna
        >>> from optuna_nas import objectives, samplers, spaces
        >>> space = spaces.CellSpace(max_blocks=2, ops=("sep_conv_3x3", "max_pool_3x3", "identity"), channels=4)
        >>> objective = objectives.SharedWeights(space, "digits", batches_per_trial=2, batch_size=32)
        >>> sampler = samplers.ENASSampler(seed=0)
        >>> study = optuna.create_study(directions=objective.directions, sampler=sampler)
        >>> study.optimize(objective, n_trials=4)
        >>> objective.batches_trained
        8
        >>> best = objectives.derive(study, objective=objective, n=5)
        >>> best.spec in {space.spec_from_params(best.params)}  # to retrain: enqueue best.params
        True
    """

    def __init__(
        self,
        space: Space,
        dataset: ImageDataset | str = "mnist5k",
        *,
        batches_per_trial: int = 20,
        batch_size: int = 128,
        learning_rate: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        gradient_clip: float = 5.0,
        eval_batches: int = 4,
        objectives: Sequence[str] = DEFAULT_OBJECTIVES,
        device: str = "auto",
        seed: int = 0,
        artifact_store: Any = None,
        save_every: int = 10,
        take_over: bool = False,
    ) -> None:
        from optuna_nas.models import available_supernets
        from optuna_nas.models import build_supernet
        from optuna_nas.training import prepare_model
        from optuna_nas.training import resolve_device

        if not isinstance(space, Space):
            raise ValueError(f"space must be an optuna_nas.spaces.Space, got {space!r}.")
        if space.name not in available_supernets():
            raise ValueError(
                f"space: {type(space).__name__} has no supernet to share weights in; "
                f"spaces with one: {available_supernets()}."
            )
        self.batches_per_trial = check_int("batches_per_trial", batches_per_trial, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=2)
        self.learning_rate = check_number("learning_rate", learning_rate, low=0.0, low_open=True)
        self.momentum = check_number("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.weight_decay = check_number("weight_decay", weight_decay, low=0.0)
        self.gradient_clip = check_number("gradient_clip", gradient_clip, low=0.0, low_open=True)
        self.eval_batches = check_int("eval_batches", eval_batches, minimum=1)
        self.objectives = check_objectives(objectives)
        self.seed = check_int("seed", seed, minimum=0)
        self.device = resolve_device(device)
        if artifact_store is not None and not callable(getattr(artifact_store, "write", None)):
            raise ValueError(f"artifact_store must be an Optuna artifact store or None, got {artifact_store!r}.")
        self.artifact_store = artifact_store
        self.save_every = check_int("save_every", save_every, minimum=1)
        self.take_over = check_bool("take_over", take_over)
        self.space = space
        dataset = resolve_dataset(dataset)
        space.check_input_shape(dataset.input_shape)
        self.dataset = dataset

        supernet = build_supernet(
            space, input_shape=dataset.input_shape, num_classes=dataset.num_classes, seed=self.seed
        )
        self.supernet: SuperNetwork = prepare_model(supernet, self.device)  # type: ignore[assignment]
        self._optimizer = self._make_optimizer()
        self._batches = 0  # training batches the shared weights have taken
        self._trained = 0  # trials that trained them
        self._last_trial: int | None = None
        self._lock = threading.RLock()  # one child at a time trains or is scored
        self._token = uuid.uuid4().hex
        self._study: tuple[str, int] | None = None  # (name, id) of the study the weights belong to
        self._study_object: optuna.Study | None = None
        self._owner = False
        self._resident: dict[str, torch.Tensor] | None = None
        self._order: tuple[int, torch.Tensor] | None = None  # (epoch, its batch order)
        self._costs: dict[str, ComputeCost] = {}

    @property
    def batches_trained(self) -> int:
        """Training mini-batches the shared weights have taken (those of a resumed study's included)."""
        return self._batches

    @property
    def trials_trained(self) -> int:
        """Trials that have trained the shared weights (those of a resumed study's included)."""
        return self._trained

    # -- A trial ----------------------------------------------------------------------------------

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        import torch

        study = trial.study
        self.attach(study)
        spec = self.space.suggest(trial)
        record_architecture(trial, spec, device=self.device, dataset=self.dataset)
        cost = self._cost(spec)
        measured: dict[str, float] = {"params": cost.params, "macs": cost.macs, "flops": cost.flops}
        for key, value in measured.items():
            trial.set_user_attr(key, value)
        if "latency" in self.objectives:
            from optuna_nas.metrics import measure_latency
            from optuna_nas.models import build_model

            model = build_model(spec, input_shape=self.dataset.input_shape, num_classes=self.dataset.num_classes)
            measured["latency"] = measure_latency(model, input_shape=self.dataset.input_shape, device=str(self.device))
            trial.set_user_attr("latency_ms", measured["latency"])

        start = time.perf_counter()
        with self._lock:
            self._check_owner(study)
            with training_failures(trial) as outcome:
                loss = self._train(spec)
                measured["accuracy"] = self._score(spec, self.eval_batches)
            if not outcome.out_of_memory:
                self._trained += 1
                self._last_trial = trial.number
                trial.set_user_attr("train_loss", loss)
                trial.set_user_attr("shared_batches", self._batches)
                trial.set_user_attr("train_seconds", time.perf_counter() - start)
                if self.artifact_store is not None and self._trained % self.save_every == 0:
                    self.save()
        if outcome.out_of_memory:
            # Outside the handler, so the traceback no longer holds the tensors.
            self._optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            values = [math.nan] * len(self.objectives)
        else:
            values = [float(measured[metric]) for metric in self.objectives]
        return values[0] if len(values) == 1 else tuple(values)

    def score(self, spec: ArchitectureSpec, *, eval_batches: int | None = None) -> float:
        """The accuracy of the child ``spec`` under the shared weights, on the validation batches
        the trials are scored on (``eval_batches`` of them; the objective's number by default).

        Raises:
            ValueError: ``spec`` is not an architecture of the supernet, or ``eval_batches`` < 1.
        """
        batches = self.eval_batches if eval_batches is None else check_int("eval_batches", eval_batches, minimum=1)
        with self._lock:
            return self._score(spec, batches)

    # -- Ownership and storage ----------------------------------------------------------------------

    def attach(self, study: optuna.Study) -> None:
        """Make ``study`` this objective's, as its first trial does: claim it (see the class
        docstring), then load its latest saved weights if it has some and these weights are not yet
        the study's. Later calls with the same study only check the claim.

        Raises:
            ValueError: The objective already trains another study's weights, another objective
                owns this study (and ``take_over`` is false), or the study's saved weights are of
                another supernet or in no artifact store given.
        """
        with self._lock:
            self._check_identity(study)
            if not self._owner:
                # Before the claim and the weights: the controller would refuse this storage anyway.
                check_param_order(study._storage, user=type(self).__name__)
                self._check_claimable(study)
                self._bind(study)  # before the claim: saved weights that do not fit claim nothing
                self._claim(study)
                self._owner = True
            self._check_owner(study)

    def load(self, study: optuna.Study) -> bool:
        """Load the latest weights saved in ``study``, without claiming it (to score children, as
        :func:`derive` does, in a process that does not train). Returns whether it loaded any:
        weights already the study's (trained here, or loaded before) are kept as they are.

        Raises:
            ValueError: As for :meth:`attach`, but for the claim.
        """
        with self._lock:
            return self._bind(study)

    def save(self) -> str:
        """Save the shared weights now, as an artifact of the study; returns its artifact id.

        Raises:
            ValueError: No artifact store was given, no trial has run (so there is no study), or
                another objective has taken the study over.
        """
        with self._lock:
            if self.artifact_store is None:
                raise ValueError("artifact_store: the shared weights can only be saved in an artifact store, got None.")
            study = self._require_study()
            self._check_owner(study)
            return self._save(study)

    def release(self) -> None:
        """Save the weights (with an artifact store) and give the study up, so that another
        objective - in a later process - resumes from them without ``take_over``.
        """
        with self._lock:
            study = self._require_study()
            if self.artifact_store is not None and self._owner:
                self.save()
            if self._owner:
                self._check_owner(study)
                study._storage.set_study_system_attr(study._study_id, OWNER_KEY, None)
                self._owner = False

    def _require_study(self) -> optuna.Study:
        if self._study_object is None:
            raise ValueError("study: the objective has run no trial yet, so it holds no study's weights.")
        return self._study_object

    def _check_identity(self, study: optuna.Study) -> None:
        if self._study is not None and self._study != (study.study_name, study._study_id):
            raise ValueError(
                f"study: this SharedWeights holds the shared weights of study {self._study[0]!r}; "
                f"make another objective for study {study.study_name!r}."
            )

    def _bind(self, study: optuna.Study) -> bool:
        """Tie the weights to ``study``, loading its latest saved weights the first time; returns
        whether it had saved weights then.
        """
        self._check_identity(study)
        if self._study is not None:
            return False
        loaded = self._restore(study)
        self._study = (study.study_name, study._study_id)
        self._study_object = study
        return loaded

    def _check_claimable(self, study: optuna.Study) -> None:
        owner = study._storage.get_study_system_attrs(study._study_id).get(OWNER_KEY)
        if owner and owner.get("token") != self._token and not self.take_over:
            raise ValueError(_owned_message(study, owner, taken=False))

    def _claim(self, study: optuna.Study) -> None:
        claim: dict[str, str | int] = {
            "token": self._token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        study._storage.set_study_system_attr(study._study_id, OWNER_KEY, claim)

    def _check_owner(self, study: optuna.Study) -> None:
        if not self._owner:
            return
        owner = study._storage.get_study_system_attrs(study._study_id).get(OWNER_KEY)
        if not owner or owner.get("token") != self._token:
            self._owner = False
            raise ValueError(_owned_message(study, owner or {}, taken=True))

    def _save(self, study: optuna.Study) -> str:
        tensors: dict[str, np.ndarray] = {}
        for name, tensor in self.supernet.state_dict().items():
            tensors[f"weights/{name}"] = tensor.detach().float().cpu().numpy()
        for name, parameter in self.supernet.named_parameters():
            buffer = self._optimizer.state.get(parameter, {}).get("momentum_buffer")
            if buffer is not None:
                tensors[f"momentum/{name}"] = buffer.detach().float().cpu().numpy()
        metadata = {
            "format": WEIGHTS_FORMAT,
            "supernet": self.supernet.describe(),
            "dataset": self.dataset.name,
            "keys": self.supernet.keys(),
            "batches": self._batches,
            "trials": self._trained,
            "last_trial": self._last_trial,
        }
        tensors["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
        filename = f"shared_weights_{self._trained:06d}.npz"
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, filename)
            np.savez(path, **tensors)  # type: ignore[arg-type]
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=self.artifact_store, file_path=path, study_or_trial=study
            )
        pointer: dict[str, str | int] = {
            "artifact_id": artifact_id,
            "filename": filename,
            "trials": self._trained,
            "batches": self._batches,
        }
        study._storage.set_study_system_attr(study._study_id, WEIGHTS_KEY, pointer)
        return artifact_id

    def _restore(self, study: optuna.Study) -> bool:
        import torch

        pointer = study._storage.get_study_system_attrs(study._study_id).get(WEIGHTS_KEY)
        if not pointer:
            return False
        if self.artifact_store is None:
            raise ValueError(
                f"artifact_store: study {study.study_name!r} has saved shared weights "
                f"({pointer['filename']}, artifact {pointer['artifact_id']}); pass the artifact store "
                "they were saved in to resume from them, got None."
            )
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, pointer["filename"])
            optuna.artifacts.download_artifact(
                artifact_store=self.artifact_store, file_path=path, artifact_id=pointer["artifact_id"]
            )
            with np.load(path, allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
        metadata = json.loads(arrays.pop("metadata").tobytes().decode())
        if metadata.get("format") != WEIGHTS_FORMAT:
            raise ValueError(
                f"study: the saved shared weights are of format {metadata.get('format')!r}, not {WEIGHTS_FORMAT!r}."
            )
        if metadata["supernet"] != self.supernet.describe():
            raise ValueError(
                f"study: study {study.study_name!r} saved the weights of another supernet ({metadata['supernet']}); "
                f"this objective's is {self.supernet.describe()}."
            )
        if metadata["dataset"] != self.dataset.name:
            raise ValueError(
                f"dataset: study {study.study_name!r} saved weights trained on {metadata['dataset']!r}, "
                f"got {self.dataset.name!r}."
            )
        self.supernet.ensure(metadata["keys"], device=self.device)
        state = self.supernet.state_dict()
        weights = {name[len("weights/") :]: array for name, array in arrays.items() if name.startswith("weights/")}
        if set(weights) != set(state):
            raise ValueError(f"study: the saved shared weights do not hold the tensors of {metadata['keys']}.")
        with torch.no_grad():
            for name, tensor in state.items():
                tensor.copy_(torch.from_numpy(weights[name]).to(tensor.dtype))
        self._optimizer = self._make_optimizer()
        for name, parameter in self.supernet.named_parameters():
            array = arrays.get(f"momentum/{name}")
            if array is not None:
                # Shaped and laid out as the parameter (channels-last on CUDA).
                buffer = torch.empty_like(parameter, requires_grad=False)
                buffer.copy_(torch.from_numpy(array))
                self._optimizer.state[parameter]["momentum_buffer"] = buffer
        self._batches = int(metadata["batches"])
        self._trained = int(metadata["trials"])
        self._last_trial = metadata["last_trial"]
        return True

    # -- Training and scoring ----------------------------------------------------------------------

    def _make_optimizer(self) -> torch.optim.Optimizer:
        import torch

        # A group of its own even when empty: a chain supernet starts with no weights.
        return torch.optim.SGD(
            [{"params": list(self.supernet.parameters())}],
            lr=self.learning_rate,
            momentum=self.momentum,
            nesterov=self.momentum > 0,
            weight_decay=self.weight_decay,
        )

    def _ensure(self, spec: ArchitectureSpec) -> None:
        added = self.supernet.ensure(self.supernet.keys_of(spec), device=self.device)
        if added:
            self._optimizer.add_param_group({"params": added})

    def _tensors(self) -> dict[str, torch.Tensor]:
        """The training and validation splits, moved to the device once."""
        from optuna_nas.training import prepare_images

        if self._resident is None:
            data = self.dataset
            self._resident = {
                "train_x": prepare_images(data.train_x, self.device),
                "train_y": data.train_y.to(self.device),
                "val_x": prepare_images(data.val_x, self.device),
                "val_y": data.val_y.to(self.device),
            }
        return self._resident

    def _batch_order(self, epoch: int, count: int) -> torch.Tensor:
        import torch

        if self._order is None or self._order[0] != epoch:
            generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
            self._order = (epoch, torch.randperm(count, generator=generator).to(self.device))
        return self._order[1]

    def _train(self, spec: ArchitectureSpec) -> float:
        import torch
        from torch.nn import functional as F

        from optuna_nas.training import NonFiniteLossError
        from optuna_nas.training import autocast_for
        from optuna_nas.training import count_batches

        self._ensure(spec)
        parameters = self.supernet.parameters_of(spec)
        data = self._tensors()
        count = len(data["train_y"])
        per_epoch = count_batches(count, self.batch_size)
        self.supernet.train()
        total = 0.0
        for _ in range(self.batches_per_trial):
            epoch, position = divmod(self._batches, per_epoch)
            index = self._batch_order(epoch, count)[position * self.batch_size : (position + 1) * self.batch_size]
            with autocast_for(self.device):
                loss = F.cross_entropy(self.supernet(data["train_x"][index], spec), data["train_y"][index])
            value = float(loss.detach())
            if not math.isfinite(value):
                self._optimizer.zero_grad(set_to_none=True)
                raise NonFiniteLossError(f"training loss became {value} (the shared weights did not take the step)")
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            torch.nn.utils.clip_grad_norm_(parameters, self.gradient_clip)
            self._optimizer.step()
            self._batches += 1
            total += value
        return total / self.batches_per_trial

    def _score(self, spec: ArchitectureSpec, batches: int) -> float:
        import torch

        from optuna_nas.training import autocast_for

        self._ensure(spec)
        data = self._tensors()
        count = len(data["val_y"])
        generator = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(count, generator=generator)[: batches * self.batch_size].to(self.device)
        self.supernet.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        with torch.inference_mode(), autocast_for(self.device):
            for start in range(0, len(chosen), self.batch_size):
                index = chosen[start : start + self.batch_size]
                logits = self.supernet(data["val_x"][index], spec)
                correct += (logits.argmax(dim=1) == data["val_y"][index]).sum()
        return correct.item() / max(1, len(chosen))

    def _cost(self, spec: ArchitectureSpec) -> ComputeCost:
        from optuna_nas.metrics import count_cost
        from optuna_nas.models import build_model

        cost = self._costs.get(spec.spec_hash)
        if cost is None:
            shape = self.dataset.input_shape
            model = build_model(spec, input_shape=shape, num_classes=self.dataset.num_classes)
            cost = self._costs[spec.spec_hash] = count_cost(model, input_shape=shape)
        return cost


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63 - 1)


def _owned_message(study: optuna.Study, owner: Mapping[str, Any], *, taken: bool) -> str:
    who = (
        f"another SharedWeights objective (process {owner.get('pid')} on host {owner.get('host')!r}, "
        f"owner since {owner.get('since')})"
        if owner
        else "nobody (it was released)"
    )
    if taken:
        return (
            f"study: the shared weights of study {study.study_name!r} now belong to {who}; this objective "
            "stops training them (it was taken over, or released)."
        )
    return (
        f"study: the shared weights of study {study.study_name!r} belong to {who}. The supernet lives in "
        "that objective's process, and a second one would train other weights. Run the study's trials "
        "there; if that process has ended, make this objective with take_over=True to go on from the "
        "study's last saved weights."
    )


# -- Deriving the final architecture ------------------------------------------------------------------


@runtime_checkable
class Controller(Protocol):
    """What :func:`derive` needs of a sampler: a sequence policy, the state it learned from a study,
    and its mapping of params to the policy's steps (as :class:`~optuna_nas.samplers.ReinforceSampler`
    and :class:`~optuna_nas.samplers.ENASSampler` have).
    """

    @property
    def policy(self) -> Any: ...

    def learned_state(self, study: optuna.Study, *, before: int | None = None) -> Any: ...

    def steps_of(self, params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution]) -> list[Any]: ...

    def actions(self, distribution: BaseDistribution) -> Any: ...


@dataclasses.dataclass(frozen=True)
class DerivedArchitecture:
    """The architecture :func:`derive` picked.

    Attributes:
        spec: The architecture.
        params: Its decisions, by name: ``study.enqueue_trial(params)`` has a study with
            :class:`ImageClassification` on the same space train it from scratch.
        accuracy: Its accuracy under the shared weights.
        scores: Each distinct candidate's accuracy under the shared weights, by spec hash, in the
            order they were first sampled.
    """

    spec: ArchitectureSpec
    params: dict[str, Any]
    accuracy: float
    scores: dict[str, float]


def derive(
    study: optuna.Study,
    *,
    objective: SharedWeights,
    n: int = 100,
    sampler: Any = None,
    eval_batches: int | None = None,
    seed: int = 0,
) -> DerivedArchitecture:
    """ENAS's last step: sample ``n`` architectures from the trained controller, score each with
    the shared weights, and return the best, to retrain from scratch.

    The controller is the study's sampler (or ``sampler``): a :class:`~optuna_nas.samplers.ENASSampler`
    or :class:`~optuna_nas.samplers.ReinforceSampler`, whose policy is learned from the study's
    finished trials (:meth:`~optuna_nas.samplers.NASSampler.learned_state`), so any process
    derives the same from the same study. Each decision of ``objective.space`` is drawn from the
    policy's probabilities given the decisions before it, with a NumPy generator seeded with
    ``seed`` (no duplicate avoidance: the policy's own distribution). The distinct candidates are
    scored with :meth:`SharedWeights.score` on ``eval_batches`` validation batches (the objective's
    number by default); the first best wins ties. When ``objective`` has not trained this study's
    weights, the study's latest saved weights are loaded (:meth:`SharedWeights.load`).

    Args:
        study: The ENAS study.
        objective: The :class:`SharedWeights` of the study (the one that trained, or a new one made
            with the same settings and artifact store).
        n: Architectures to sample.
        sampler: The controller, if the study was loaded without it.
        eval_batches: Validation batches each candidate is scored on.
        seed: Seed of the sampling.

    Returns:
        The best candidate: its spec, params, accuracy under the shared weights, and every
        candidate's score.

    Raises:
        ValueError: An argument is out of range, the sampler is not a controller, or the study has
            no trained weights.
    """
    if not isinstance(objective, SharedWeights):
        raise ValueError(f"objective must be a SharedWeights, got {objective!r}.")
    n = check_int("n", n, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if eval_batches is not None:
        check_int("eval_batches", eval_batches, minimum=1)
    controller = study.sampler if sampler is None else sampler
    if not isinstance(controller, Controller):
        raise ValueError(
            f"sampler: derive samples from the study's controller (ENASSampler or ReinforceSampler), got "
            f"{type(controller).__name__}; load the study with the sampler its search used, or pass it as sampler=."
        )
    objective.load(study)
    if objective.trials_trained == 0:
        raise ValueError(
            f"study: study {study.study_name!r} has no trained shared weights (no trial trained them here, "
            "and none were saved)."
        )
    state = controller.learned_state(study)
    rng = np.random.default_rng(seed)
    candidates: dict[str, tuple[ArchitectureSpec, dict[str, Any]]] = {}
    for _ in range(n):
        decider = _PolicyDecider(controller, state["parameters"], rng)
        spec = objective.space.decide(decider)
        candidates.setdefault(spec.spec_hash, (spec, decider.params))
    scores = {key: objective.score(spec, eval_batches=eval_batches) for key, (spec, _) in candidates.items()}
    best = max(scores, key=lambda key: scores[key])
    spec, params = candidates[best]
    return DerivedArchitecture(spec=spec, params=params, accuracy=scores[best], scores=scores)


class _PolicyDecider(DistributionDecider):
    """Takes each decision by sampling the controller's policy, given the decisions before it."""

    def __init__(self, controller: Controller, parameters: Any, rng: np.random.Generator) -> None:
        super().__init__()
        self._controller = controller
        self._parameters = parameters
        self._rng = rng

    def choose(self, name: str, distribution: BaseDistribution) -> Any:
        actions = self._controller.actions(distribution)
        if actions.size == 1:
            return actions.value_of(0, self._rng)
        steps = self._controller.steps_of(self.params, self.distributions)
        # The decision's key as the controller names it: the last step of the params with any
        # value of this decision added.
        probe = actions.value_of(0, np.random.default_rng(0))
        key = self._controller.steps_of({**self.params, name: probe}, {**self.distributions, name: distribution})[-1][0]
        probabilities = np.asarray(self._controller.policy.probabilities(self._parameters, steps, key), dtype=float)
        action = int(self._rng.choice(actions.size, p=probabilities / probabilities.sum()))
        return actions.value_of(action, self._rng)
