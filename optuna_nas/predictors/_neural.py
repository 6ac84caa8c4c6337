"""Ensembles of small neural networks (PNAS's predictors): an MLP on vectors and an LSTM on token sequences.

torch is imported when a model is fitted or asked to predict, not when this module is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas._validation import check_one_of
from optuna_nas._validation import check_seed
from optuna_nas.predictors._base import MAX_EPOCHS
from optuna_nas.predictors._base import MAX_MEMBERS
from optuna_nas.predictors._base import MAX_WIDTH
from optuna_nas.predictors._base import SequencePredictor
from optuna_nas.predictors._base import VectorPredictor
from optuna_nas.predictors._base import member_seed

LOSSES = ("l1", "l2")


class _NeuralEnsemble:
    """What the two neural ensembles share: their arguments and the standardised scores."""

    def _set_common(
        self,
        *,
        ensemble_size: int,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        weight_decay: float,
        loss: str,
        seed: int | None,
        num_threads: int | None,
    ) -> None:
        self.ensemble_size = check_int("ensemble_size", ensemble_size, minimum=1, maximum=MAX_MEMBERS)
        self.epochs = check_int("epochs", epochs, minimum=1, maximum=MAX_EPOCHS)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.learning_rate = check_number("learning_rate", learning_rate, low=0.0, low_open=True)
        self.weight_decay = check_number("weight_decay", weight_decay, low=0.0)
        self.loss = check_one_of("loss", loss, LOSSES)
        self.seed = check_seed(seed)
        self.num_threads = None if num_threads is None else check_int("num_threads", num_threads, minimum=1)
        self._members: list[Any] = []
        self._target_center = 0.0
        self._target_scale = 1.0

    def _standardise_targets(self, targets: np.ndarray) -> np.ndarray:
        self._target_center = float(targets.mean())
        scale = float(targets.std())
        self._target_scale = scale if scale > 0 else 1.0
        return (targets - self._target_center) / self._target_scale

    def _summarise(self, per_member: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        scores = np.stack(per_member) * self._target_scale + self._target_center
        return scores.mean(axis=0), scores.std(axis=0)


class MLPEnsemble(_NeuralEnsemble, VectorPredictor):
    """An ensemble of multilayer perceptrons over architecture vectors, trained as PNAS's predictors are.

    Liu et al. 2018, "Progressive Neural Architecture Search", https://arxiv.org/abs/1712.00559:
    ensembles of 5, trained with the L1 loss. PNAS's MLP reads averaged block embeddings; this one
    reads a 2-D array of features (:class:`VectorEncoder`), whose counts and path features serve
    architectures of any length. Columns and scores are standardised on the training data. The
    mean is the members' average, the spread their standard deviation. :meth:`update` refits every
    member from scratch on all data seen (the same seed, so the result equals one ``fit`` on all
    of it).

    Deterministic: each member's weights and batch order come from a ``torch.Generator`` seeded by
    ``(seed, member)``, its math runs in float32 on ``num_threads`` threads, and torch's global
    generator is never drawn from, so the same seed gives the same predictions in any process.

    Args:
        hidden_sizes: Widths of the hidden layers (ReLU); empty for a linear model.
        ensemble_size: Members, each with its own initial weights and batch order (PNAS: 5; with
            one, the spread is 0).
        epochs: Passes over the data per member.
        batch_size: Samples per Adam step.
        learning_rate: Adam's step size.
        weight_decay: Adam's L2 penalty.
        loss: ``l1`` (PNAS) or ``l2`` (mean squared error), on the standardised scores.
        seed: Seed of every member's weights and batch order; ``None`` draws one.
        num_threads: Threads torch uses inside ``fit`` and ``predict``, set for the call and restored
            after (results can depend on the thread count); ``None`` leaves torch's setting.

    Raises:
        ValueError: An argument is out of range; the message names it.
    """

    def __init__(
        self,
        *,
        hidden_sizes: Sequence[int] = (64, 64),
        ensemble_size: int = 5,
        epochs: int = 100,
        batch_size: int = 32,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
        loss: str = "l1",
        seed: int | None = None,
        num_threads: int | None = 1,
    ) -> None:
        super().__init__()
        if isinstance(hidden_sizes, str) or not isinstance(hidden_sizes, Sequence):
            raise ValueError(f"hidden_sizes must be a sequence of layer widths, got {hidden_sizes!r}.")
        self.hidden_sizes = tuple(
            check_int(f"hidden_sizes[{index}]", size, minimum=1, maximum=MAX_WIDTH)
            for index, size in enumerate(hidden_sizes)
        )
        self._set_common(
            ensemble_size=ensemble_size,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            loss=loss,
            seed=seed,
            num_threads=num_threads,
        )
        self._column_center = np.zeros(0)
        self._column_scale = np.ones(0)

    def _fit(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        import torch

        from optuna_nas.predictors import _torch

        self._column_center = inputs.mean(axis=0)
        scale = inputs.std(axis=0)
        self._column_scale = np.where(scale > 0, scale, 1.0)
        with _torch.threads(self.num_threads):
            x = torch.as_tensor(self._standardise_columns(inputs), dtype=_torch.DTYPE)
            y = torch.as_tensor(self._standardise_targets(targets), dtype=_torch.DTYPE)
            self._members = []
            for member in range(self.ensemble_size):
                rng = _torch.generator(member_seed(self.seed, member))
                model = _torch.mlp(inputs.shape[1], self.hidden_sizes)
                _torch.initialize(model, rng)
                _torch.train(
                    model,
                    [x],
                    y,
                    loss=self.loss,
                    epochs=self.epochs,
                    batch_size=self.batch_size,
                    learning_rate=self.learning_rate,
                    weight_decay=self.weight_decay,
                    rng=rng,
                )
                self._members.append(model)

    def _predict(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from optuna_nas.predictors import _torch

        with _torch.threads(self.num_threads):
            x = torch.as_tensor(self._standardise_columns(inputs), dtype=_torch.DTYPE)
            return self._summarise([_torch.predict(model, [x]) for model in self._members])

    def _standardise_columns(self, inputs: np.ndarray) -> np.ndarray:
        return (inputs - self._column_center) / self._column_scale


class LSTMEnsemble(_NeuralEnsemble, SequencePredictor):
    """An ensemble of LSTMs over architectures' token sequences (PNAS's RNN predictor).

    Liu et al. 2018, https://arxiv.org/abs/1712.00559: each member embeds the tokens, runs a
    one-layer LSTM over them and reads the score off its state after the last token; ensembles of
    5, L1 loss. Sequences may have any length, so one model scores cells of 1 to B blocks.

    ``X`` holds one sequence of token ids per architecture (:class:`TokenEncoder`): id 0 pads
    (:attr:`TokenEncoder.PADDING`), id 1 is the unknown token (:attr:`TokenEncoder.UNKNOWN`). The
    embedding table covers the ids of the data fitted on; a larger id met later counts as unknown.
    Scores are standardised on the training data. :meth:`update` refits every member from scratch
    on all data seen (the same seed, so the result equals one ``fit`` on all of it).

    Deterministic as :class:`MLPEnsemble` is: generators seeded by ``(seed, member)``, float32,
    ``num_threads`` threads.

    Args:
        embedding_dim: Size of each token's embedding.
        hidden_size: Size of the LSTM's state.
        ensemble_size: Members, each with its own initial weights and batch order (PNAS: 5; with
            one, the spread is 0).
        epochs: Passes over the data per member.
        batch_size: Samples per Adam step.
        learning_rate: Adam's step size.
        weight_decay: Adam's L2 penalty.
        loss: ``l1`` (PNAS) or ``l2`` (mean squared error), on the standardised scores.
        seed: Seed of every member's weights and batch order; ``None`` draws one.
        num_threads: Threads torch uses inside ``fit`` and ``predict``, set for the call and restored
            after (results can depend on the thread count); ``None`` leaves torch's setting.

    Raises:
        ValueError: An argument is out of range; the message names it.
    """

    def __init__(
        self,
        *,
        embedding_dim: int = 32,
        hidden_size: int = 64,
        ensemble_size: int = 5,
        epochs: int = 50,
        batch_size: int = 16,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
        loss: str = "l1",
        seed: int | None = None,
        num_threads: int | None = 1,
    ) -> None:
        super().__init__()
        self.embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1, maximum=MAX_WIDTH)
        self.hidden_size = check_int("hidden_size", hidden_size, minimum=1, maximum=MAX_WIDTH)
        self._set_common(
            ensemble_size=ensemble_size,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            loss=loss,
            seed=seed,
            num_threads=num_threads,
        )
        self._vocabulary_size = 2

    def _fit(self, inputs: list[tuple[int, ...]], targets: np.ndarray) -> None:
        import torch

        from optuna_nas.predictors import _torch

        self._vocabulary_size = max(2, 1 + max(max(sequence) for sequence in inputs))
        with _torch.threads(self.num_threads):
            tokens, lengths = _torch.padded(inputs)
            y = torch.as_tensor(self._standardise_targets(targets), dtype=_torch.DTYPE)
            self._members = []
            for member in range(self.ensemble_size):
                rng = _torch.generator(member_seed(self.seed, member))
                model = _torch.SequenceRegressor(self._vocabulary_size, self.embedding_dim, self.hidden_size)
                _torch.initialize(model, rng)
                _torch.train(
                    model,
                    [tokens, lengths],
                    y,
                    loss=self.loss,
                    epochs=self.epochs,
                    batch_size=self.batch_size,
                    learning_rate=self.learning_rate,
                    weight_decay=self.weight_decay,
                    rng=rng,
                    trim=_torch.trim_padding,
                )
                self._members.append(model)

    def _predict(self, inputs: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
        from optuna_nas.predictors import _torch

        unknown = 1
        known = [tuple(i if i < self._vocabulary_size else unknown for i in sequence) for sequence in inputs]
        with _torch.threads(self.num_threads):
            tokens, lengths = _torch.padded(known)
            return self._summarise([_torch.predict(model, [tokens, lengths]) for model in self._members])
