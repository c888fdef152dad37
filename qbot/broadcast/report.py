"""The per-recipient report of a broadcast: CSV or JSON (by the file's suffix), one row per
recipient of the CSV.

Columns: ``row`` (the CSV line), ``phone``, ``status`` (``sent``, ``refused``, ``unknown``, or
``pending`` for those a stop left), ``message_id`` (WhatsApp's, when sent), ``reason`` (why it
was refused, or why its outcome is unknown) and ``attempts``. In the CSV, a text cell that
starts with ``=``, ``+``, ``-`` or ``@`` gets a leading ``'`` so that a spreadsheet shows it
rather than runs it as a formula.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from qbot._json import dumps_text
from qbot.broadcast.journal import Entry
from qbot.errors import ConfigError

__all__ = ["REPORT_COLUMNS", "report_format", "write_report"]

REPORT_COLUMNS = ("row", "phone", "status", "message_id", "reason", "attempts")
_FORMATS: dict[str, Literal["csv", "json"]] = {".csv": "csv", ".json": "json"}


def report_format(path: str | Path) -> Literal["csv", "json"]:
    """The format a report file's suffix asks for: ``.csv`` or ``.json`` (any case).

    Raises:
        ConfigError: any other suffix (``r.txt``, ``report``): no format is guessed.
    """
    suffix = Path(path).suffix
    found = _FORMATS.get(suffix.lower())
    if found is None:
        what = f"ends in {suffix!r}" if suffix else "has no suffix"
        raise ConfigError(
            f"report {str(path)!r} {what}: name it .csv or .json (the suffix is the format)"
        )
    return found


def write_report(entries: Sequence[Entry], path: str | Path) -> Path:
    """Write the report to ``path``: CSV when it ends in ``.csv``, JSON in ``.json``.

    Written to a temporary file then renamed, so a report is never half written.

    Raises:
        ConfigError: another suffix (see :func:`report_format`), or the file cannot be written.
    """
    target = Path(path)
    form = report_format(target)
    temporary = target.with_name(f".{target.name}.tmp")
    rows = [{k: e.as_dict()[k] for k in REPORT_COLUMNS} for e in entries]
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            if form == "json":
                out.write(dumps_text(rows, indent=True) + "\n")
            else:
                writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS)
                writer.writeheader()
                writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
        os.replace(temporary, target)
    except OSError as e:
        raise ConfigError(f"cannot write the report {str(target)!r}: {e.strerror}") from None
    return target


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run: text starting with ``= + - @`` (a refused row's
    phone, a reason quoting it) gets a leading ``'``."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
