"""The engine protocol, and the default engine: a calibrated linear model over n-grams.

An engine learns from ``(text, intent)`` examples and ranks every intent for a text with a
score in [0, 1]. :class:`LinearEngine` (the default) is a multi-class linear SVM (Crammer
and Singer) over the features of :mod:`qbot.nlu.features`, trained by scikit-learn's liblinear
(deterministic: a fixed seed and no threads). Its raw margins (the top score and its lead over
the next intent) and the number of examples an intent are turned into the probability that the
top intent is right by one fixed logistic curve (:data:`CALIBRATION`), fitted on held-out and
out-of-scope queries at several training sizes, so a threshold of 0.5 means "more likely right
than wrong" whether there are 3 intents or 300, 5 examples an intent or 100. Words the
examples never had lower the scores (see :mod:`qbot.nlu.features`): that is what refuses
off-topic messages. With one or two intents there is no "neither" to learn, and the score is
the cosine to the nearest example instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from qbot._json import dumps_text, loads
from qbot.errors import ConfigError
from qbot.nlu.features import CHAR_RANGE, CHAR_WEIGHT, MAX_WORD, WORD_WEIGHT, Featurizer
from qbot.nlu.text import TEXT_VERSION

__all__ = ["CALIBRATION", "ENGINE_VERSION", "Engine", "LinearEngine", "Ranked", "SupportsCache"]

Ranked = list[tuple[str, float]]
"""Intents best first, each with its score in [0, 1]."""

# (raw score, lead over the next intent, log of the examples an intent, constant) → logit of
# "the top intent is right". Fitted once (bench/intents_accuracy.py --calibrate) on Banking77:
# trained on four fifths of the training set without 10 of its intents, at 5, 10, 30 examples
# an intent and all of them, scored on the other fifth, the left-out intents' queries counting
# as wrong. Margins shrink when an intent has few examples; the third term says by how much,
# so a score means the same with 5 examples an intent or 100, 3 intents or 300.
CALIBRATION = (2.08, 4.64, -0.46, -0.75)
_TOL = 0.3  # the solver's stopping tolerance
_PRUNE = 0.01  # weights under this share of the largest are dropped (see _store)
_NEAREST_MAX = 2000  # examples kept as such (one or two intents): bounds their memory
# Names the cached models: a change to the features or the curve must not reuse old ones.
ENGINE_VERSION = (
    f"linear-4/sparse{_PRUNE}/cs{_TOL}/char{CHAR_RANGE}/max{MAX_WORD}"
    f"/w{WORD_WEIGHT}/c{CHAR_WEIGHT}/cal{CALIBRATION}/{TEXT_VERSION}"
)


@runtime_checkable
class Engine(Protocol):
    """What :class:`~qbot.intents.IntentSet` needs from an intent classifier."""

    def fit(self, examples: Sequence[tuple[str, str]]) -> None:
        """Learn from ``(text, intent)`` pairs (every intent has one pair or more)."""

    def predict(self, text: str) -> Ranked:
        """Intents for ``text``, best first, with scores in [0, 1] (an empty list: no idea)."""


@runtime_checkable
class SupportsCache(Engine, Protocol):
    """An engine whose fitted model :mod:`qbot.nlu.cache` can keep on disk."""

    version: str

    def dump(self) -> dict[str, NDArray[Any]]:
        """The fitted model as named numpy arrays (no pickles)."""

    def load(self, arrays: dict[str, NDArray[Any]]) -> None:
        """Restore what :meth:`dump` gave; raise ``ValueError``/``KeyError`` if it does not fit."""


class LinearEngine:
    """The default engine: tf-idf n-grams, a linear SVM, calibrated scores.

    Args:
        c: the SVM's regularisation (smaller: smoother, better with few examples).
    """

    version = ENGINE_VERSION

    def __init__(self, c: float = 1.0) -> None:
        self.c = c
        self._names: list[str] = []
        self._labels: NDArray[np.object_] = np.zeros(0, dtype=object)  # the names, for numpy
        self._featurizer: Featurizer | None = None
        # The weights, sparse (a feature has weights for the few intents whose examples have
        # it): feature f's are values[indptr[f]:indptr[f + 1]], for the columns in targets at
        # the same places, each an int16 times the feature's scale (1/32767 of its largest
        # weight as precision), rounded once at fit: the model scores the same fitted or
        # loaded: 1.5 MB for Banking77's 10,003 examples, where a dense float64 matrix takes 22.
        self._indptr: NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self._targets: NDArray[Any] = np.zeros(0, dtype=np.uint16)
        self._values: NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._scale: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._columns = 0
        self._bias: NDArray[np.float64] = np.zeros(0)
        self._calibration: tuple[float, float, float, float] = CALIBRATION
        self._density = 0.0  # log of the mean number of examples an intent
        # Nearest-example mode (one or two intents): weights hold the examples, owner[i] is
        # example i's intent. Empty: the linear model.
        self._owner: NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    # --- learning ------------------------------------------------------------------------------

    def fit(self, examples: Sequence[tuple[str, str]]) -> None:
        if not examples:
            raise ConfigError("an intent engine needs at least one example to learn from")
        texts = [t for t, _ in examples]
        labels = [n for _, n in examples]
        self._names = list(dict.fromkeys(labels))
        self._labels = np.asarray(self._names, dtype=object)
        self._featurizer, matrix = Featurizer.fit_matrix(texts)
        order = {n: i for i, n in enumerate(self._names)}
        y = np.asarray([order[n] for n in labels], dtype=np.int64)
        self._density = float(np.log(len(texts) / len(self._names)))
        if len(self._names) == 1 or (len(self._names) == 2 and len(texts) <= _NEAREST_MAX):
            # One or two intents: a boundary between two says nothing about "neither" (every
            # text would be sure of one side), so the score is the cosine to the nearest
            # example. Rows have a norm of sqrt(WORD_WEIGHT² + CHAR_WEIGHT²): scaled to 1.
            scale = WORD_WEIGHT**2 + CHAR_WEIGHT**2
            kept = min(len(texts), _NEAREST_MAX)  # one intent with more: its first ones
            self._store(matrix[:kept].T / scale, np.zeros(kept), prune=0.0)
            self._owner = y[:kept]
            return
        self._owner = np.zeros(0, dtype=np.int64)
        weights, bias = self._train(matrix, y)
        self._store(weights, bias, prune=_PRUNE)

    def _store(self, weights: Any, bias: NDArray[np.float64], prune: float) -> None:
        """Keep ``weights`` (a row a feature, a column an intent or example) sparse: weights
        under ``prune`` times the largest are dropped, then features left without a weight
        leave the vocabulary (they count as unseen, like any word the examples lacked)."""
        from scipy import sparse

        matrix = sparse.csr_matrix(weights)
        if prune and matrix.nnz:
            matrix.data[np.abs(matrix.data) < prune * np.abs(matrix.data).max()] = 0.0
        matrix.eliminate_zeros()
        matrix.sort_indices()
        rows = np.diff(matrix.indptr) > 0
        assert self._featurizer is not None
        self._featurizer = self._featurizer.select(rows)
        self._indptr, self._targets, self._values, self._scale = _compress(matrix[rows])
        self._bias = bias
        self._columns = len(bias)

    def _train(
        self, matrix: Any, y: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        from sklearn.svm import LinearSVC  # imported late: a bot without examples skips it

        present = sorted(set(y.tolist()))
        weights = np.zeros((matrix.shape[1], len(self._names)))
        bias = np.full(len(self._names), -1.0)
        # One multi-class problem (Crammer and Singer) instead of one per intent: a pass over
        # the examples updates every intent at once, so it builds in a fraction of the time
        # one-vs-rest takes, and reads as well or better. The loose tolerance stops where the
        # ranking no longer changes (Banking77 reads the same at 0.3 as at 0.01).
        model = LinearSVC(
            C=self.c, multi_class="crammer_singer", tol=_TOL, random_state=0, max_iter=1000
        )
        model.fit(matrix, y)
        coef = np.asarray(model.coef_, dtype=np.float64)
        intercept = np.asarray(model.intercept_, dtype=np.float64)
        if coef.shape[0] == 1 and len(present) == 2:  # one boundary for two classes
            coef = np.vstack([-coef, coef])
            intercept = np.concatenate([-intercept, intercept])
        for k, cls in enumerate(model.classes_):
            weights[:, int(cls)] = coef[k]
            bias[int(cls)] = intercept[k]
        return weights, bias

    # --- scoring -------------------------------------------------------------------------------

    def _raw(self, text: str) -> NDArray[np.float64]:
        if self._featurizer is None:
            raise ConfigError("the intent engine is used before fit()")
        cols, vals = self._featurizer.row(text)
        if not cols.size:
            return np.full(len(self._names), -np.inf)
        # Each feature's weights are a run of (column, int16) pairs: the runs of the
        # message's features laid end to end, weighted and summed per column in one pass.
        starts = self._indptr[cols]
        lengths = self._indptr[cols + 1] - starts
        ends = np.cumsum(lengths)
        at = np.arange(int(ends[-1])) + np.repeat(starts - ends + lengths, lengths)
        weights = np.repeat(vals * self._scale[cols], lengths) * self._values[at]
        sums = np.bincount(self._targets[at], weights=weights, minlength=self._columns)
        raw: NDArray[np.float64] = sums + self._bias
        if self._owner.size:  # per intent, its nearest example
            best = np.full(len(self._names), -np.inf)
            np.maximum.at(best, self._owner, raw)
            return best
        return raw

    def margins(self, text: str) -> tuple[str, float, float] | None:
        """The top intent, its raw score and its lead over the next: what the calibration
        curve reads with :attr:`density` (``bench/intents_accuracy.py --calibrate`` refits it
        from these)."""
        raw = self._raw(text)
        if not np.isfinite(raw).any():
            return None
        top = int(np.argmax(raw))
        return (self._names[top], *_margin_features(raw, top))

    @property
    def density(self) -> float:
        """The log of the mean number of examples an intent (the curve's third input)."""
        return self._density

    def predict(self, text: str) -> Ranked:
        # Rounded: the solver stops at a tolerance, so intents with the same examples differ in
        # the last digits; a tie goes to the intent declared first, not to that noise.
        raw = self._raw(text).round(6)
        if not np.isfinite(raw).any():
            return []
        if self._owner.size:  # one or two intents: the cosine to the nearest example
            ordered = np.argsort(-raw, kind="stable").tolist()  # ties: the first declared
            cosine = np.clip(raw, 0.0, 1.0).round(6)
            return [(self._names[i], float(cosine[i])) for i in ordered]
        a, b, d, c = self._calibration
        order = np.argsort(-raw, kind="stable")  # ties: the intent declared first
        top = raw[order[0]]
        lead = raw - top  # each intent's lead over the best other one: negative but the top's
        lead[order[0]] = top - raw[order[1]]
        z = a * raw + b * lead + d * self._density + c
        probability = 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))
        # The raw order is the probability order: below the top, z grows with the raw score,
        # and the top's lead is at least as large as anyone's.
        names, scores = self._labels[order].tolist(), probability[order].round(6).tolist()
        return list(zip(names, scores, strict=True))

    # --- cache ---------------------------------------------------------------------------------

    def dump(self) -> dict[str, NDArray[Any]]:
        if self._featurizer is None:
            raise ConfigError("the intent engine is dumped before fit()")
        meta = dumps_text({"names": self._names})
        return {
            "meta": np.frombuffer(meta.encode(), dtype=np.uint8),
            **self._featurizer.arrays(),
            "indptr": self._indptr,
            "targets": self._targets,
            "values": self._values,
            "scale": self._scale,
            "bias": self._bias,
            "calibration": np.asarray([*self._calibration, self._density]),
            "owner": self._owner,
        }

    def load(self, arrays: dict[str, NDArray[Any]]) -> None:
        meta = loads(bytes(arrays["meta"].astype(np.uint8)).decode())
        featurizer = Featurizer.from_arrays(arrays)
        names = [str(n) for n in meta["names"]]
        indptr = np.asarray(arrays["indptr"], dtype=np.int64)
        targets = np.asarray(arrays["targets"])
        values = np.asarray(arrays["values"], dtype=np.int16)
        scale = np.asarray(arrays["scale"], dtype=np.float32)
        bias = np.asarray(arrays["bias"], dtype=np.float64)
        calibration = tuple(float(x) for x in arrays["calibration"])
        owner = np.asarray(arrays["owner"], dtype=np.int64)
        columns = owner.size or len(names)
        if (
            indptr.shape != (featurizer.size + 1,)
            or indptr[0] != 0
            or bool((np.diff(indptr) < 0).any())
            or targets.shape != (int(indptr[-1]),)
            or values.shape != targets.shape
            or targets.dtype.kind not in "iu"
            or scale.shape != (featurizer.size,)
            or bias.shape != (columns,)
        ):
            raise ValueError("cached model does not match its own vocabulary")
        if targets.size and not (int(targets.min()) >= 0 and int(targets.max()) < columns):
            raise ValueError("cached model has weights for unknown intents")
        if owner.size and not (owner.min() >= 0 and owner.max() < len(names)):
            raise ValueError("cached model names examples of unknown intents")
        if len(calibration) != 5:
            raise ValueError("cached calibration has the wrong shape")
        self._names, self._featurizer, self._bias = names, featurizer, bias
        self._indptr, self._targets, self._values, self._scale = indptr, targets, values, scale
        self._columns = columns
        self._labels = np.asarray(names, dtype=object)
        self._owner = owner
        self._calibration = (calibration[0], calibration[1], calibration[2], calibration[3])
        self._density = calibration[4]


def _compress(
    matrix: Any,
) -> tuple[NDArray[np.int64], NDArray[Any], NDArray[np.int16], NDArray[np.float32]]:
    """A CSR matrix without empty rows as (indptr, columns, int16 values, each row's scale)."""
    indptr = np.asarray(matrix.indptr, dtype=np.int64)
    data = np.asarray(matrix.data, dtype=np.float64)
    top = np.maximum.reduceat(np.abs(data), indptr[:-1]) if data.size else np.zeros(0)
    scale = (top / 32767.0).astype(np.float32)
    steps = np.rint(data / np.repeat(scale.astype(np.float64), np.diff(indptr)))
    values = np.clip(steps, -32767, 32767).astype(np.int16)
    kind = np.uint16 if matrix.shape[1] <= 65535 else np.int64
    return indptr, np.asarray(matrix.indices).astype(kind), values, scale


def _margin_features(raw: NDArray[np.float64], i: int) -> tuple[float, float]:
    """Intent ``i``'s raw score and its lead over the best other intent (for calibration)."""
    score = float(raw[i])
    if len(raw) == 1:
        return score, score
    return score, score - float(np.delete(raw, i).max())
