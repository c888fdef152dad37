"""``qbot run --workers N``: N processes serving one port, started, restarted and drained together.

The supervisor (the ``qbot run`` process) binds the listening socket once and starts N workers,
each a ``qbot run`` of its own that accepts on that same socket (passed as an inherited file
descriptor, in the manner of gunicorn's and uvicorn's workers): the kernel hands each new
connection to whichever worker accepts first, so a busy worker takes fewer. Connections waiting
in the socket's backlog survive a worker's death; the supervisor starts a new worker in its place,
after a backoff when workers keep dying. The workers share the storage like replicas do
(``docs/scaling.md``): SQLite in WAL mode with its room leases, or Redis; ``memory://`` lives in
one process and is refused.

Each worker also holds one end of a socket pair with the supervisor: it writes ``ready`` once it
serves, and starts its graceful drain (503 with ``Retry-After`` for what arrives meanwhile) when
the supervisor asks or when the pair closes because the supervisor died. On SIGTERM or SIGINT the
supervisor asks every worker at once, waits for them all (``server.shutdown_timeout`` plus a
margin) and exits 0; a second signal kills the workers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from qbot._aio import cancel_and_wait
from qbot.clock import Clock, SystemClock

__all__ = [
    "BACKOFF_MAX",
    "Supervisor",
    "WorkerFailed",
    "listen_socket",
    "serve_as_worker",
]

log = structlog.get_logger("qbot.workers")

READY = b"ready"
STOP = b"stop"
BACKOFF_FIRST = 0.5
"""Seconds before a dead worker is started again; doubled for each death in a row."""
BACKOFF_MAX = 30.0
"""The longest wait before starting a worker again."""
STABLE_AFTER = 10.0
"""Seconds a worker must have served for its death not to count as one more in a row."""
KILL_MARGIN = 10.0
"""Seconds past ``server.shutdown_timeout`` a draining worker has before it is killed."""
BACKLOG = 1024
"""The listening socket's backlog: what waits while every worker is busy or one restarts."""

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

Command = Callable[[int, int], Sequence[str]]
"""The argv of a worker given the listening socket's and its control socket's descriptors."""


class WorkerFailed(Exception):
    """A worker exited before the workers had all served once: they cannot start."""


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), to share with workers.

    Raises:
        OSError: the address cannot be listened on.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    control: socket.socket | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    listening: asyncio.Task[None] | None = None
    """Waits for the worker's ``ready``."""
    started: float = 0.0
    deaths: int = 0
    """Deaths in a row (reset once a worker has served for :data:`STABLE_AFTER` seconds)."""


