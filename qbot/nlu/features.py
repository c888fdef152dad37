"""Sparse tf-idf features: words, Indonesian roots, word pairs and character n-grams.

Two blocks, each l2-normalised then weighted: word-level features (words, their roots marked
``~``, adjacent pairs) and character n-grams of each word padded with spaces (``" ref"``,
``"fund "``), which carry typos, inflections and unseen compounds. Term frequencies are
sublinear (``1 + log tf``) and idf is smoothed, as in scikit-learn's ``TfidfVectorizer``, but
the transform of one message is plain Python over dicts: a few tens of microseconds, where a
scikit-learn vectorizer spends most of a millisecond checking its input.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from qbot.nlu.text import stems, words

if TYPE_CHECKING:  # imported when training: a restart from the cache does without
    from scipy import sparse

__all__ = ["Featurizer", "char_grams", "word_features"]

CHAR_RANGE = (3, 5)
WORD_WEIGHT = 1.0
CHAR_WEIGHT = 1.0
_WORD_CACHE = 8192  # words whose gram columns are kept, per model (then cleared)
_ROOT_CACHE = 8192  # words whose roots and n-grams are kept (least recently used go)
# A longer "word" (a URL, a token, a key held down) has no root, and its n-grams are those of
# its first MAX_WORD letters: what a hostile message costs in time and cache is bounded.
MAX_WORD = 40


def word_features(tokens: Sequence[str]) -> list[str]:
    """Words, their roots (``~kembali``) where they differ, and adjacent word pairs."""
    out = list(tokens)
    for w in tokens:
        if len(w) <= MAX_WORD:
            out.extend(_roots(w))
    out.extend(f"{a} {b}" for a, b in itertools.pairwise(tokens))
    return out


def char_grams(tokens: Sequence[str]) -> list[str]:
    """Character n-grams (``CHAR_RANGE``) of each word padded with a space on both sides."""
    out: list[str] = []
    for w in tokens:
        out.extend(_grams(w[:MAX_WORD]))
    return out


# A chat vocabulary is small: each word's roots and n-grams are worked out once.
@functools.lru_cache(maxsize=_ROOT_CACHE)
def _roots(word: str) -> tuple[str, ...]:
    return tuple("~" + r for r in stems(word) if r != word)


def _word_grams(word: str) -> tuple[str, ...]:
    low, high = CHAR_RANGE
    padded = f" {word} "
    size = len(padded)
    return tuple(
        padded[i : i + n] for n in range(low, min(high, size) + 1) for i in range(size - n + 1)
    )


# Training reads each word many times; a message's words go to the model's own cache of their
# columns instead (a few integers a word, where the grams take kilobytes).
_grams = functools.lru_cache(maxsize=_ROOT_CACHE)(_word_grams)


@dataclass(slots=True)
class _Block:
    index: dict[str, int]
    idf: NDArray[np.float64]
    weight: float
    offset: int
    unseen_idf: float

    def add(self, grams: Iterable[str], cols: list[NDArray[Any]], vals: list[NDArray[Any]]) -> None:
        """Append the block's part of a row: columns and l2-normalised, weighted values."""
        get = self.index.get
        ids = [get(g, -1) for g in grams]
        self.add_ids(np.asarray(ids, dtype=np.int64), cols, vals)

    def add_ids(
        self, ids: NDArray[np.int64], cols: list[NDArray[Any]], vals: list[NDArray[Any]]
    ) -> None:
        known = ids[ids >= 0]
        if not known.size:
            return
        # Grams the examples never had still count in the norm (each once): a message mostly
        # made of them gets a short vector, so low scores, instead of looking like its one
        # known word.
        unseen = float(ids.size - known.size) * self.unseen_idf**2
        columns, counts = np.unique(known, return_counts=True)
        values = (1.0 + np.log(counts)) * self.idf[columns]
        values *= self.weight / math.sqrt(float(values @ values) + unseen)
        cols.append(columns + self.offset)
        vals.append(values)


