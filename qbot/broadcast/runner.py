"""`Broadcast`: send one template to every recipient of a CSV, resumably, at a bounded rate.

```python
from qbot.broadcast import Broadcast

broadcast = Broadcast.from_settings(settings, template="order_shipped", csv="recipients.csv")
result = await broadcast.run()            # again after a crash: it carries on where it stopped
print(result.counts)                      # {'sent': 998, 'refused': 2, 'unknown': 0, ...}
```

Every recipient is journaled before and after its send (`qbot.broadcast.journal`), so a run
stopped at any point (Ctrl-C, a crash, SIGKILL) is resumed by running it again, and nobody who
was sent the template is sent it twice. Time (``at``, the rate, backoff waits) is the clock's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import structlog

from qbot._aio import cancel_and_wait
from qbot._retry import RetryPolicy
from qbot.broadcast.journal import Entry, Journal, Status
from qbot.broadcast.rate import TokenBucket
from qbot.broadcast.recipients import RecipientList, read_recipients
from qbot.clock import Clock, SystemClock
from qbot.errors import (
    ConfigError,
    QbotError,
    QiscusAPIError,
    QiscusNetworkError,
    QiscusRateLimited,
    QiscusServerError,
)

__all__ = ["Broadcast", "BroadcastResult", "Progress", "TemplateSender", "default_journal"]

log = structlog.get_logger("qbot.broadcast")


class TemplateSender(Protocol):
    """What sends the broadcast's template to one recipient (see `qbot.broadcast.whatsapp`)."""

    name: str
    """The template's name (what the journal is keyed by)."""

    async def check(self, recipients: RecipientList) -> dict[int, str]:
        """Before the first send: the template exists and takes as many variables as the CSV
        has columns (else `ConfigError`); returns the rows it refuses (CSV line -> reason,
        e.g. a body over WhatsApp's limit once filled)."""
        ...

    async def send(self, entry: Entry) -> str:
        """Send to one recipient; return WhatsApp's message id.

        Raises:
            QiscusAPIError: refused (4xx), rate limited (429) or failed (5xx).
            QiscusNetworkError: no answer.
        """
        ...


Progress = Callable[[Entry, dict[Status, int]], None]
"""Called after every recipient's outcome with the entry and the journal's counts."""


def default_journal(csv: str | Path, template: str) -> Path:
    """Where a broadcast's journal goes when not given: next to the CSV,
    ``<csv stem>.<template>.journal.db``."""
    path = Path(csv)
    return path.with_name(f"{path.stem}.{template}.journal.db")


@dataclass(slots=True)
class BroadcastResult:
    """How a run ended.

    Attributes:
        counts: recipients by status (``pending`` left are those a stop or give-up left).
        entries: every recipient, in CSV order (the per-recipient report).
        stopped: the run was stopped (`Broadcast.stop`, Ctrl-C) before it finished.
        recovered: recipients found in flight from an earlier run (now ``unknown``).
        journal: the journal's path (run again with it to resume).
    """

    counts: dict[Status, int]
    entries: list[Entry] = field(default_factory=list)
    stopped: bool = False
    recovered: int = 0
    journal: Path | None = None

    @property
    def complete(self) -> bool:
        """Nobody is left to send to (``unknown`` ones aside)."""
        return self.counts.get("pending", 0) == 0 and self.counts.get("sending", 0) == 0


