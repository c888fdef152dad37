"""``qbot broadcast``: send a WhatsApp template to every recipient of a CSV, resumably.

``register(main)`` adds the command. It reads the same config as ``qbot run`` (``--config``,
else ``./config.yaml``, ``QBOT_*`` on top) and calls Omnichannel. Failures print one
``error: ...`` line: exit 2 for usage, configuration, the CSV or the template as a whole; 1
when Omnichannel refused or could not be reached, or when recipients are left ``unknown`` or
``pending``; 130 after Ctrl-C (the journal is kept: the same command resumes). See
``docs/broadcasts.md``.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from qbot._cli_common import config_option, fail, quiet_logging, settings_from
from qbot._retry import RetryPolicy
from qbot.broadcast import (
    Broadcast,
    BroadcastResult,
    Entry,
    Journal,
    Status,
    WhatsAppTemplate,
    default_journal,
    parse_rate,
    report_format,
    write_report,
)
from qbot.clock import SystemClock
from qbot.errors import ConfigError, MessageBuildError, QiscusError, QiscusUnauthorized
from qbot.office_hours import zone

__all__ = ["AT_GRACE", "check_at", "parse_at", "register"]

_CLOCK = re.compile(r"^\d{1,2}:\d{2}$")
AT_GRACE = 60.0
"""How far in the past ``--at`` may be (seconds) and still start at once: the time it takes to
type the command."""


def parse_at(text: str, now: float, tz: str = "Asia/Jakarta") -> float:
    """``--at``: an ISO date and time (``2026-12-02T09:00``, ``2026-12-02 09:00+07:00``) or a
    time of day (``09:00``: its next occurrence); without an offset, in ``tz``.

    Raises:
        ConfigError: neither.
    """
    try:
        where = zone(tz)
    except ValueError as e:
        raise ConfigError(f"--at: {e}") from None
    value = text.strip()
    if _CLOCK.match(value):
        try:
            wall = time.fromisoformat(value.zfill(5))
        except ValueError:
            raise ConfigError(f"--at {text!r} is not a time of day") from None
        today = datetime.fromtimestamp(now, where)
        moment = datetime.combine(today.date(), wall, where)
        if moment.timestamp() <= now:
            moment = datetime.combine(today.date() + timedelta(days=1), wall, where)
        return moment.timestamp()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"--at {text!r} must be a date and time like 2026-12-02T09:00 or a time like 09:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=where)
    return moment.timestamp()


def check_at(at: float, now: float, text: str, tz: str = "Asia/Jakarta") -> None:
    """Refuse an ``--at`` more than :data:`AT_GRACE` seconds in the past: a new broadcast
    would start at once, which a past date (a typo, yesterday's command) never means.

    Raises:
        ConfigError: naming the time, how long ago it was, and now.
    """
    ago = now - at
    if ago <= AT_GRACE:
        return
    where = zone(tz)
    then = datetime.fromtimestamp(at, where).isoformat(timespec="minutes")
    current = datetime.fromtimestamp(now, where).isoformat(timespec="minutes")
    raise ConfigError(
        f"--at {text!r} is {_duration(ago)} in the past ({then}; it is now {current}): give a "
        "later time, or leave --at out to start now"
    )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def _summary(counts: dict[Status, int]) -> str:
    shown = [f"{counts[s]} {s}" for s in ("sent", "refused", "unknown", "pending") if counts[s]]
    return ", ".join(shown) or "no recipients"


def _report_path(report: str | None, csv: str, template: str) -> Path:
    if report:
        return Path(report)
    path = Path(csv)
    return path.with_name(f"{path.stem}.{template}.report.csv")


def _status(journal_path: Path, report: Path) -> None:
    if not journal_path.is_file():
        fail(f"no journal {str(journal_path)!r}: this broadcast has not been started")
    with Journal(journal_path) as journal:
        counts, entries = journal.counts(), journal.entries()
    in_flight = counts["sending"]
    try:
        write_report(entries, report)
    except ConfigError as e:
        fail(str(e))
    click.echo(f"{_summary(counts)}" + (f", {in_flight} in flight" if in_flight else ""))
    click.echo(f"report: {report}")


def _on_signals(broadcast: Broadcast, console: Console) -> None:
    """Ctrl-C (or SIGTERM) once: stop after the sends in flight; twice: stop now (a send in
    flight is then reported unknown)."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def stop(name: str) -> None:
        if broadcast.stopping and main is not None:
            console.print(f"{name} again: stopping now")
            main.cancel()
            return
        console.print(f"{name}: stopping after the sends in flight (again to stop now)...")
        broadcast.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop, sig.name)
        except (ValueError, RuntimeError):  # not the main thread (an embedding program's)
            return


