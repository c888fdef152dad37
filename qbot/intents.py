"""Named intents from a YAML file, matched with a calibrated score; entities in the same file.

```yaml
threshold: 0.5            # optional; the config key intents.threshold wins when set
intents:
  refund:
    patterns: ['\\brefund\\b', 'money back']      # a regex hit scores 1.0
    keywords: [refund, "return my money"]        # a whole-word phrase hit scores 0.9
    examples:                                    # the engine learns from these
      - I want my money back
      - can I get a refund for my order
entities:                                        # optional lists, with synonyms
  city:
    Jakarta: [jkt, dki]
    Bandung: [bdg]
```
Patterns and keywords win when they hit (the first intent declared, on a tie). Otherwise the
engine (:class:`qbot.nlu.LinearEngine` unless you pass another, see :class:`qbot.nlu.Engine`)
ranks the intents by the probability that each is the right one, so ``threshold`` means the
same with 3 intents or 300. The fitted model is cached on disk (``cache_dir``, default
``.qbot/intents-cache``) under a hash of the examples and the engine version: a restart with the
same intents loads it instead of training.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from qbot.config import read_yaml
from qbot.errors import ConfigError
from qbot.nlu.cache import DEFAULT_CACHE_DIR, fit_cached
from qbot.nlu.engine import Engine, LinearEngine, SupportsCache
from qbot.nlu.entities import Entity, EntityList, extract
from qbot.nlu.text import words

__all__ = ["IntentMatch", "IntentSet", "load_intents", "tokenize"]

PATTERN_SCORE = 1.0
KEYWORD_SCORE = 0.9
DEFAULT_THRESHOLD = 0.5
_NO_CACHE = ("", "none", "off", "false")


def tokenize(text: str) -> list[str]:
    """Normalised words: case, accents and chat spellings (``yg`` → ``yang``) do not matter."""
    return words(text)


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
    """A classifier over named intents, and the entity lists that go with them.

    Args:
        intents: intent name → ``{"patterns": [...], "keywords": [...], "examples": [...]}``.
        threshold: the lowest score that counts as a match.
        engine: what learns from the examples (default: a new :class:`~qbot.nlu.LinearEngine`).
        entities: entity name → ``{value: [synonyms]}`` or ``[values]``.
        cache_dir: where fitted models are kept (``None``: not kept); only for engines with
            ``version``, ``dump`` and ``load`` (:class:`~qbot.nlu.SupportsCache`).
    """

    def __init__(
        self,
        intents: Mapping[str, Mapping[str, Any]],
        threshold: float = DEFAULT_THRESHOLD,
        *,
        engine: Engine | None = None,
        entities: Mapping[str, Any] | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"intent threshold must be between 0 and 1, got {threshold!r}")
        self.threshold = threshold
        self._intents: dict[str, _Intent] = {}
        examples: list[tuple[str, str]] = []
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
            intent.keywords = [
                k for k in map(tuple, map(tokenize, _strings(spec, "keywords", name))) if k
            ]
            own = [(e, name) for e in _strings(spec, "examples", name) if tokenize(e)]
            examples.extend(own)
            if not (intent.patterns or intent.keywords or own):
                raise ConfigError(f"intent {name!r} has no patterns, keywords or examples")
        self._names = list(self._intents)
        self._with_patterns = [i for i in self._intents.values() if i.patterns]
        self._keywords: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        for i in self._intents.values():
            for phrase in i.keywords:
                self._keywords.setdefault(phrase[0], []).append((i.order, phrase))
        if entities is not None and not isinstance(entities, Mapping):
            raise ConfigError("entities must be a mapping of entity name to values")
        self.entity_lists = [EntityList(n, v) for n, v in (entities or {}).items()]
        self.examples = examples
        self.engine: Engine | None = None
        self.from_cache = False
        if examples:
            self.engine = engine or LinearEngine()
            if cache_dir is not None and isinstance(self.engine, SupportsCache):
                self.from_cache = fit_cached(self.engine, examples, cache_dir)
            else:
                self.engine.fit(examples)

    @property
    def names(self) -> list[str]:
        """Intent names in declaration order."""
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._intents

    def rank(self, text: str, limit: int | None = None) -> list[IntentMatch]:
        """Intents for ``text`` best first: pattern and keyword hits, then the engine's ranking."""
        tokens = tokenize(text)
        if not tokens:
            return []
        ranked: list[IntentMatch] = []
        seen: set[str] = set()
        for intent in self._with_patterns:
            if any(p.search(text) for p in intent.patterns):
                ranked.append(IntentMatch(intent.name, PATTERN_SCORE, "pattern"))
                seen.add(intent.name)
        starts: dict[str, list[int]] = {}  # each word's positions: phrases are checked there
        for i, w in enumerate(tokens):
            if w in self._keywords:
                starts.setdefault(w, []).append(i)
        hits = sorted(
            {
                o
                for w, at in starts.items()
                for o, phrase in self._keywords[w]
                if _contains(tokens, phrase, at)
            }
        )
        for order in hits:
            name = self._names[order]
            if name not in seen:
                ranked.append(IntentMatch(name, KEYWORD_SCORE, "keyword"))
                seen.add(name)
        if self.engine is not None:
            for name, score in self.engine.predict(text):
                if name not in seen and name in self._intents:
                    ranked.append(IntentMatch(name, score, "examples"))
                    seen.add(name)
                if limit is not None and len(ranked) >= limit:
                    break
        return ranked[:limit] if limit is not None else ranked

    def scores(self, text: str) -> dict[str, float]:
        """Every intent's score for ``text`` (0.0 for those with no evidence)."""
        result = dict.fromkeys(self._names, 0.0)
        for m in self.rank(text):
            result[m.name] = m.score
        return result

    def match(self, text: str) -> IntentMatch | None:
        """The best intent at or above the threshold, or ``None``."""
        ranked = self.rank(text, limit=1)
        if not ranked or ranked[0].score < self.threshold:
            return None
        return ranked[0]

    def entities(self, text: str, *, now: datetime | None = None) -> list[Entity]:
        """The entities of ``text``: built-in ones and this file's lists (see ``qbot.nlu``)."""
        return extract(text, now=now, lists=self.entity_lists)


