"""Architectures as integer token sequences (for sequence models) and as fixed-length vectors."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

from optuna_nas._validation import check_int
from optuna_nas.predictors._architecture import Architecture
from optuna_nas.predictors._architecture import SupportsToDict
from optuna_nas.predictors._architecture import architecture_features
from optuna_nas.predictors._architecture import architecture_tokens


class TokenEncoder:
    """Architectures as sequences of integer ids, from a vocabulary of :func:`architecture_tokens`.

    Id 0 (:attr:`PADDING`) pads sequences to one length and id 1 (:attr:`UNKNOWN`) stands for a
    token outside the vocabulary; the vocabulary's tokens are ids 2, 3, ... in order. :meth:`fit`
    makes the vocabulary from the architectures' tokens, sorted, so it depends on which
    architectures it saw and not on their order. :meth:`update` appends the tokens it has not seen,
    sorted, and never renumbers a known one, so a vocabulary that grows as trials finish, in
    trial-number order, is the same in every process.

    Args:
        vocabulary: Tokens known from the start, in id order.

    Raises:
        ValueError: ``vocabulary`` is not a sequence of distinct strings.

    Example:
        >>> encoder = TokenEncoder().fit([{"op": "conv", "units": 32}, {"op": "pool"}])
        >>> encoder.vocabulary
        ('op=conv', 'op=pool', 'units=32')
        >>> encoder.encode({"op": "pool", "units": 64})  # units=64 was never seen: UNKNOWN
        [3, 1]
    """

    PADDING = 0
    UNKNOWN = 1

    def __init__(self, *, vocabulary: Sequence[str] = ()) -> None:
        if isinstance(vocabulary, str) or not isinstance(vocabulary, Sequence):
            raise ValueError(f"vocabulary must be a sequence of strings, got {vocabulary!r}.")
        if not all(isinstance(token, str) for token in vocabulary) or len(set(vocabulary)) != len(vocabulary):
            raise ValueError(f"vocabulary must hold distinct strings, got {list(vocabulary)!r}.")
        self._tokens: list[str] = list(vocabulary)
        self._ids = {token: index + 2 for index, token in enumerate(self._tokens)}

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The known tokens, in id order (the first is id 2)."""
        return tuple(self._tokens)

    @property
    def size(self) -> int:
        """How many ids there are, padding and unknown included: every id is below it."""
        return len(self._tokens) + 2

    def fit(self, architectures: Iterable[Architecture]) -> TokenEncoder:
        """Make the vocabulary from the tokens of ``architectures``, sorted; returns ``self``.

        Raises:
            ValueError: ``architectures`` is not a collection of architectures.
        """
        tokens = {token for architecture in _many(architectures) for token in architecture_tokens(architecture)}
        self._tokens = sorted(tokens)
        self._ids = {token: index + 2 for index, token in enumerate(self._tokens)}
        return self

    def update(self, architectures: Iterable[Architecture]) -> TokenEncoder:
        """Append the tokens of ``architectures`` not yet known, sorted; known ids stay; returns ``self``.

        Raises:
            ValueError: ``architectures`` is not a collection of architectures.
        """
        tokens = {token for architecture in _many(architectures) for token in architecture_tokens(architecture)}
        for token in sorted(tokens - self._ids.keys()):
            self._ids[token] = len(self._tokens) + 2
            self._tokens.append(token)
        return self

    def encode(self, architecture: Architecture) -> list[int]:
        """The ids of the architecture's tokens, :attr:`UNKNOWN` for tokens outside the vocabulary.

        Raises:
            ValueError: ``architecture`` is not an architecture.
        """
        return [self._ids.get(token, self.UNKNOWN) for token in architecture_tokens(architecture)]

    def encode_many(self, architectures: Iterable[Architecture]) -> list[list[int]]:
        """:meth:`encode` of each architecture.

        Raises:
            ValueError: ``architectures`` is not a collection of architectures.
        """
        return [self.encode(architecture) for architecture in _many(architectures)]

    def to_dict(self) -> dict[str, Any]:
        """The encoder as JSON-safe data (:meth:`from_dict` reads it back)."""
        return {"vocabulary": list(self._tokens)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenEncoder:
        """The encoder :meth:`to_dict` described.

        Raises:
            ValueError: ``data`` is not what :meth:`to_dict` returns.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("vocabulary"), list):
            raise ValueError(f"data must be TokenEncoder.to_dict() output, got {data!r}.")
        return cls(vocabulary=data["vocabulary"])


class VectorEncoder:
    """Architectures as fixed-length vectors of :func:`architecture_features`.

    Either fitted: :meth:`fit` lays out one column per feature name seen in the architectures it
    is given, sorted, and :meth:`transform` leaves out features it never saw; fit it on every
    architecture you mean to encode (the candidates too: it reads no scores), so that a deeper chain
    or a cell with more blocks than the training ones keeps its extra layers. Or hashed
    (``hash_dim``): each feature is added into column ``crc32(name) % hash_dim``, so any
    architecture, of any space and length, has a vector of that length without fitting, at the
    price of collisions.

    Args:
        hash_dim: Length of hashed vectors; ``None`` for a fitted layout.
        features: Feature names known from the start, one column each, in order (not with ``hash_dim``).

    Raises:
        ValueError: ``hash_dim`` is not a positive integer, or ``features`` is not a sequence of
            distinct strings or is given with ``hash_dim``.

    Example:
        >>> chains = [{"layer_0/filters": 16}, {"layer_0/filters": 32, "layer_1/filters": 64}]
        >>> encoder = VectorEncoder().fit(chains)
        >>> encoder.feature_names
        ('layer_0/filters', 'layer_1/filters', 'params')
        >>> encoder.transform(chains).tolist()
        [[16.0, 0.0, 1.0], [32.0, 64.0, 2.0]]
    """

    def __init__(self, *, hash_dim: int | None = None, features: Sequence[str] = ()) -> None:
        self.hash_dim = None if hash_dim is None else check_int("hash_dim", hash_dim, minimum=1)
        if isinstance(features, str) or not isinstance(features, Sequence):
            raise ValueError(f"features must be a sequence of feature names, got {features!r}.")
        if not all(isinstance(name, str) for name in features) or len(set(features)) != len(features):
            raise ValueError(f"features must hold distinct strings, got {list(features)!r}.")
        if features and hash_dim is not None:
            raise ValueError(f"features must be empty when hash_dim is given, got {list(features)!r}.")
        self._names: list[str] = list(features)
        self._columns = {name: index for index, name in enumerate(self._names)}
        self._fitted = bool(self._names) or self.hash_dim is not None

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The fitted layout's feature names, in column order (empty when hashed)."""
        return tuple(self._names)

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        return self.hash_dim if self.hash_dim is not None else len(self._names)

    def fit(self, architectures: Iterable[Architecture]) -> VectorEncoder:
        """Lay out one column per feature name of ``architectures``, sorted; returns ``self``.

        With ``hash_dim`` there is nothing to fit: the architectures are only checked.

        Raises:
            ValueError: ``architectures`` is not a collection of architectures.
        """
        names = {name for architecture in _many(architectures) for name in architecture_features(architecture)}
        if self.hash_dim is None:
            self._names = sorted(names)
            self._columns = {name: index for index, name in enumerate(self._names)}
        self._fitted = True
        return self

    def transform(self, architectures: Iterable[Architecture]) -> np.ndarray:
        """One row per architecture, ``dim`` float64 columns.

        Raises:
            ValueError: ``architectures`` is not a collection of architectures.
            RuntimeError: Neither fitted nor hashed.
        """
        rows = [architecture_features(architecture) for architecture in _many(architectures)]
        if not self._fitted:
            raise RuntimeError("VectorEncoder is not fitted: call fit(architectures) first, or give hash_dim.")
        matrix = np.zeros((len(rows), self.dim), dtype=np.float64)
        for row, features in enumerate(rows):
            for name, value in features.items():
                if self.hash_dim is not None:
                    matrix[row, zlib.crc32(name.encode()) % self.hash_dim] += value
                elif name in self._columns:
                    matrix[row, self._columns[name]] = value
        return matrix

    def fit_transform(self, architectures: Iterable[Architecture]) -> np.ndarray:
        """:meth:`fit`, then :meth:`transform`, on the same architectures.

        Raises:
            ValueError: ``architectures`` is not a collection of architectures.
        """
        architectures = _many(architectures)
        return self.fit(architectures).transform(architectures)

    def encode(self, architecture: Architecture) -> np.ndarray:
        """The vector of one architecture.

        Raises:
            ValueError: ``architecture`` is not an architecture.
            RuntimeError: Neither fitted nor hashed.
        """
        vector: np.ndarray = self.transform([architecture])[0]
        return vector

    def to_dict(self) -> dict[str, Any]:
        """The encoder as JSON-safe data (:meth:`from_dict` reads it back)."""
        return {"hash_dim": self.hash_dim, "features": list(self._names)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VectorEncoder:
        """The encoder :meth:`to_dict` described.

        Raises:
            ValueError: ``data`` is not what :meth:`to_dict` returns.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), list):
            raise ValueError(f"data must be VectorEncoder.to_dict() output, got {data!r}.")
        return cls(hash_dim=data.get("hash_dim"), features=data["features"])


def _many(architectures: Iterable[Architecture]) -> list[Architecture]:
    """``architectures`` as a list, refusing a single architecture passed where many are expected."""
    if isinstance(architectures, (Mapping, str, bytes)) or isinstance(architectures, SupportsToDict):
        raise ValueError(
            "architectures must be a collection of architectures (a list of specs or params), "
            f"got a single {type(architectures).__name__}: {architectures!r}."
        )
    try:
        return list(architectures)
    except TypeError:
        raise ValueError(f"architectures must be a collection of architectures, got {architectures!r}.") from None
