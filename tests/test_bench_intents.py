"""The accuracy bench's verdicts: each missed target with its number and one line of why, and
the out-of-scope row's best threshold within the allowed accuracy drop."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.intents_accuracy import best_within_drop, verdicts  # noqa: E402
from qbot.intents import IntentSet  # noqa: E402


def results(full: float, refused: float, drop: float, rss: float) -> list[dict[str, Any]]:
    return [
        {"measure": "full", "accuracy": full, "build_cpu_s": 2.5},
        {"measure": "few_10", "accuracy": 0.81},
        {
            "measure": "out_of_scope",
            "refused": refused,
            "drop": drop,
            "best_within_drop": {"refused": 0.39, "drop": 0.0295, "threshold": 0.35},
        },
        {
            "measure": "restart",
            "from_cache_s": 0.1,
            "rss_after_restart_mib": rss,
            "model_rss_mib": 9.0,
        },
        {"measure": "latency", "cpu_p99_ms": 0.5},
    ]


def test_verdicts_name_each_missed_target_with_its_number_and_why() -> None:
    missed = [v for v in verdicts(results(0.9201, 0.55, 0.06, 95.8)) if not v[2]]
    assert [m[0].split(" ")[:3] for m in missed] == [
        ["test", "accuracy,", "full"],
        ["out", "of", "scope:"],
        ["resident", "memory", "after"],
    ]
    full, oos, rss = missed
    assert full[1] == "92.0%" and "pretrained" in full[3]
    assert oos[1] == "55% refused, 6.0 pts down"
    assert "best refuses 39% (2.9 pts, 0.35" in oos[3]  # the number beside the why
    assert rss[1] == "100 MB" and "the model takes 9 MiB, the process without it 87 MiB" in rss[3]


def test_verdicts_all_met() -> None:
    assert all(v[2] for v in verdicts(results(0.94, 0.65, 0.02, 90.0)))


def test_best_within_drop_keeps_the_accuracy_it_allows(tmp_path: Path) -> None:
    intents = IntentSet(
        {
            "refund": {"examples": ["i want a refund", "refund my order", "money back please"]},
            "track": {"examples": ["where is my parcel", "track my order", "parcel not here"]},
            "greet": {"examples": ["hello there", "good morning", "hi"]},
        },
        cache_dir=tmp_path,
    )
    inside = [("refund please", "refund"), ("where is my order", "track"), ("hello", "greet")]
    outside = [("the weather in paris", ""), ("sing me a song", "")]
    strict = best_within_drop(intents, inside, outside, 0.0)
    loose = best_within_drop(intents, inside, outside, 1.0)
    assert strict["drop"] == 0.0
    assert loose["refused"] >= strict["refused"]
    assert loose["refused"] == 1.0  # allowed to lose every in-scope query: refuses all
