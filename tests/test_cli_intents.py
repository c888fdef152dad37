"""`qbot intents test` and `qbot intents check` on small files of our own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qbot._cli_intents import Row, Verdict, suggest_threshold
from qbot.cli import main

DATA = Path(__file__).parent / "data"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the model cache goes to ./.qbot: keep it in tmp
    shutil.copy(DATA / "intents_id.yaml", tmp_path / "intents.yaml")
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_intents_test_prints_accuracy_per_intent_confusions_and_a_threshold(
    workdir: Path,
) -> None:
    data = workdir / "queries.csv"
    rows = (DATA / "intents_id_queries.csv").read_text()
    # Out-of-scope rows (no intent) and one deliberately mislabelled row.
    data.write_text(rows + "cuaca hari ini cerah,\naku suka kucing,none\nharga nya brp,refund\n")
    code, out, _ = invoke("intents", "test", "intents.yaml", "--data", str(data))
    assert code == 0, out
    assert "38 queries, 36 in scope, 2 out of scope" in out
    assert "accuracy (best intent): 97.2%" in out  # 35 of 36: the mislabelled row
    assert "out of scope refused at threshold 0.5: 100.0%" in out
    assert "suggested threshold: " in out
    assert "per intent" in out and "cancel_order" in out
    assert "most confused" in out and "refund" in out and "price" in out


@pytest.mark.parametrize(
    ("csv_text", "fragment"),
    [
        ("words,label2\nx,y\n", "needs a 'text' and an 'intent' column"),
        ("text,intent\n", "has no rows"),
        ("text,intent\nhello,no_such_intent\n", "does not define: no_such_intent"),
    ],
)
def test_cli_intents_test_bad_data_one_line_exit_2(
    workdir: Path, csv_text: str, fragment: str
) -> None:
    (workdir / "q.csv").write_text(csv_text)
    code, out, err = invoke("intents", "test", "intents.yaml", "--data", "q.csv")
    assert code == 2
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in out + err


def test_cli_intents_missing_files_exit_2(workdir: Path) -> None:
    code, _, err = invoke("intents", "test", "nope.yaml", "--data", "q.csv")
    assert (code, err.startswith("error: ")) == (2, True)
    code, _, err = invoke("intents", "test", "intents.yaml", "--data", "missing.csv")
    assert code == 2 and "cannot read 'missing.csv'" in err


def test_cli_intents_check_finds_duplicates_and_examples_nearer_another_intent(
    workdir: Path,
) -> None:
    (workdir / "bad.yaml").write_text(
        "intents:\n"
        "  hours: {examples: [when are you open, what time do you open, opening hours please,"
        " are you open on sunday, i want my money back]}\n"
        "  refund: {examples: [i want my money back, refund my order, give me a refund,"
        " money back please, return my money]}\n"
    )
    code, out, err = invoke("intents", "check", "bad.yaml")
    assert code == 1
    assert "'i want my money back' is an example of hours, refund" in out
    assert "problems" in err


def test_cli_intents_check_clean_file(workdir: Path) -> None:
    (workdir / "ok.yaml").write_text(
        "intents:\n"
        "  hours: {examples: [when are you open, what time are you open, are you open today]}\n"
        "  refund: {examples: [refund my order, i want a refund, refund please]}\n"
    )
    code, out, _ = invoke("intents", "check", "ok.yaml")
    assert (code, out) == (0, "no problems found\n")


def test_cli_intents_suggested_threshold_separates_out_of_scope() -> None:
    verdicts = [
        Verdict(Row("a", "x"), "x", 0.9),
        Verdict(Row("b", "x"), "x", 0.7),
        Verdict(Row("c", None), "x", 0.4),
        Verdict(Row("d", None), "x", 0.3),
    ]
    assert 0.4 < suggest_threshold(verdicts) <= 0.7
    in_scope = [Verdict(Row(str(i), "x"), "x", i / 100) for i in range(1, 101)]
    assert suggest_threshold(in_scope) == 0.03  # keeps 98 % of the right answers
