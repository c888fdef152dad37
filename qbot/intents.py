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
intents. Ties go to the intent declared first.
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
        self._postings: dict[str, list[int]] = {}
        for i, (_, words) in enumerate(examples):
            for w in words:
                self._postings.setdefault(w, []).append(i)

    @property
    def names(self) -> list[str]:
        """Intent names in declaration order."""
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._intents

    def scores(self, text: str) -> dict[str, float]:
        """Every intent's score for ``text`` (0.0 for those with no evidence)."""
        result = dict.fromkeys(self._names, 0.0)
        for match in self._evidence(text):
            result[match.name] = max(result[match.name], match.score)
        return result

    def match(self, text: str) -> IntentMatch | None:
        """The best intent at or above the threshold, or ``None``."""
        best: IntentMatch | None = None
        best_order = len(self._names)
        for m in self._evidence(text):
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

    def _evidence(self, text: str) -> Iterable[IntentMatch]:
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
        dots: dict[int, float] = {}
        for w in words:
            posting = self._postings.get(w)
            if posting is None:
                continue
            weight = self._idf[w] ** 2
            for i in posting:
                dots[i] = dots.get(i, 0.0) + weight
        if not dots:
            return
        norm = math.sqrt(sum(self._idf.get(w, self._unseen_idf) ** 2 for w in words))
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