class _CharBlock(_Block):
    """Char n-grams: each word's gram columns are looked up once and kept."""

    __slots__ = ("_words",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._words: dict[str, NDArray[np.int64]] = {}

    def add_words(
        self, tokens: Sequence[str], cols: list[NDArray[Any]], vals: list[NDArray[Any]]
    ) -> None:
        cache, get = self._words, self.index.get
        parts = []
        for w in tokens:
            w = w[:MAX_WORD]  # as char_grams
            ids = cache.get(w)
            if ids is None:
                if len(cache) > _WORD_CACHE:
                    cache.clear()
                ids = cache[w] = np.asarray([get(g, -1) for g in _word_grams(w)], dtype=np.int64)
            parts.append(ids)
        if parts:
            self.add_ids(np.concatenate(parts), cols, vals)


class Featurizer:
    """Learns the vocabulary and idf of a corpus; turns texts into sparse feature rows."""

    def __init__(self, blocks: list[_Block]) -> None:
        words_block, chars = blocks
        self._chars = _CharBlock(
            chars.index, chars.idf, chars.weight, chars.offset, chars.unseen_idf
        )
        self._blocks = [words_block, self._chars]
        self.size = sum(len(b.index) for b in blocks)

    @classmethod
    def fit(cls, texts: Sequence[str]) -> Featurizer:
        """The vocabulary and idf of ``texts``."""
        return cls.fit_matrix(texts)[0]

    @classmethod
    def fit_matrix(cls, texts: Sequence[str]) -> tuple[Featurizer, sparse.csr_matrix]:
        """The vocabulary (columns in first-seen order, so the same texts give the same model)
        and the texts' matrix, in one pass and with the arithmetic in numpy."""
        from scipy import sparse

        tokenized = [words(t) for t in texts]
        n = len(texts)
        blocks: list[_Block] = []
        parts: list[sparse.csr_matrix] = []
        offset = 0
        for extract, weight in ((word_features, WORD_WEIGHT), (char_grams, CHAR_WEIGHT)):
            index: dict[str, int] = {}
            ids: list[int] = []
            indptr = [0]
            for tokens in tokenized:
                ids.extend(index.setdefault(g, len(index)) for g in extract(tokens))
                indptr.append(len(ids))
            counts = sparse.csr_matrix(
                (np.ones(len(ids)), np.asarray(ids, dtype=np.int64), np.asarray(indptr)),
                shape=(n, len(index)),
            )
            counts.sum_duplicates()
            df = np.bincount(counts.indices, minlength=len(index))
            idf = np.log((1 + n) / (1 + df)) + 1.0
            counts.data = (1.0 + np.log(counts.data)) * idf[counts.indices]
            norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
            norms[norms == 0] = 1.0
            parts.append(sparse.diags(weight / norms) @ counts)
            blocks.append(_Block(index, idf, weight, offset, math.log(1 + n) + 1.0))
            offset += len(index)
        matrix = sparse.hstack(parts, format="csr")
        return cls(blocks), matrix

    def row(self, text: str) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The columns and values of ``text``'s feature row (both empty: nothing known)."""
        tokens = words(text)
        cols: list[NDArray[Any]] = []
        vals: list[NDArray[Any]] = []
        self._blocks[0].add(word_features(tokens), cols, vals)
        self._chars.add_words(tokens, cols, vals)
        if not cols:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(cols), np.concatenate(vals)

    def matrix(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """A CSR matrix with one row a text."""
        from scipy import sparse

        indptr = [0]
        cols: list[int] = []
        vals: list[float] = []
        for text in texts:
            c, v = self.row(text)
            cols.extend(c.tolist())
            vals.extend(v.tolist())
            indptr.append(len(cols))
        return sparse.csr_matrix(
            (np.asarray(vals, dtype=np.float64), np.asarray(cols, dtype=np.int32), indptr),
            shape=(len(texts), self.size),
        )

    def select(self, keep: NDArray[np.bool_]) -> Featurizer:
        """The featurizer with only the columns ``keep`` marks (in their order): the grams
        dropped count as unseen from then on."""
        blocks: list[_Block] = []
        offset = 0
        for b in self._blocks:
            part = keep[b.offset : b.offset + len(b.index)]
            grams = [g for g, kept in zip(b.index, part.tolist(), strict=True) if kept]
            index = {g: j for j, g in enumerate(grams)}
            blocks.append(_Block(index, b.idf[part], b.weight, offset, b.unseen_idf))
            offset += len(index)
        return Featurizer(blocks)

    def arrays(self) -> dict[str, NDArray[Any]]:
        """What :meth:`from_arrays` needs, as numpy arrays (for the on-disk cache): each
        block's grams as one UTF-8 string, one a line (a gram never holds a line break)."""
        out: dict[str, NDArray[Any]] = {}
        for k, b in enumerate(self._blocks):
            out[f"grams{k}"] = np.frombuffer("\n".join(b.index).encode(), dtype=np.uint8)
            out[f"idf{k}"] = b.idf
            out[f"block{k}"] = np.asarray([b.weight, b.unseen_idf])
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]]) -> Featurizer:
        """Restore what :meth:`arrays` gave; ``ValueError``/``KeyError`` if it does not fit."""
        blocks: list[_Block] = []
        offset = 0
        for k in range(2):
            text = np.asarray(arrays[f"grams{k}"], dtype=np.uint8).tobytes().decode()
            grams = text.split("\n") if text else []
            idf = np.asarray(arrays[f"idf{k}"], dtype=np.float64)
            weight, unseen = (float(x) for x in np.asarray(arrays[f"block{k}"]).tolist())
            index = {g: j for j, g in enumerate(grams)}
            if idf.shape != (len(grams),) or len(index) != len(grams):
                raise ValueError("cached vocabulary does not match its idf")
            blocks.append(_Block(index, idf, weight, offset, unseen))
            offset += len(index)
        return cls(blocks)
