"""`open_storage` picks the backend named by `storage.url`, and refuses bad URLs clearly."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from qbot.errors import StorageError
from qbot.storage import MemoryStorage, RedisStorage, SqliteStorage, open_storage


def test_storage_open_memory_url_gives_memory_storage() -> None:
    assert isinstance(open_storage("memory://"), MemoryStorage)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///qbot.db", "qbot.db"),
        ("sqlite:///data/qbot.db", "data/qbot.db"),
        ("sqlite:////var/lib/qbot/qbot.db", "/var/lib/qbot/qbot.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///qbot.db?synchronous=normal", "qbot.db"),
    ],
)
def test_storage_open_sqlite_url_names_the_file(url: str, path: str) -> None:
    s = open_storage(url)
    assert isinstance(s, SqliteStorage)
    assert s.path == path


def test_storage_open_redis_url_reads_the_key_prefix() -> None:
    s = open_storage("redis://127.0.0.1:6379/0?prefix=shop:")
    assert isinstance(s, RedisStorage)
    assert s.prefix == "shop:"
    default = open_storage("redis://127.0.0.1:6379/0")
    assert isinstance(default, RedisStorage)
    assert default.prefix == "qbot:"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db/qbot", "unknown storage scheme 'postgres'.*memory://, sqlite:///"),
        ("qbot.db", "has no scheme: use one of memory://"),
        ("memory://extra", "takes nothing after 'memory://'"),
        ("sqlite://qbot.db", "needs three slashes and a path"),
        ("sqlite:///", "needs three slashes and a path"),
        ("sqlite:///qbot.db?synchronous=off", "synchronous must be one of full, normal"),
        ("sqlite:///qbot.db?mode=ro", "unknown options \\['mode'\\]"),
        ("redis://127.0.0.1:6379/0?prefix=", "prefix must not be empty"),
    ],
)
def test_storage_open_rejects_a_bad_url_naming_it(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        open_storage(url)


async def test_storage_open_unreachable_redis_fails_on_open_without_the_password() -> None:
    s = open_storage("redis://:hunter2@127.0.0.1:1/0")
    with pytest.raises(StorageError, match=r"redis 'redis://:\*\*\*@127\.0\.0\.1:1/0' failed") as e:
        await s.open()
    assert "hunter2" not in str(e.value)


async def test_storage_open_sqlite_in_a_missing_directory_fails_naming_the_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "missing" / "qbot.db"
    with pytest.raises(StorageError, match=r"folder '.*missing' does not exist; create it"):
        await open_storage(f"sqlite:///{path}").open()


async def test_storage_open_unopened_storage_says_to_open_it(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is not open: call 'await open\\(\\)'"):
        await open_storage(f"sqlite:///{tmp_path}/q.db").get_state("k")
    with pytest.raises(StorageError, match="is not open"):
        await open_storage("redis://127.0.0.1:6379/0").get_state("k")


@pytest.mark.redis
async def test_storage_open_as_context_manager_connects_and_closes() -> None:
    url = f"redis://127.0.0.1:6379/0?prefix=qbot-test-{uuid.uuid4().hex}:"
    async with open_storage(url) as s:
        await s.set_state("k", 60)
        assert isinstance(s, RedisStorage)
        assert await s.drop() == 1
    with pytest.raises(StorageError, match="is not open"):
        await s.get_state("k")
