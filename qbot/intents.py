"""Named intents from a YAML file, matched with a score: deterministic, no ML dependency.

```yaml
threshold: 0.6            # optional; the config key intents.threshold wins when set
intents:
  refund:
    patterns: ['\\brefund\\b', 'money back']      # a regex hit scores 1.0
    keywords: [refund, "return my money"]        # a whole-word phrase hit scores 0.9
    examples:                                    # the nearest example scores its similarity
      - I want my money back
      - can I get a refund for my order
```
Similarity to the examples is the cosine of idf-weighted word sets, computed through an inverted
index so a message costs time in the words it shares with the examples, not in the number of
intents. :meth:`IntentSet.match` goes further: it reads the message's words rarest first, and once
the words left could not lift an example it has not met yet to the threshold, it stops opening
their (long) posting lists and only adds them to the examples already met: the same answer as
scoring every example, at a fraction of the cost for messages full of common words. Ties go to the
intent declared first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbot.config import read_yaml
from qbot.errors import ConfigError

__all__ = ["IntentMatch", "IntentSet", "load_intents", "tokenize"]

PATTERN_SCORE = 1.0
KEYWORD_SCORE = 0.9
_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased words; punctuation and spacing do not matter."""
    return _WORD.findall(text.casefold())


@dataclass(frozen=True, slots=True)
class IntentMatch:
    """The intent a text was classified as, and how sure: ``score`` in [0, 1]."""

    name: str
    score: float
    source: str = "examples"  # "pattern", "keyword" or "examples"


@dataclass(slots=True)
class _Intent:
    name: str
    order: int
    patterns: list[re.Pattern[str]] = field(default_factory=list)
    keywords: list[tuple[str, ...]] = field(default_factory=list)