class Supervisor:
    """Start ``count`` workers with ``command``, keep them running, drain them on a signal.

    Args:
        command: the argv of a worker (see :data:`Command`).
        count: how many workers.
        sock: the listening socket every worker accepts on (the supervisor keeps it open).
        shutdown_timeout: ``server.shutdown_timeout``: how long a worker may drain.
        clock: what the backoff and uptimes are measured with.
        ready: called once every worker serves for the first time.
    """

    def __init__(
        self,
        command: Command,
        count: int,
        sock: socket.socket,
        *,
        shutdown_timeout: float,
        clock: Clock | None = None,
        ready: Callable[[], None] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.command = command
        self.sock = sock
        self.shutdown_timeout = shutdown_timeout
        self.clock = clock or SystemClock()
        self.on_ready = ready
        self.workers = [_Worker(i + 1) for i in range(count)]
        self.restarts = 0
        self._stopping = asyncio.Event()
        self._forced = False
        self._served = False

    @property
    def pids(self) -> list[int]:
        """The pids of the workers running now."""
        return [w.proc.pid for w in self.workers if w.proc and w.proc.returncode is None]

    def stop(self) -> None:
        """Drain every worker and return from :meth:`run` (a second call kills them)."""
        if self._stopping.is_set():
            self._forced = True
            log.warning("workers.killing", reason="second stop signal")
            for worker in self.workers:
                self._signal(worker, signal.SIGKILL)
            return
        self._stopping.set()

    async def run(self) -> int:
        """Serve until :meth:`stop`; the exit status (0: every worker drained and exited 0).

        Raises:
            WorkerFailed: a worker exited before the workers had all served once (the others
                are drained first).
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            for worker in self.workers:
                await self._start(worker)
            watchers = [asyncio.create_task(self._keep(w)) for w in self.workers]
            ready = asyncio.create_task(self._all_ready())
            stopping = asyncio.create_task(self._stopping.wait())
            failure: BaseException | None = None
            try:
                await asyncio.wait([*watchers, stopping], return_when=asyncio.FIRST_COMPLETED)
                failure = next(
                    (w.exception() for w in watchers if w.done() and w.exception() is not None),
                    None,
                )
            finally:
                self._stopping.set()
                await cancel_and_wait([*watchers, ready, stopping])
            code = await self._drain()
            if failure is not None:
                raise failure
            return code
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            for worker in self.workers:
                if worker.control is not None:
                    worker.control.close()

    async def _all_ready(self) -> None:
        await asyncio.gather(*(w.ready.wait() for w in self.workers))
        self._served = True
        log.info("workers.ready", workers=len(self.workers), pids=self.pids)
        if self.on_ready is not None:
            self.on_ready()

    async def _start(self, worker: _Worker) -> None:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        worker.ready = asyncio.Event()
        # The worker starts with SIGINT and SIGTERM blocked (a signal mask survives exec): one
        # sent to the whole group (Ctrl+C, `timeout`, systemd) while it imports and opens its
        # storage must not kill it; it unblocks them once it serves, and a SIGTERM that came
        # meanwhile then drains it. Here, one that comes while blocked is delivered right after.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            worker.proc = await asyncio.create_subprocess_exec(
                *self.command(self.sock.fileno(), theirs.fileno()),
                pass_fds=(self.sock.fileno(), theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            theirs.close()
        if worker.control is not None:
            worker.control.close()
        worker.control = ours
        worker.started = self.clock.time()
        log.info("worker.started", worker=worker.index, pid=worker.proc.pid)
        worker.listening = asyncio.get_running_loop().create_task(self._await_ready(worker, ours))

    async def _await_ready(self, worker: _Worker, control: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            if await loop.sock_recv(control, len(READY)) == READY:
                worker.ready.set()

    async def _keep(self, worker: _Worker) -> None:
        """Start ``worker`` again whenever it dies, until the supervisor stops."""
        while True:
            assert worker.proc is not None
            code = await worker.proc.wait()
            if self._stopping.is_set():
                return
            if worker.listening is not None:
                # A worker may say ready and die at once: read what it said before judging.
                await asyncio.wait([worker.listening], timeout=1.0)
            served = worker.ready.is_set()
            if not served and not self._served:
                raise WorkerFailed(f"worker {worker.index} {_describe_exit(code)} before serving")
            uptime = self.clock.time() - worker.started
            worker.deaths = 1 if served and uptime >= STABLE_AFTER else worker.deaths + 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (worker.deaths - 1))
            log.error(
                "worker.died",
                worker=worker.index,
                pid=worker.proc.pid,
                exit=_describe_exit(code),
                served=served,
                restart_in=delay,
            )
            await self.clock.sleep(delay)
            if self._stopping.is_set():
                return
            self.restarts += 1
            await self._start(worker)

    def _signal(self, worker: _Worker, sig: signal.Signals) -> None:
        if worker.proc is not None and worker.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(sig)

    async def _drain(self) -> int:
        running = [w for w in self.workers if w.proc is not None and w.proc.returncode is None]
        log.info("workers.draining", workers=len(running), timeout=self.shutdown_timeout)
        for worker in running:
            # Through the pair rather than a signal: a worker may get the SIGTERM of a process
            # manager as well (systemd signals the whole group), and asked twice it drains once;
            # one still starting reads the request once it serves.
            with contextlib.suppress(OSError):
                if worker.control is not None:
                    worker.control.send(STOP)
        codes: dict[int, int] = {}

        async def wait(worker: _Worker) -> None:
            assert worker.proc is not None
            try:
                async with asyncio.timeout(self.shutdown_timeout + KILL_MARGIN):
                    codes[worker.index] = await worker.proc.wait()
            except TimeoutError:
                log.error("worker.killed", worker=worker.index, reason="drain took too long")
                self._signal(worker, signal.SIGKILL)
                codes[worker.index] = await worker.proc.wait()

        await asyncio.gather(*(wait(w) for w in running))
        failed = {i: _describe_exit(c) for i, c in codes.items() if c != 0}
        log.info("workers.stopped", restarts=self.restarts, failed=failed or None)
        return 1 if failed or self._forced else 0


def serve_as_worker(control_fd: int) -> Callable[[Callable[[], None]], None]:
    """The ``supervised`` hook of :func:`qbot.server.run_server` for a worker.

    Says ``ready`` to the supervisor through ``control_fd`` and starts the drain when the
    supervisor asks, or when it is gone (the pair closes).
    """
    control = socket.socket(fileno=control_fd)

    def hook(drain: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        # Blocked by the supervisor until now (see Supervisor._start); the loop handles them.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        try:
            control.sendall(READY)
        except OSError:  # the supervisor is already gone
            drain()
            return
        control.setblocking(False)

        def readable() -> None:
            try:
                data = control.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data == b"":
                log.warning("worker.orphaned", pid=os.getpid(), reason="the supervisor is gone")
            loop.remove_reader(control.fileno())
            drain()

        loop.add_reader(control.fileno(), readable)

    return hook
