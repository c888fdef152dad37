"""Smoke tests of the scale bench's pieces: the aiogram peer answers every Telegram update through
the Bot API sink, and the paced load generator gets every webhook answered and replied."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

pytest.importorskip("aiogram")

from bench import scale  # noqa: E402
from bench.scenario import telegram_update  # noqa: E402


def test_telegram_updates_carry_the_workload() -> None:
    assert telegram_update(0, 10)["message"]["text"] == "hi"
    tap = telegram_update(15, 10)["callback_query"]
    assert tap["data"] == "track"
    assert tap["message"]["message_id"] == 1_000_015
    assert tap["message"]["chat"]["id"] == 10_005


def test_aiogram_peer_answers_every_update_like_qbot(tmp_path: Path) -> None:
    with scale.serve("aiogram", tmp_path) as served:
        load = scale.closed_loop(served, 200)
    assert load["replies"] == 200
    assert load["lost"] == load["status"] == 0
    assert load["cpu_us"] > 0


def test_paced_load_is_answered_and_replied(tmp_path: Path) -> None:
    with scale.serve("bare", tmp_path) as served:
        result = scale._bench_tool(served, "bench.paced", "--rate", "100", "--seconds", "2")
    assert result["sent"] == 200
    assert result["replies"] == 200
    assert result["status"] == result["failed"] == result["no_connection"] == 0
    assert result["ack_p99_ms"] >= result["ack_p50_ms"] > 0


def test_the_paced_row_says_why_webhooks_went_unanswered() -> None:
    # "29669 of 30000 replied" read as lost replies; 331 were never sent (no free connection).
    from bench.__main__ import _unsent

    ack = {"no_connection": 331, "failed": 0, "status": 2}
    assert _unsent(ack) == (
        "; 331 not sent: every connection waiting for an ack; 2 answered other than 200"
    )
    assert _unsent({"no_connection": 0, "failed": 0, "status": 0}) == ""
