"""Intent matching: scores, threshold, determinism, YAML errors."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from qbot.errors import ConfigError
from qbot.intents import IntentSet, load_intents

BOTS = Path(__file__).resolve().parents[1] / "bots"


@pytest.fixture
def intents(tmp_path: Path) -> IntentSet:
    return load_intents(BOTS / "intents.yaml", cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("text", "name", "source"),
    [
        ("I need a REFUND", "refund", "pattern"),
        ("tolong pengembalian dana", "refund", "keyword"),
        ("can I get my money back please", "refund", "pattern"),
        ("what are your opening hours?", "opening_hours", "keyword"),
        ("when are you open", "opening_hours", "examples"),
        ("Are you open on Sunday?", "opening_hours", "examples"),
        ("let me talk to an agent", "talk_to_human", "pattern"),
        ("can I speak with someone real", "talk_to_human", "examples"),
    ],
)
def test_intents_match_by_pattern_keyword_and_example(
    intents: IntentSet, text: str, name: str, source: str
) -> None:
    match = intents.match(text)
    assert match is not None
    assert (match.name, match.source) == (name, source)
    assert 0.6 <= match.score <= 1.0


@pytest.mark.parametrize("text", ["bananas are yellow", "", "   ", "the weather today"])
def test_intents_below_threshold_is_none(intents: IntentSet, text: str) -> None:
    assert intents.match(text) is None


def test_intents_scores_cover_every_intent_and_rank_sensibly(intents: IntentSet) -> None:
    scores = intents.scores("what time do you open")
    assert set(scores) == {"refund", "order_status", "opening_hours", "talk_to_human"}
    assert scores["opening_hours"] > 0.9
    assert scores["refund"] < scores["opening_hours"]


def test_intents_threshold_is_configurable() -> None:
    spec = {"hours": {"examples": ["when are you open today"]}}
    text = "are you open"
    loose, strict = IntentSet(spec, threshold=0.1), IntentSet(spec, threshold=0.99)
    assert loose.match(text) is not None
    assert strict.match(text) is None


def test_intents_ties_go_to_the_first_declared() -> None:
    spec = {"a": {"keywords": ["help"]}, "b": {"keywords": ["help"]}}
    assert IntentSet(spec).match("help")
    for _ in range(5):
        match = IntentSet(spec).match("help me")
        assert match is not None and match.name == "a"
    reversed_spec = {"b": spec["b"], "a": spec["a"]}
    match = IntentSet(reversed_spec).match("help me")
    assert match is not None and match.name == "b"


def test_intents_keyword_phrases_match_whole_words_only() -> None:
    spec = {"cancel": {"keywords": ["cancel order"]}}
    intents = IntentSet(spec)
    assert intents.match("please cancel order 5") is not None
    assert intents.match("cancel my order") is None
    assert intents.match("cancelled orders") is None


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("intents: {}", "non-empty 'intents'"),
        ("intents:\n  a: {}\n", "no patterns, keywords or examples"),
        ("intents:\n  a: {pattern: [x]}\n", "unknown keys ['pattern']"),
        ("intents:\n  a: {patterns: ['(']}\n", "pattern '('"),
        ("intents:\n  a: {examples: [1]}\n", "list of non-empty strings"),
        ("threshold: 2\nintents:\n  a: {keywords: [x]}\n", "between 0 and 1"),
        ("- not a mapping", "must hold a mapping"),
        ("intents: [", "not valid YAML"),
    ],
)
def test_intents_bad_files_name_the_problem(tmp_path: Path, yaml_text: str, fragment: str) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        load_intents(path)


def test_intents_missing_file(tmp_path: Path) -> None:
    # It was called a "config file": `qbot intents check nope.yaml` sent people to config.yaml.
    with pytest.raises(ConfigError, match=r"^intents file '.*nope\.yaml' does not exist$"):
        load_intents(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("intents: [\n")
    with pytest.raises(ConfigError, match=r"^intents file '.*bad\.yaml' is not valid YAML"):
        load_intents(tmp_path / "bad.yaml")


def test_intents_match_prunes_to_the_same_answer_as_scoring_every_example() -> None:
    # Many intents sharing a vocabulary of common words: match() skips examples that cannot
    # reach the threshold; the answer must be the one the exhaustive scores() give.
    rnd = random.Random(5)
    common = [f"c{i}" for i in range(30)]
    rare = [f"r{i}" for i in range(400)]
    spec = {}
    for n in range(60):
        topic = rnd.sample(rare, 5)
        spec[f"i{n}"] = {
            "examples": [" ".join(rnd.sample(topic, 2) + rnd.sample(common, 4)) for _ in range(8)]
        }
    for threshold in (0.0, 0.3, 0.6, 0.9):
        intents = IntentSet(spec, threshold=threshold)
        for _ in range(400):
            words = rnd.sample(common, rnd.randint(1, 8)) + rnd.sample(rare, rnd.randint(0, 3))
            rnd.shuffle(words)
            text = " ".join(words)
            scores = intents.scores(text)
            top = max(scores.values())
            expected = next(n for n in intents.names if scores[n] == top)
            found = intents.match(text)
            if top < threshold or top == 0.0:
                assert found is None, (text, found)
            else:
                assert found is not None, (text, top)
                assert (found.name, found.score) == (expected, top), text
