"""The admin commands, run with click's CliRunner against the fake Qiscus server.

Commands call ``asyncio.run`` themselves, so each runs in a worker thread while the fake keeps
serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
import structlog
from click.testing import CliRunner, Result

from qbot._cli_admin import register
from qbot.emulator import Emulator, serve_emulator
from tests.emulated import FAKE, STRICT, fake_store

BOT = "bot@example.com"


@click.group()
def cli() -> None:
    """The admin commands on a bare group, as ``qbot`` registers them."""


register(cli)


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    # The commands configure structlog to write on CliRunner's stderr, closed after each run.
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)


def write_config(path: Path, fake: Emulator, secret: str = "fake-secret", **qiscus: Any) -> Path:
    settings = {
        "qiscus": {
            "app_id": fake.config.app_id,
            "secret_key": secret,
            "base_url": fake.base_url,
            "max_attempts": 2,
            "max_retry_time": 5,
            **qiscus,
        },
        "bot": {"email": BOT, "name": "Bot"},
    }
    path.write_text(json.dumps(settings))  # JSON is YAML
    return path


@pytest.fixture
def config(tmp_path: Path, fake_qiscus: Emulator, clean_env: None) -> Path:
    return write_config(tmp_path / "config.yaml", fake_qiscus)


async def qbot(*args: str | Path) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, [str(a) for a in args])


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- send, users, rooms --------------------------------------------------------------------------
async def test_send_posts_as_the_configured_bot(config: Path, fake_qiscus: Emulator) -> None:
    result = await qbot("send", "7", "hello room", "--config", config)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "sent comment 1 to room 7\n"
    posted = fake_qiscus.posted_comments(7)
    assert [(p["sender_email"], p["message"]) for p in posted] == [(BOT, "hello room")]


async def test_send_refuses_text_over_4000_characters(config: Path) -> None:
    result = await qbot("send", "7", "x" * 4001, "--config", config)

    assert result.exit_code == 2
    assert one_error_line(result) == "error: TEXT is 4001 characters; Qiscus accepts at most 4000"


async def test_wrong_secret_is_one_clear_line_and_exit_1(
    tmp_path: Path, fake_qiscus: Emulator, clean_env: None
) -> None:
    config = write_config(tmp_path / "c.yaml", fake_qiscus, secret="nope")

    result = await qbot("send", "7", "hi", "--config", config)

    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith("error: Qiscus rejected the secret key (401) for app 'fake-app'")
    assert "qiscus.secret_key" in line
    assert "nope" not in result.output


async def test_unknown_room_is_reported_as_not_found(tmp_path: Path, clean_env: None) -> None:
    async with serve_emulator(STRICT, fake_store()) as fake:
        await fake.add_user(BOT)
        config = write_config(tmp_path / "c.yaml", fake)
        result = await qbot("send", "999", "hi", "--config", config)

    assert result.exit_code == 1
    assert one_error_line(result) == (
        "error: not found (404) on /api/v2/rest/post_comment: room '999' not found"
    )


async def test_missing_config_file_exits_2(tmp_path: Path, clean_env: None) -> None:
    result = await qbot("send", "7", "hi", "--config", tmp_path / "nope.yaml")

    assert result.exit_code == 2
    assert "nope.yaml" in one_error_line(result)


async def test_config_from_environment_only(
    fake_qiscus: Emulator, monkeypatch: pytest.MonkeyPatch, clean_env: None, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QBOT_QISCUS__APP_ID", "fake-app")
    monkeypatch.setenv("QBOT_QISCUS__SECRET_KEY", "fake-secret")
    monkeypatch.setenv("QBOT_QISCUS__BASE_URL", fake_qiscus.base_url)
    monkeypatch.setenv("QBOT_BOT__EMAIL", BOT)

    result = await qbot("send", "3", "from env")

    assert result.exit_code == 0, result.stderr
    assert fake_qiscus.posted_comments(3)[0]["message"] == "from env"


async def test_unreachable_qiscus_exits_1(tmp_path: Path, clean_env: None) -> None:
    async with serve_emulator(FAKE, fake_store()) as fake:
        config = write_config(tmp_path / "c.yaml", fake, max_attempts=1)
    result = await qbot("send", "7", "hi", "--config", config)

    assert result.exit_code == 1
    assert "could not reach Qiscus" in one_error_line(result)


async def test_users_register_and_rooms_create(config: Path, fake_qiscus: Emulator) -> None:
    registered = await qbot("users", "register", "ann@x.com", "Ann", "--config", config)
    created = await qbot("rooms", "create", "Support", "ann@x.com", "--config", config)

    assert registered.exit_code == 0, registered.stderr
    assert registered.stdout == "registered ann@x.com (Ann), id 1\n"
    assert created.exit_code == 0, created.stderr
    assert created.stdout == "created room 1 'Support' with 2 participants\n"
    assert (await fake_qiscus.store.get_room(1) or {}).get("creator") == BOT


# -- exports -------------------------------------------------------------------------------------
async def test_export_wait_downloads_the_json(
    config: Path, fake_qiscus: Emulator, tmp_path: Path
) -> None:
    await fake_qiscus.add_user("ann@x.com", "Ann")
    output = tmp_path / "users.json"

    result = await qbot(
        "export", "users", "--from", "2024-01-01", "--to", "2024-01-31", "--wait",
        "--output", output, "--poll-interval", "0", "--config", config,
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert [u["email"] for u in json.loads(output.read_text())] == ["ann@x.com"]
    assert f"saved 1 users to {output}" in result.stdout
    body = fake_qiscus.calls_to("exports")[0].body
    assert body == {"type": "users", "start_date": "2024-01-01", "end_date": "2024-01-31"}


async def test_export_comments_holds_those_of_the_date_range(
    config: Path, fake_qiscus: Emulator, tmp_path: Path
) -> None:
    # The emulator exported every comment whatever the dates: a January backup held today's.
    await fake_qiscus.add_user("ann@x.com", "Ann")
    room = await fake_qiscus.add_room("Support", ["ann@x.com"])
    await fake_qiscus.user_post(int(room["id"]), "ann@x.com", text="hello")
    today = datetime.now(UTC).date()
    near = [(today + timedelta(days=d)).isoformat() for d in (-1, 1)]  # midnight-proof
    for start, end, count in [("2024-01-01", "2024-01-31", 0), (near[0], near[1], 1)]:
        output = tmp_path / f"comments-{start}.json"
        result = await qbot(
            "export", "comments", "--from", start, "--to", end, "--output", output,
            "--poll-interval", "0", "--config", config,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert [c["message"] for c in json.loads(output.read_text())] == ["hello"][:count]


async def test_export_without_wait_prints_how_to_follow(
    config: Path, fake_qiscus: Emulator
) -> None:
    result = await qbot("export", "comments", "--from", "2024-01-01", "--config", config)

    assert result.exit_code == 0, result.stderr
    unique_id = next(iter(fake_qiscus.backups.exports))
    assert f"qbot exports show {unique_id}" in result.stdout


async def test_export_rejects_reversed_dates(config: Path) -> None:
    result = await qbot(
        "export", "rooms", "--from", "2024-02-01", "--to", "2024-01-01", "--config", config
    )

    assert result.exit_code == 2
    assert one_error_line(result) == "error: --to 2024-01-01 is before --from 2024-02-01"


async def test_exports_list_show_delete(config: Path, fake_qiscus: Emulator) -> None:
    await qbot("export", "rooms", "--from", "2024-01-01", "--config", config)
    unique_id = next(iter(fake_qiscus.backups.exports))

    listed = await qbot("exports", "list", "--config", config)
    shown = await qbot("exports", "show", unique_id, "--config", config)
    deleted = await qbot("exports", "delete", unique_id, "--config", config)
    missing = await qbot("exports", "show", unique_id, "--config", config)

    assert unique_id in listed.stdout
    assert "rooms" in listed.stdout
    assert shown.stdout.startswith(unique_id)
    assert "50%" in shown.stdout
    assert deleted.stdout == f"deleted export {unique_id}\n"
    assert missing.exit_code == 1
    assert one_error_line(missing) == (
        f"error: not found (404) on /api/v2/rest/exports/{unique_id}: "
        f"backup {unique_id!r} not found"
    )


# -- imports -------------------------------------------------------------------------------------
async def test_import_valid_users_uploads_and_imports_list_shows_it(
    config: Path, fake_qiscus: Emulator, tmp_path: Path
) -> None:
    file = tmp_path / "users.json"
    file.write_text(json.dumps([{"Email": "ann@x.com", "Name": "Ann"}]))

    result = await qbot("import", "users", file, "--config", config)
    listed = await qbot("imports", "list", "--config", config)

    assert result.exit_code == 0, result.stderr
    assert "uploaded users.json: import" in result.stdout
    assert fake_qiscus.backups.imported_rows == [("users", [{"Email": "ann@x.com", "Name": "Ann"}])]
    assert "finished" in listed.stdout
    assert await fake_qiscus.store.get_user("ann@x.com") is not None


async def test_import_with_problems_lists_rows_and_uploads_nothing(
    config: Path, fake_qiscus: Emulator, tmp_path: Path
) -> None:
    rows = [
        {"Email": "ann@x.com", "Name": "Ann"},
        {"Email": "ann@x.com", "Name": "Ann again"},
        {"Name": "No email"},
    ]
    file = tmp_path / "users.json"
    file.write_text(json.dumps(rows))

    result = await qbot("import", "users", file, "--config", config)

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "users.json: row 2: error: Email 'ann@x.com' duplicates row 1",
        "users.json: row 3: error: Email is required",
        "error: users.json has 2 error(s) in 3 rows; nothing uploaded",
    ]
    assert fake_qiscus.calls == []


async def test_import_malformed_file_is_one_line(config: Path, tmp_path: Path) -> None:
    file = tmp_path / "rooms.json"
    file.write_text('{"Name": "x"}')

    result = await qbot("import", "rooms", file, "--config", config)

    assert result.exit_code == 2
    assert "must hold a JSON array of rows, not dict" in one_error_line(result)


async def test_import_check_validates_against_users_file(
    config: Path, fake_qiscus: Emulator, tmp_path: Path
) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"Email": "a@x.com", "Name": "A"}]))
    rooms = tmp_path / "rooms.json"
    room = {
        "Name": "a@x.com b@x.com",
        "Type": "single",
        "CreatorEmail": "a@x.com",
        "UniqueId": "r1",
        "ParticipantEmails": ["a@x.com", "b@x.com"],
    }
    rooms.write_text(json.dumps([room]))

    result = await qbot("import", "rooms", rooms, "--users", users, "--check", "--config", config)

    assert result.exit_code == 2
    assert "rooms.json: row 1: error: user 'b@x.com' is not in the users file" in result.stderr
    assert fake_qiscus.calls == []


async def test_import_over_4mb_is_uploaded_in_ordered_chunks(
    config: Path, fake_qiscus: Emulator, tmp_path: Path
) -> None:
    def row(n: int, **kw: Any) -> dict[str, Any]:
        return {
            "Message": f"{n} " + "x" * 20_000,
            "Type": "text",
            "UniqueId": f"c{n}",
            "CreatorEmail": "a@x.com",
            "RoomUniqueId": "r1",
            "Payload": None,
            "ParentCommentUniqueId": "",
            **kw,
        }

    rows = [row(n) for n in range(260)]
    rows.append(row(260, Type="reply", ParentCommentUniqueId="c0", Message="re",
                    Payload={"text": "re", "replied_comment_id": 1}))  # fmt: skip
    file = tmp_path / "comments.json"
    file.write_text(json.dumps(rows))
    assert file.stat().st_size > 4 * 1024 * 1024

    result = await qbot("import", "comments", file, "--poll-interval", "0", "--config", config)

    assert result.exit_code == 0, result.stderr
    uploads = fake_qiscus.calls_to("imports")
    files = [c.body["file"] for c in uploads if c.method == "POST"]
    assert len(files) == 2
    assert [f.filename for f in files] == ["comments.part1.json", "comments.part2.json"]
    assert all(len(f.data) <= 4 * 1024 * 1024 for f in files)
    assert [r for _, chunk in fake_qiscus.backups.imported_rows for r in chunk] == rows
    # The second chunk went up only after the first one finished.
    methods = [c.method for c in uploads]
    assert methods.index("GET") < len(methods) - 1 - methods[::-1].index("POST")
