"""qbot's language understanding: the intent engine, its cache, entities and text handling.

- :mod:`qbot.nlu.text`: normalisation, chat spellings, the Indonesian stemmer.
- :mod:`qbot.nlu.features`, :mod:`qbot.nlu.engine`: the default engine and the
  :class:`Engine` protocol another engine (embeddings, an LLM) implements.
- :mod:`qbot.nlu.cache`: fitted models on disk.
- :mod:`qbot.nlu.entities`, :mod:`qbot.nlu.dates`: built-in entity extractors.
"""

from qbot.nlu.engine import ENGINE_VERSION, Engine, LinearEngine, Ranked, SupportsCache
from qbot.nlu.entities import Entity, EntityList, Money, extract, parse_amount
from qbot.nlu.text import normalize, stem, stems, words

__all__ = [
    "ENGINE_VERSION",
    "Engine",
    "Entity",
    "EntityList",
    "LinearEngine",
    "Money",
    "Ranked",
    "SupportsCache",
    "extract",
    "normalize",
    "parse_amount",
    "stem",
    "stems",
    "words",
]
