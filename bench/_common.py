"""Helpers shared by the benchmark parts: percentiles, resident memory, free ports."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (nearest rank) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of process ``pid`` (this one by default) in MiB, from /proc."""
    path = f"/proc/{pid or os.getpid()}/status"
    with open(path, encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS line in {path}: is this Linux?")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_in_tree(root: Path, code: str, *args: str) -> dict[str, float]:
    """Run ``code`` with the checkout at ``root`` first on the path (an A/B against another
    tree) and return the JSON object its last line prints."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"run in {root} failed: {done.stderr.decode(errors='replace')[-1500:]}")
    result: dict[str, float] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result
