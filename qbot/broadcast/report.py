"""The per-recipient report of a broadcast: CSV or JSON, one row per recipient of the CSV.

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

from qbot._json import dumps_text
from qbot.broadcast.journal import Entry
from qbot.errors import ConfigError

__all__ = ["REPORT_COLUMNS", "write_report"]

REPORT_COLUMNS = ("row", "phone", "status", "message_id", "reason", "attempts")


def write_report(entries: Sequence[Entry], path: str | Path) -> Path:
    """Write the report to ``path``: JSON when it ends in ``.json``, else CSV.

    Written to a temporary file then renamed, so a report is never half written.

    Raises:
        ConfigError: the file cannot be written.
    """
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    rows = [{k: e.as_dict()[k] for k in REPORT_COLUMNS} for e in entries]
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            if target.suffix.lower() == ".json":
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
