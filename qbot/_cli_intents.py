"""``qbot intents test`` and ``qbot intents check``: measure and lint an intents file.

``test`` classifies labelled queries (a CSV with ``text`` and ``intent`` columns; rows whose
intent is empty or ``none`` are out of scope) and prints accuracy, per-intent precision and
recall, the most confused pairs and a suggested threshold. ``check`` finds examples written in
two intents, and examples that a model trained without them reads as another intent (5-fold
cross-validation): the examples that teach the engine the wrong thing. Exit status: 0 clean,
1 when ``check`` found problems, 2 for bad input.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from qbot.errors import ConfigError
from qbot.intents import IntentSet, load_intents, tokenize
from qbot.nlu.engine import LinearEngine

__all__ = ["register"]

OUT_OF_SCOPE = ("", "none", "out_of_scope", "oos")
_PROGRESS_FROM = 200  # rows: fewer finish before a bar would be worth drawing


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    intent: str | None  # None: out of scope


@dataclass(frozen=True, slots=True)
class Verdict:
    row: Row
    predicted: str
    score: float


def read_rows(path: Path) -> list[Row]:
    """The labelled queries of a CSV file.

    Raises:
        ConfigError: the file cannot be read or lacks a text or intent column.
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            label = next((c for c in ("intent", "category", "label") if c in columns), None)
            if "text" not in columns or label is None:
                raise ConfigError(
                    f"{str(path)!r} needs a 'text' and an 'intent' column, has {columns!r}"
                )
            rows = [
                Row(r["text"] or "", None if (r[label] or "").strip().lower() in OUT_OF_SCOPE
                    else r[label].strip())
                for r in reader
            ]  # fmt: skip
    except OSError as e:
        raise ConfigError(f"cannot read {str(path)!r}: {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{str(path)!r} is not a UTF-8 CSV file: {e}") from None
    if not rows:
        raise ConfigError(f"{str(path)!r} has no rows")
    return rows


def suggest_threshold(verdicts: Sequence[Verdict]) -> float:
    """With out-of-scope rows: the threshold that gets the most rows right (a refusal is right
    for them, wrong otherwise). Without: the highest that still keeps 98 % of right answers."""
    candidates = sorted({0.0, *(round(v.score, 2) for v in verdicts)})
    if any(v.row.intent is None for v in verdicts):

        def right(t: float) -> int:
            return sum(
                (v.score < t)
                if v.row.intent is None
                else (v.score >= t and v.predicted == v.row.intent)
                for v in verdicts
            )

        return max(candidates, key=lambda t: (right(t), -t))
    correct = sorted(v.score for v in verdicts if v.predicted == v.row.intent)
    if not correct:
        return 0.0
    return round(correct[int(len(correct) * 0.02)], 2)


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[], None]]:
    if total < _PROGRESS_FROM:
        yield lambda: None
        return
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=not console.is_terminal) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _load(path: str, threshold: float | None = None) -> IntentSet:
    try:
        intents = load_intents(path, threshold)
    except ConfigError as e:
        _fail(str(e))
    if intents.engine is None:
        _fail(f"{path!r} has no examples: nothing to measure")
    return intents


