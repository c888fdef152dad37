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
from typing import Any

import numpy as np
from scipy import sparse

from qbot.nlu.text import stems, words

__all__ = ["Featurizer", "char_grams", "word_features"]

CHAR_RANGE = (2, 5)
WORD_WEIGHT = 1.0
CHAR_WEIGHT = 1.0


def word_features(tokens: Sequence[str]) -> list[str]:
    """Words, their roots (``~kembali``) where they differ, and adjacent word pairs."""
    out = list(tokens)
    for w in tokens:
        out.extend(_roots(w))
    out.extend(f"{a} {b}" for a, b in itertools.pairwise(tokens))
    return out


def char_grams(tokens: Sequence[str]) -> list[str]:
    """Character n-grams (``CHAR_RANGE``) of each word padded with a space on both sides."""
    out: list[str] = []
    for w in tokens:
        out.extend(_grams(w))
    return out


# A chat vocabulary is small: each word's roots and n-grams are worked out once.
@functools.lru_cache(maxsize=65536)
def _roots(word: str) -> tuple[str, ...]:
    return tuple("~" + r for r in stems(word) if r != word)


@functools.lru_cache(maxsize=65536)
def _grams(word: str) -> tuple[str, ...]:
    low, high = CHAR_RANGE
    padded = f" {word} "
    size = len(padded)
    return tuple(
        padded[i : i + n] for n in range(low, min(high, size) + 1) for i in range(size - n + 1)
    )


@dataclass(slots=True)
class _Block:
    index: dict[str, int]
    idf: list[float]
    weight: float
    offset: int

    unseen_idf: float

    def add(self, grams: Iterable[str], cols: list[int], vals: list[float]) -> None:
        counts: dict[int, int] = {}
        unseen: dict[str, int] = {}
        index = self.index
        for g in grams:
            j = index.get(g)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
            else:
                unseen[g] = unseen.get(g, 0) + 1
        if not counts:
            return
        idf = self.idf
        row = [(j, (1.0 + math.log(c)) * idf[j]) for j, c in counts.items()]
        # Words the examples never had still count in the norm: a message mostly made of them
        # gets a short vector, so low scores, instead of looking like its one known word.
        rest = sum((1.0 + math.log(c)) ** 2 for c in unseen.values()) * self.unseen_idf**2
        scale = self.weight / math.sqrt(sum(v * v for _, v in row) + rest)
        offset = self.offset
        for j, v in row:
            cols.append(offset + j)
            vals.append(v * scale)


class Featurizer:
    """Learns the vocabulary and idf of a corpus; turns texts into sparse feature rows."""

    def __init__(self, blocks: list[_Block]) -> None:
        self._blocks = blocks
        self.size = sum(len(b.index) for b in blocks)

    @classmethod
    def fit(cls, texts: Sequence[str]) -> Featurizer:
        """The vocabulary (in first-seen order, so the same texts give the same columns)."""
        tokenized = [words(t) for t in texts]
        blocks: list[_Block] = []
        offset = 0
        for extract, weight in ((word_features, WORD_WEIGHT), (char_grams, CHAR_WEIGHT)):
            doc_freq: dict[str, int] = {}
            for tokens in tokenized:
                for g in set(extract(tokens)):
                    doc_freq[g] = doc_freq.get(g, 0) + 1
            n = len(texts)
            index = {g: j for j, g in enumerate(doc_freq)}
            idf = [math.log((1 + n) / (1 + df)) + 1.0 for df in doc_freq.values()]
            blocks.append(_Block(index, idf, weight, offset, math.log(1 + n) + 1.0))
            offset += len(index)
        return cls(blocks)

    def row(self, text: str) -> tuple[list[int], list[float]]:
        """The columns and values of ``text``'s feature row."""
        tokens = words(text)
        cols: list[int] = []
        vals: list[float] = []
        self._blocks[0].add(word_features(tokens), cols, vals)
        self._blocks[1].add(char_grams(tokens), cols, vals)
        return cols, vals

    def matrix(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """A CSR matrix with one row a text."""
        indptr = [0]
        cols: list[int] = []
        vals: list[float] = []
        for text in texts:
            c, v = self.row(text)
            cols.extend(c)
            vals.extend(v)
            indptr.append(len(cols))
        return sparse.csr_matrix(
            (np.asarray(vals, dtype=np.float64), np.asarray(cols, dtype=np.int32), indptr),
            shape=(len(texts), self.size),
        )

    def state(self) -> dict[str, Any]:
        """What :meth:`from_state` needs, as plain lists (for the on-disk cache)."""
        return {
            "blocks": [
                {"grams": list(b.index), "idf": b.idf, "weight": b.weight, "unseen": b.unseen_idf}
                for b in self._blocks
            ]
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Featurizer:
        blocks: list[_Block] = []
        offset = 0
        for b in state["blocks"]:
            index = {g: j for j, g in enumerate(b["grams"])}
            blocks.append(
                _Block(index, list(b["idf"]), float(b["weight"]), offset, float(b["unseen"]))
            )
            offset += len(index)
        return cls(blocks)
