"""Without a Redis server the Redis tests skip with a reason; under CI they fail instead."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS_TESTS = "tests/test_storage_redis.py"


def _dead_address() -> str:
    # A port that was free a moment ago: nothing answers there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _run_redis_tests(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "CI"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", REDIS_TESTS],
        cwd=ROOT,
        env={**base, "QBOT_TEST_REDIS": _dead_address(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_redis_tests_skip_with_a_reason_when_no_server_answers() -> None:
    result = _run_redis_tests()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 skipped" in result.stdout
    assert "no Redis server answers at 127.0.0.1:" in result.stdout
    assert "redis-server" in result.stdout


def test_redis_tests_fail_under_ci_when_no_server_answers() -> None:
    result = _run_redis_tests(CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "4 errors" in result.stdout
    assert "CI=true and no Redis server answers" in result.stdout