class Broadcast:
    """One template to every row of a recipients CSV.

    Args:
        sender: sends the template (`qbot.broadcast.whatsapp.WhatsAppTemplate`).
        csv: the recipients file (format: `qbot.broadcast.recipients`).
        journal: the journal file; default `default_journal` next to the CSV.
        rate: sends a second at most (a token bucket).
        concurrency: sends in flight at once (each one a recipient that is ``unknown`` if the
            process dies during it).
        at: send from this time on (an aware datetime or epoch seconds); earlier: at once.
        clock: the time (default the wall clock).
        retry: how often a 429 or 5xx is retried (``Retry-After`` honoured) before the
            recipient is left pending for the next run.
        retry_unknown: send again to recipients whose send was in flight when an earlier run
            died (they may get the template twice).
        country_code: prefixes national numbers (a leading ``0``).
        dry_run: check the CSV and the template, send nothing, write no journal.
        on_progress: see `Progress`.
        on_start: called with the journal's counts once the CSV and template were checked
            and the journal opened, before the first send (or the wait for ``at``).

    Raises:
        ConfigError: a bad rate or concurrency.
    """

    def __init__(
        self,
        sender: TemplateSender,
        csv: str | Path,
        *,
        journal: str | Path | None = None,
        rate: float = 10.0,
        concurrency: int = 1,
        at: datetime | float | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        retry_unknown: bool = False,
        country_code: str = "62",
        dry_run: bool = False,
        on_progress: Progress | None = None,
        on_start: Callable[[dict[Status, int]], None] | None = None,
    ) -> None:
        if not rate > 0:
            raise ConfigError(f"rate {rate!r} must be more than 0 sends a second")
        if concurrency < 1:
            raise ConfigError(f"concurrency {concurrency!r} must be at least 1")
        if not country_code.isdigit():
            raise ConfigError(f"country code {country_code!r} must be digits, like 62")
        self.sender = sender
        self.csv = Path(csv)
        self.journal_path = Path(journal) if journal else default_journal(csv, sender.name)
        self.rate = rate
        self.concurrency = concurrency
        self.at = at.timestamp() if isinstance(at, datetime) else at
        self.clock: Clock = clock or SystemClock()
        self.retry = retry or RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=60.0)
        self.retry_unknown = retry_unknown
        self.country_code = country_code
        self.dry_run = dry_run
        self.on_progress = on_progress
        self.on_start = on_start
        self._stop = asyncio.Event()
        self.recipients: RecipientList | None = None

    def stop(self) -> None:
        """Stop after the sends in flight (`run` then returns with ``stopped``)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stop.is_set()

    def read(self) -> RecipientList:
        """Read and check the CSV (every row, before any send).

        Raises:
            ConfigError: the file is unreadable or has no phone column.
        """
        self.recipients = read_recipients(self.csv, country_code=self.country_code)
        return self.recipients

    async def prepare(self) -> RecipientList:
        """Read the CSV and check the template against it: what a dry run does.

        Raises:
            ConfigError, TemplateError: the CSV or the template is wrong as a whole.
        """
        recipients = self.read()
        refused = await self.sender.check(recipients)
        recipients.recipients = [
            replace(r, refused=refused[r.row]) if r.refused is None and r.row in refused else r
            for r in recipients.recipients
        ]
        return recipients

    async def run(self) -> BroadcastResult:
        """Send to everyone not yet sent to; resume from the journal when it exists.

        Raises:
            ConfigError: the CSV or template is wrong, or the journal belongs to another
                broadcast or is in use by another run.
            TemplateError: the template breaks WhatsApp's limits.
        """
        recipients = await self.prepare()
        if self.dry_run:
            entries = [_planned(r) for r in recipients.recipients]
            return BroadcastResult(_count(entries), entries)
        with Journal(self.journal_path) as journal:
            recovered = self._open(journal, recipients)
            if self.on_start is not None:
                self.on_start(journal.counts())
            if self.at is not None and not self.stopping:
                await self._wait_until(self.at)
            if not self.stopping:
                await self._send_all(journal)
            return BroadcastResult(
                journal.counts(), journal.entries(), self.stopping, recovered, self.journal_path
            )

    def _open(self, journal: Journal, recipients: RecipientList) -> int:
        meta = {
            "template": self.sender.name,
            "csv": str(self.csv),
            "csv_sha256": recipients.digest,
            "started_at": self.clock.time(),
        }
        if journal.started():
            known = journal.meta()
            if (
                known.get("template") != meta["template"]
                or known.get("csv_sha256") != meta["csv_sha256"]
            ):
                raise ConfigError(
                    f"journal {str(self.journal_path)!r} belongs to another broadcast (template "
                    f"{known.get('template')!r} on {known.get('csv')!r} as it was then): a "
                    "changed CSV is a new broadcast, give it its own --journal"
                )
            recovered = journal.recover(self.clock.time(), retry_unknown=self.retry_unknown)
            if recovered:
                log.warning("broadcast.in_flight_found", recipients=recovered)
            log.info("broadcast.resumed", journal=str(self.journal_path), **journal.counts())
            return recovered
        journal.start(meta, recipients.recipients, self.clock.time())
        log.info("broadcast.started", journal=str(self.journal_path), **journal.counts())
        return 0

    async def _wait_until(self, at: float) -> None:
        left = at - self.clock.time()
        if left <= 0:
            return
        log.info("broadcast.waiting", until=datetime.fromtimestamp(at, UTC).isoformat())
        sleeper = asyncio.ensure_future(self.clock.sleep(left))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Not `suppress(CancelledError): await task`: that also swallowed a cancel of this
            # run (a second Ctrl-C) landing as the task ended, and the sends began anyway.
            await cancel_and_wait((sleeper, stopper))
        for task in (sleeper, stopper):
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def _send_all(self, journal: Journal) -> None:
        queue: asyncio.Queue[Entry] = asyncio.Queue()
        for entry in journal.pending():
            queue.put_nowait(entry)
        bucket = TokenBucket(self.rate, self.clock)

        async def worker() -> None:
            while not self.stopping:
                try:
                    entry = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await bucket.take()
                if self.stopping:
                    return
                await self._send_one(journal, entry)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def _send_one(self, journal: Journal, entry: Entry) -> None:
        attempt = 0
        while True:
            attempt += 1
            journal.sending(entry.row, self.clock.time())  # committed before the request leaves
            outcome = await self._try(journal, entry)
            if outcome is None:
                break
            if attempt >= self.retry.max_attempts or self.stopping:
                journal.retry(entry.row, self.clock.time())
                log.warning("broadcast.gave_up", row=entry.row, attempts=attempt, error=outcome[1])
                break
            wait = outcome[0] if outcome[0] is not None else self.retry.backoff(attempt)
            log.info("broadcast.retry", row=entry.row, attempt=attempt, delay=round(wait, 3))
            journal.retry(entry.row, self.clock.time())
            await self.clock.sleep(wait)
        if self.on_progress is not None:
            self.on_progress(journal.entry(entry.row), journal.counts())

    async def _try(self, journal: Journal, entry: Entry) -> tuple[float | None, str] | None:
        """One send; ``(wait, error)`` when it must be tried again, else ``None`` (journaled)."""
        now = self.clock.time
        try:
            message_id = await self.sender.send(entry)
        except (QiscusRateLimited, QiscusServerError) as e:
            return e.retry_after, str(e)
        except QiscusAPIError as e:
            journal.refused(entry.row, f"{e.status}: {e.message}", now())
            return None
        except QiscusNetworkError as e:
            if isinstance(e.__cause__, aiohttp.ClientConnectorError):
                return None, str(e)  # never connected: nothing was sent
            journal.unknown(entry.row, f"no answer: {e}", now())
            return None
        except QbotError as e:  # refused before sending (a variable over the limit...)
            journal.refused(entry.row, str(e), now())
            return None
        except asyncio.CancelledError:
            journal.unknown(entry.row, "cancelled while in flight", now())
            raise
        except Exception as e:
            journal.unknown(entry.row, f"{type(e).__name__}: {e}", now())
            log.exception("broadcast.send_crashed", row=entry.row)
            return None
        journal.sent(entry.row, message_id, now())
        return None


def _planned(recipient: Any) -> Entry:
    status: Status = "pending" if recipient.refused is None else "refused"
    return Entry(
        recipient.row, recipient.phone, recipient.variables, recipient.language,
        recipient.header, status, recipient.refused, None, 0, None,
    )  # fmt: skip


def _count(entries: list[Entry]) -> dict[Status, int]:
    counts: dict[Status, int] = {"pending": 0, "sending": 0, "sent": 0, "refused": 0, "unknown": 0}
    for entry in entries:
        counts[entry.status] += 1
    return counts