class IntentSet:
    """A classifier over named intents.

    Args:
        intents: intent name → ``{"patterns": [...], "keywords": [...], "examples": [...]}``.
        threshold: the lowest score that counts as a match.
    """

    def __init__(self, intents: Mapping[str, Mapping[str, Any]], threshold: float = 0.6) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"intent threshold must be between 0 and 1, got {threshold!r}")
        self.threshold = threshold
        self._intents: dict[str, _Intent] = {}
        examples: list[tuple[int, frozenset[str]]] = []
        for order, (name, spec) in enumerate(intents.items()):
            self._intents[name] = intent = _Intent(name=name, order=order)
            if not isinstance(spec, Mapping):
                raise ConfigError(
                    f"intent {name!r} must be a mapping of patterns/keywords/examples"
                )
            unknown = set(spec) - {"patterns", "keywords", "examples"}
            if unknown:
                raise ConfigError(
                    f"intent {name!r} has unknown keys {sorted(unknown)!r}; "
                    "use patterns, keywords and examples"
                )
            for pattern in _strings(spec, "patterns", name):
                try:
                    intent.patterns.append(re.compile(pattern, re.IGNORECASE))
                except re.error as e:
                    raise ConfigError(f"intent {name!r}: pattern {pattern!r}: {e}") from e
            intent.keywords = [tuple(tokenize(k)) for k in _strings(spec, "keywords", name)]
            intent.keywords = [k for k in intent.keywords if k]
            examples.extend(
                (order, words) for e in _strings(spec, "examples", name) if (words := _words(e))
            )
            if not (intent.patterns or intent.keywords or any(o == order for o, _ in examples)):
                raise ConfigError(f"intent {name!r} has no patterns, keywords or examples")
        self._names = list(self._intents)
        self._with_patterns = [i for i in self._intents.values() if i.patterns]
        # Keyword phrases indexed by their first word: a message only checks phrases it could hold.
        self._keywords: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        for intent in self._intents.values():
            for phrase in intent.keywords:
                self._keywords.setdefault(phrase[0], []).append((intent.order, phrase))
        self._build_index(examples)

    def _build_index(self, examples: list[tuple[int, frozenset[str]]]) -> None:
        doc_freq: dict[str, int] = {}
        for _, words in examples:
            for w in words:
                doc_freq[w] = doc_freq.get(w, 0) + 1
        n = len(examples)
        # Smoothed idf: a word in every example still weighs a little; unseen words weigh most.
        self._idf = {w: math.log((n + 1) / (df + 1)) + 1.0 for w, df in doc_freq.items()}
        self._unseen_idf = math.log(n + 1) + 1.0
        self._example_intent = [order for order, _ in examples]
        self._example_norm = [
            math.sqrt(sum(self._idf[w] ** 2 for w in words)) for _, words in examples
        ]
        self._example_words = [words for _, words in examples]
        self._postings: dict[str, list[int]] = {}
        for i, (_, words) in enumerate(examples):
            for w in words:
                self._postings.setdefault(w, []).append(i)
        # Per word, 1 / the smallest norm of an example holding it: bounds what the word can add.
        self._reach = {
            w: 1.0 / min(self._example_norm[i] for i in posting)
            for w, posting in self._postings.items()
        }

    @property
    def names(self) -> list[str]:
        """Intent names in declaration order."""
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._intents

    def scores(self, text: str) -> dict[str, float]:
        """Every intent's score for ``text`` (0.0 for those with no evidence)."""
        result = dict.fromkeys(self._names, 0.0)
        for match in self._evidence(text, floor=0.0):
            result[match.name] = max(result[match.name], match.score)
        return result

    def match(self, text: str) -> IntentMatch | None:
        """The best intent at or above the threshold, or ``None``."""
        best: IntentMatch | None = None
        best_order = len(self._names)
        # Examples scoring under the threshold cannot be the answer: they may be left unscored.
        for m in self._evidence(text, floor=self.threshold):
            order = self._intents[m.name].order
            if (
                best is None
                or m.score > best.score
                or (m.score == best.score and order < best_order)
            ):
                best, best_order = m, order
        if best is None or best.score < self.threshold:
            return None
        return best

    def _evidence(self, text: str, floor: float) -> Iterable[IntentMatch]:
        """Pattern, keyword and example evidence for ``text``; an example that cannot score
        ``floor`` or more may be left out (``floor=0``: every example that shares a word)."""
        tokens = tokenize(text)
        if not tokens:
            return
        for intent in self._with_patterns:
            if any(p.search(text) for p in intent.patterns):
                yield IntentMatch(intent.name, PATTERN_SCORE, "pattern")
        words = frozenset(tokens)
        for w in words:
            for order, phrase in self._keywords.get(w, ()):
                if _contains(tokens, phrase):
                    yield IntentMatch(self._names[order], KEYWORD_SCORE, "keyword")
        idf = self._idf
        norm = math.sqrt(sum(idf.get(w, self._unseen_idf) ** 2 for w in words))
        # Rarest first. An example sharing only words from position k on has a dot product of
        # at most tail[k] (the sum of those words' idf squared) and a norm of at least both
        # sqrt(dot) and 1 / reach[k] (the largest reach among those words), so a cosine of at
        # most min(sqrt(tail[k]), tail[k] * reach[k]) / norm. Once that is under the floor, the
        # later words are only added to the examples already met. (1e-6: scores are rounded.)
        known = sorted((w for w in words if w in idf), key=lambda w: -idf[w])
        bounds: list[float] = []
        tails = [0.0]  # tails[k]: the sum of idf squared of known[k:]
        reach = 0.0
        for w in reversed(known):
            tails.append(tails[-1] + idf[w] ** 2)
            reach = max(reach, self._reach[w])
            bounds.append(min(math.sqrt(tails[-1]), tails[-1] * reach) / norm)
        bounds.reverse()
        tails.reverse()
        least = (floor - 1e-6) * norm  # dot / example norm an example must reach
        dots: dict[int, float] = {}
        for k, w in enumerate(known):
            weight = idf[w] ** 2
            posting = self._postings[w]
            if bounds[k] >= floor - 1e-6:
                for i in posting:
                    dots[i] = dots.get(i, 0.0) + weight
            else:
                if len(posting) <= len(dots):
                    for i in posting:
                        if i in dots:
                            dots[i] += weight
                else:
                    example_words = self._example_words
                    for i in dots:
                        if w in example_words[i]:
                            dots[i] += weight
                # Forget the examples that cannot reach the floor even with every word left.
                rest, example_norm = tails[k + 1], self._example_norm
                dots = {i: d for i, d in dots.items() if d + rest >= least * example_norm[i]}
        if not dots:
            return
        best: dict[int, float] = {}
        for i, dot in dots.items():
            score = dot / (norm * self._example_norm[i])
            order = self._example_intent[i]
            if score > best.get(order, 0.0):
                best[order] = score
        for order, score in best.items():
            yield IntentMatch(self._names[order], round(min(score, 1.0), 6), "examples")


def _contains(tokens: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    if n == 1:
        return phrase[0] in tokens
    return any(tuple(tokens[i : i + n]) == phrase for i in range(len(tokens) - n + 1))


def _words(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def _strings(spec: Mapping[str, Any], key: str, intent: str) -> list[str]:
    values = spec.get(key) or []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"intent {intent!r}: {key} must be a list of non-empty strings")
    return values


def load_intents(path: str | Path, threshold: float | None = None) -> IntentSet:
    """Load an intents YAML file.

    Args:
        path: the file (see the module docstring for its shape).
        threshold: overrides the file's ``threshold``.

    Raises:
        ConfigError: the file is missing, malformed, or an intent is invalid.
    """
    data = read_yaml(path)
    intents = data.get("intents")
    if not isinstance(intents, dict) or not intents:
        raise ConfigError(f"intents file {str(path)!r} needs a non-empty 'intents' mapping")
    file_threshold = data.get("threshold", 0.6)
    try:
        return IntentSet(intents, threshold if threshold is not None else float(file_threshold))
    except ConfigError as e:
        raise ConfigError(f"intents file {str(path)!r}: {e}") from None