def register(main: click.Group) -> None:
    """Add ``qbot broadcast`` to ``main``."""

    @main.command("broadcast")
    @click.option("--template", "template", required=True, help="The approved template's name.")
    @click.option(
        "--csv", "csv_path", required=True, metavar="FILE",
        help="Recipients: a phone column, then one column per template variable.",
    )  # fmt: skip
    @click.option("--language", default="id", show_default=True, help="The template language.")
    @click.option(
        "--at", "at", default=None, metavar="TIME",
        help="Start then: 2026-12-02T09:00, or 09:00 (the next one). Not in the past.",
    )  # fmt: skip
    @click.option("--rate", default="10/s", show_default=True, help="Sends a second at most.")
    @click.option("--concurrency", default=1, show_default=True, type=int, help="Sends at once.")
    @click.option("--channel", default=None, help="The WhatsApp channel id to send from.")
    @click.option("--journal", "journal_path", default=None, metavar="FILE", help="Journal file.")
    @click.option("--report", "report_path", default=None, metavar="FILE", help=".csv or .json")
    @click.option("--dry-run", is_flag=True, help="Check the CSV and template; send nothing.")
    @click.option("--resume", is_flag=True, help="Refuse to start a new broadcast: resume only.")
    @click.option("--status", is_flag=True, help="Show the journal and write the report only.")
    @click.option("--retry-unknown", is_flag=True, help="Resend sends a crash left unknown.")
    @click.option("--country-code", default="62", show_default=True, help="For 08... numbers.")
    @config_option()
    def broadcast_command(
        template: str,
        csv_path: str,
        language: str,
        at: str | None,
        rate: str,
        concurrency: int,
        channel: str | None,
        journal_path: str | None,
        report_path: str | None,
        dry_run: bool,
        resume: bool,
        status: bool,
        retry_unknown: bool,
        country_code: str,
        config_path: str | None,
    ) -> None:
        """Send TEMPLATE to every recipient of the CSV; the same command resumes after a stop."""
        journal = Path(journal_path) if journal_path else default_journal(csv_path, template)
        report = _report_path(report_path, csv_path, template)
        try:
            report_format(report)  # before anything is sent: the report is the run's record
        except ConfigError as e:
            fail(f"--{e}")
        if report_path and not report.parent.is_dir():  # (else the CSV's folder: read first)
            fail(f"--report {str(report)!r}: folder {str(report.parent)!r} does not exist")
        if status:
            _status(journal, report)
            return
        if resume and not journal.is_file():
            fail(f"--resume: no journal {str(journal)!r} to resume (drop --resume to start)")
        try:
            settings = settings_from(config_path)
            # The progress bar and the summary speak; a log line per recipient given up on would
            # bury them (log.level: debug shows every retry).
            quiet_logging(settings)
            per_second = parse_rate(rate)
            clock = SystemClock()
            tz = settings.office_hours.timezone
            start = parse_at(at, clock.time(), tz) if at is not None else None
            if at is not None and start is not None and not journal.is_file():
                check_at(start, clock.time(), at, tz)  # resuming a started one: no wait, no error
            from qbot.omnichannel.client import OmnichannelClient

            q, omni = settings.qiscus, settings.omnichannel
            client = OmnichannelClient(
                omni.app_code or q.app_id,
                q.secret_key,
                omni.base_url,
                timeout=q.timeout,
                retry=RetryPolicy(max_attempts=1),  # the broadcast retries, journaled
            )
        except ConfigError as e:
            fail(str(e))
        console = Console(stderr=True)
        sender = WhatsAppTemplate(client, template, language=language, channel_id=channel)
        try:
            result = asyncio.run(
                _run(
                    sender,
                    client,
                    csv_path,
                    journal,
                    per_second,
                    concurrency,
                    start,
                    clock,
                    retry_unknown,
                    country_code,
                    dry_run,
                    console,
                    tz,
                )
            )
        except ConfigError as e:
            fail(str(e))
        except MessageBuildError as e:
            fail(str(e))
        except (asyncio.CancelledError, KeyboardInterrupt):
            click.echo(
                "stopped at once: a send in flight is reported unknown. Run the same command "
                f"again to resume (journal: {journal})",
                err=True,
            )
            sys.exit(130)
        except QiscusUnauthorized:
            fail(
                f"Omnichannel rejected the credentials (401) for app {client.app_code!r} at "
                f"{client.base_url}: check qiscus.secret_key and omnichannel.app_code",
                1,
            )
        except QiscusError as e:
            fail(f"Omnichannel could not be asked for the template: {e}", 1)
        _finish(result, dry_run, report, console)


