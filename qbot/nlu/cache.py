"""The fitted model on disk, so a restart with the same intents skips training.

A model file is named by the SHA-256 of the engine's version and the examples, so changing
either builds a new one; files are written to a temporary name then renamed (a crash never
leaves half a file under the real name); a file that does not load (truncated, from another
version, tampered with) is rebuilt and replaced. ``.npz`` with ``allow_pickle=False``: loading
a cache never runs code. The eight most recent models are kept.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import structlog

from qbot._json import dumps_text
from qbot.nlu.engine import SupportsCache

__all__ = ["DEFAULT_CACHE_DIR", "cache_key", "fit_cached"]

DEFAULT_CACHE_DIR = Path(".qbot") / "intents-cache"
_KEEP = 8
log = structlog.get_logger("qbot.intents")


def cache_key(engine: SupportsCache, examples: Sequence[tuple[str, str]]) -> str:
    """The hash that names ``engine``'s model for ``examples``."""
    blob = dumps_text([engine.version, type(engine).__qualname__, list(examples)])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def fit_cached(
    engine: SupportsCache, examples: Sequence[tuple[str, str]], cache_dir: str | Path
) -> bool:
    """Load ``engine``'s model for ``examples`` from ``cache_dir``, or fit and save it.

    Returns:
        ``True`` when the model came from the cache.
    """
    directory = Path(cache_dir)
    path = directory / f"{cache_key(engine, examples)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                engine.load({k: data[k] for k in data.files})
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            log.warning("intents.cache_rebuilt", path=str(path), reason=str(e) or type(e).__name__)
        else:
            os.utime(path)
            return True
    engine.fit(examples)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **engine.dump())  # type: ignore[arg-type]  # numpy's stub: bool kwargs
        os.replace(tmp, path)
        _prune(directory)
    except OSError as e:  # a read-only disk costs a rebuild next time, never the bot
        log.warning("intents.cache_not_written", path=str(path), reason=str(e))
    return False


def _prune(directory: Path) -> None:
    models = sorted(directory.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in models[_KEEP:]:
        old.unlink(missing_ok=True)
