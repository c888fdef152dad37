"""`qbot scheduled list / cancel`: reading the storage the bot runs on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qbot.cli import main
from qbot.storage import SqliteStorage
from qbot.storage.schedule import Job


@pytest.fixture
async def db(tmp_path: Path) -> str:
    path = tmp_path / "qbot.db"
    async with SqliteStorage(str(path)) as s:
        origin = {"from": {"email": "ani@example.com", "name": "Ani"}}
        await s.schedule_put(Job("j1", "101", "followup", 1_900_000_000.0, {"order": 42}, origin))
        await s.schedule_put(
            Job("j2", "102", "remind", 1_800_000_000.0, "x" * 100, None, cancel_on_reply=True)
        )
    return f"sqlite:///{path}"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_scheduled_list_shows_jobs_soonest_first(db: str) -> None:
    code, out = invoke("scheduled", "list", "--storage", db)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ROOM", "NAME", "DUE"]
    assert lines[1].split()[:3] == ["102", "remind", "2027-01-15"]
    assert "cancel" in lines[1] and lines[1].endswith("...")
    assert lines[2].split()[:2] == ["101", "followup"] and '{"order":42}' in lines[2]


def test_scheduled_list_json_and_room_filter(db: str) -> None:
    code, out = invoke("scheduled", "list", "--storage", db, "--room", "101", "--json")
    assert code == 0, out
    [job] = json.loads(out)
    assert job["name"] == "followup" and job["data"] == {"order": 42}
    assert job["sender"] == "ani@example.com" and job["state"] == "waiting"
    assert job["due_ts"] == 1_900_000_000.0 and job["due_at"] == "2030-03-17 17:46:40Z"
    code, out = invoke("scheduled", "list", "--storage", db, "--room", "999")
    assert (code, out.strip()) == (0, "No scheduled job in room 999.")


def test_scheduled_cancel_removes_one_job_and_fails_clearly_on_none(db: str) -> None:
    code, out = invoke("scheduled", "cancel", "101", "followup", "--storage", db)
    assert (code, out.strip()) == (0, "Cancelled followup in room 101.")
    code, out = invoke("scheduled", "cancel", "101", "followup", "--storage", db)
    assert code == 1 and "has no job 'followup'" in out
    code, out = invoke("scheduled", "cancel", "101", "bad name", "--storage", db)
    assert code == 1 and out.startswith("error:") and "job name" in out


def test_scheduled_list_bad_storage_is_one_line_and_non_zero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qbot.cli", "scheduled", "list", "--storage", "memory://"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "memory://" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "qbot.cli", "scheduled", "list", "--storage", "bogus://x"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