async def _run(
    sender: WhatsAppTemplate,
    client: Any,
    csv_path: str,
    journal: Path,
    rate: float,
    concurrency: int,
    at: float | None,
    clock: SystemClock,
    retry_unknown: bool,
    country_code: str,
    dry_run: bool,
    console: Console,
    tz: str,
) -> BroadcastResult:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("broadcast", total=None, counts="")

    def on_progress(entry: Entry | None, counts: dict[Status, int]) -> None:
        done = sum(counts.values()) - counts["pending"] - counts["sending"]
        progress.update(task, completed=done, total=sum(counts.values()), counts=_summary(counts))

    def on_start(counts: dict[Status, int]) -> None:
        if at is not None and at > clock.time():
            until = datetime.fromtimestamp(at, zone(tz)).isoformat(timespec="minutes")
            left = _duration(at - clock.time())
            console.print(f"waiting until {until} (in {left}); Ctrl-C to stop")
        progress.start()  # once the CSV, the template and the journal are fine
        on_progress(None, counts)

    broadcast = Broadcast(
        sender,
        csv_path,
        journal=journal,
        rate=rate,
        concurrency=concurrency,
        at=at,
        clock=clock,
        retry_unknown=retry_unknown,
        country_code=country_code,
        dry_run=dry_run,
        on_progress=on_progress,
        on_start=on_start,
    )
    async with client:
        _on_signals(broadcast, console)
        try:
            return await broadcast.run()
        finally:
            progress.stop()


def _finish(result: BroadcastResult, dry_run: bool, report: Path, console: Console) -> None:
    counts = result.counts
    try:
        write_report(result.entries, report)
    except ConfigError as e:
        fail(str(e))
    if dry_run:
        click.echo(
            f"dry run: {counts['pending']} to send, {counts['refused']} refused; nothing sent"
        )
        for entry in result.entries:
            if entry.status == "refused":
                click.echo(f"  line {entry.row}: {entry.reason}")
        click.echo(f"report: {report}")
        return
    click.echo(f"{_summary(counts)}; report: {report}")
    if result.recovered:
        click.echo(
            f"{result.recovered} send(s) were in flight when an earlier run stopped: reported "
            "unknown, not sent again (--retry-unknown resends them)"
        )
    if result.stopped:
        click.echo(
            f"stopped; {counts['pending']} left. Run the same command again to resume "
            f"(journal: {result.journal})",
            err=True,
        )
        sys.exit(130)
    if counts["pending"]:
        click.echo(
            f"{counts['pending']} recipient(s) left pending: WhatsApp kept answering 429/5xx or "
            "could not be reached. Run the same command again later to send to them.",
            err=True,
        )
    if counts["pending"] or counts["unknown"]:
        sys.exit(1)