def _contains(tokens: list[str], phrase: tuple[str, ...], starts: list[int]) -> bool:
    """Whether ``phrase`` is in ``tokens`` at one of ``starts`` (where its first word is)."""
    n = len(phrase)
    return n == 1 or any(tuple(tokens[i : i + n]) == phrase for i in starts)


def _strings(spec: Mapping[str, Any], key: str, intent: str) -> list[str]:
    values = spec.get(key) or []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"intent {intent!r}: {key} must be a list of non-empty strings")
    return values


def load_intents(
    path: str | Path,
    threshold: float | None = None,
    *,
    engine: Engine | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> IntentSet:
    """Load an intents YAML file.

    Args:
        path: the file (see the module docstring for its shape).
        threshold: overrides the file's ``threshold``.
        engine: the engine to fit (default: :class:`~qbot.nlu.LinearEngine`).
        cache_dir: where fitted models are kept; the file's ``cache_dir`` key (relative to the
            file; ``off`` disables) wins over this default. ``None``: no cache.

    Raises:
        ConfigError: the file is missing, malformed, or an intent is invalid.
    """
    data = read_yaml(path, "intents file")
    intents = data.get("intents")
    if not isinstance(intents, dict) or not intents:
        raise ConfigError(f"intents file {str(path)!r} needs a non-empty 'intents' mapping")
    file_threshold = data.get("threshold", DEFAULT_THRESHOLD)
    if "cache_dir" in data:
        setting = data["cache_dir"]
        if setting is None or setting is False or str(setting).lower() in _NO_CACHE:
            cache_dir = None
        else:
            cache_dir = Path(path).parent / str(setting)
    try:
        return IntentSet(
            intents,
            threshold if threshold is not None else float(file_threshold),
            engine=engine,
            entities=data.get("entities"),
            cache_dir=cache_dir,
        )
    except (ConfigError, TypeError, ValueError) as e:
        raise ConfigError(f"intents file {str(path)!r}: {e}") from None
