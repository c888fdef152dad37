"""Where a served bot's resident memory goes: ``qbot run`` (default config) under the closed-loop
load of part 8, read from inside at each mark.

The bot runs under a small wrapper (``python -m bench.rss_growth --serve ...``) that answers
SIGUSR1 by writing, after a ``gc.collect()``: ``/proc`` RSS (anonymous and file), SQLite's own
allocations (``sqlite3_memory_used``), glibc's heap (``mallinfo2``: in use / free), pymalloc's
arenas, and with ``--trace`` a tracemalloc snapshot. The report diffs the first and last snapshots
by line: what the run left allocated in Python, and where.

    python -m bench.rss_growth                         # marks 10,000 / 50,000 / 100,000
    python -m bench.rss_growth --marks 5000 --trace    # tracemalloc on (slow: ~3x)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.scale import WARMUP, closed_loop, serve


def _sqlite_used() -> int:
    import _sqlite3

    used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    used.restype = ctypes.c_int64
    return int(used())


def _heap() -> dict[str, int]:
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = Info
    info = mallinfo2()
    return {"heap_in_use": int(info.uordblks), "heap_free": int(info.fordblks)}


def _arenas() -> int | None:
    """pymalloc arenas in use (``sys._debugmallocstats`` writes them to C's stderr); None while
    tracemalloc traces (its hooks sit in front of pymalloc: no statistics printed)."""
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        for line in out:
            if line.startswith("# arenas allocated current"):
                return int(line.split("=")[1].replace(",", ""))
    return None


def _reading(folder: Path, count: int) -> None:
    gc.collect()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    found: dict[str, Any] = {
        key: int(status[key].split()[0]) for key in ("VmRSS", "RssAnon", "RssFile")
    }
    found.update(_heap(), sqlite=_sqlite_used(), arenas=_arenas())
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(folder / f"snap-{count}.pickle"))
    (folder / f"reading-{count}.json").write_text(json.dumps(found))


def _serve_traced(folder: Path, trace: bool, argv: list[str]) -> None:
    if trace:
        tracemalloc.start(8)
    count = [0]

    def on_signal(signum: int, frame: object) -> None:
        count[0] += 1
        _reading(folder, count[0])

    signal.signal(signal.SIGUSR1, on_signal)
    from qbot.cli import main as qbot_main

    sys.argv = ["qbot", *argv]
    qbot_main()


def _top(folder: Path, last: int, lines: int = 15) -> list[str]:
    first = tracemalloc.Snapshot.load(str(folder / "snap-1.pickle"))
    end = tracemalloc.Snapshot.load(str(folder / f"snap-{last}.pickle"))
    return [
        f"{s.size_diff / 1024:+.1f} KiB {s.count_diff:+d} {s.traceback[0]}"
        for s in end.compare_to(first, "lineno")[:lines]
    ]


def run(marks: list[int], trace: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qbot-bench-rss-") as tmp:
        folder = Path(tmp)
        wrapper = [
            "-m", "bench.rss_growth", "--serve", str(folder), *(["--trace"] if trace else []),
        ]  # fmt: skip
        readings: list[dict[str, Any]] = []
        with serve("qbot", folder, wrapper=wrapper) as served:

            def read(label: str) -> None:
                served.proc.send_signal(signal.SIGUSR1)
                path = folder / f"reading-{len(readings) + 1}.json"
                while not path.exists():
                    time.sleep(0.05)
                time.sleep(0.2)  # written, not only created
                readings.append({"at": label, **json.loads(path.read_text())})

            read("idle")
            done = 0
            for mark in marks:
                closed_loop(served, mark - done - WARMUP, offset=done)
                done = mark
                read(f"after {mark}")
        report: dict[str, Any] = {"readings": readings}
        if trace:
            report["top"] = _top(folder, len(readings))
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--marks", default="10000,50000,100000", help="webhooks at each reading")
    parser.add_argument("--trace", action="store_true", help="tracemalloc snapshots (slow)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.serve is not None:  # inside: the bot itself
        _serve_traced(args.serve, args.trace, rest)
        return
    marks = [int(m) for m in args.marks.split(",")]
    if any(b - a <= WARMUP for a, b in zip([0, *marks], marks, strict=False)):
        parser.error(f"--marks must grow by more than the warm-up ({WARMUP}) each")
    json.dump(run(marks, args.trace), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