def report(intents: IntentSet, rows: Sequence[Row], confused: int) -> tuple[str, list[Table]]:
    verdicts: list[Verdict] = []
    with _progress("classifying", len(rows)) as tick:
        for row in rows:
            top = intents.rank(row.text, 1)
            verdicts.append(Verdict(row, top[0].name if top else "", top[0].score if top else 0.0))
            tick()
    inside = [v for v in verdicts if v.row.intent is not None]
    outside = [v for v in verdicts if v.row.intent is None]
    unknown = sorted({str(v.row.intent) for v in inside if v.row.intent not in intents})
    if unknown:
        _fail(f"the data names intents the file does not define: {', '.join(unknown)}")
    threshold = intents.threshold
    lines = [f"{len(rows)} queries, {len(inside)} in scope, {len(outside)} out of scope"]
    if inside:
        top1 = sum(v.predicted == v.row.intent for v in inside) / len(inside)
        kept = sum(v.predicted == v.row.intent and v.score >= threshold for v in inside)
        lines.append(f"accuracy (best intent): {top1:.1%}")
        lines.append(f"accuracy at threshold {threshold:g}: {kept / len(inside):.1%}")
    if outside:
        refused = sum(v.score < threshold for v in outside) / len(outside)
        lines.append(f"out of scope refused at threshold {threshold:g}: {refused:.1%}")
    lines.append(f"suggested threshold: {suggest_threshold(verdicts):g}")
    per_intent = Table("intent", "precision", "recall", "support", title="per intent")
    for name in intents.names:
        support = sum(v.row.intent == name for v in inside)
        said = [v for v in verdicts if v.predicted == name and v.score >= threshold]
        hits = sum(v.row.intent == name for v in said)
        if support or said:
            precision = f"{hits / len(said):.1%}" if said else "-"
            recall = f"{hits / support:.1%}" if support else "-"
            per_intent.add_row(name, precision, recall, str(support))
    pairs = Counter((v.row.intent, v.predicted) for v in inside if v.predicted != v.row.intent)
    confusion = Table("expected", "read as", "times", title="most confused")
    for (want, got), times in pairs.most_common(confused):
        confusion.add_row(str(want), got, str(times))
    return "\n".join(lines), [per_intent, confusion]


def check(intents: IntentSet) -> list[str]:
    """Problems with the examples: duplicates across intents, examples read as another."""
    problems: list[str] = []
    owners: dict[tuple[str, ...], list[str]] = {}
    for text, name in intents.examples:
        owners.setdefault(tuple(tokenize(text)), []).append(name)
    for words, names in owners.items():
        if len(set(names)) > 1:
            problems.append(f"{' '.join(words)!r} is an example of {', '.join(sorted(set(names)))}")
    examples = intents.examples
    folds = [list(range(k, len(examples), 5)) for k in range(min(5, len(examples)))]
    with _progress(
        "cross-validating", len(folds) if len(examples) >= _PROGRESS_FROM else 0
    ) as tick:
        for held in folds:
            held_set = set(held)
            engine = LinearEngine()
            engine.fit([e for i, e in enumerate(examples) if i not in held_set])
            for i in held:
                text, name = examples[i]
                ranked = engine.predict(text)
                if ranked and ranked[0][0] != name:
                    other, score = ranked[0]
                    problems.append(f"{text!r} ({name}) reads as {other} ({score:.2f})")
            tick()
    return problems


def register(group: click.Group) -> None:
    """Add the ``intents`` command group to ``group``."""

    @group.group()
    def intents() -> None:
        """Measure and check an intents file."""

    @intents.command("test")
    @click.argument("intents_file", metavar="INTENTS", type=click.Path(dir_okay=False))
    @click.option(
        "--data",
        "data",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="CSV with text and intent columns (intent empty or 'none': out of scope).",
    )
    @click.option(
        "--threshold",
        type=click.FloatRange(0, 1),
        default=None,
        help="Overrides the file's threshold.",
    )
    @click.option("--confused", type=click.IntRange(0), default=10, show_default=True,
                  help="How many confused pairs to list.")  # fmt: skip
    def test(intents_file: str, data: Path, threshold: float | None, confused: int) -> None:
        """Accuracy, precision and recall per intent, confusions, a suggested threshold."""
        intents_set = _load(intents_file, threshold)
        try:
            rows = read_rows(data)
        except ConfigError as e:
            _fail(str(e))
        summary, tables = report(intents_set, rows, confused)
        console = Console()
        console.print(summary, highlight=False)
        for table in tables:
            if table.row_count:
                console.print(table)

    @intents.command("check")
    @click.argument("intents_file", metavar="INTENTS", type=click.Path(dir_okay=False))
    def check_command(intents_file: str) -> None:
        """Examples in two intents, or nearer another intent than their own (exit 1 if any)."""
        problems = check(_load(intents_file))
        for line in problems:
            click.echo(line)
        if problems:
            click.echo(f"{len(problems)} problem{'s' if len(problems) > 1 else ''}", err=True)
            raise SystemExit(1)
        click.echo("no problems found")
