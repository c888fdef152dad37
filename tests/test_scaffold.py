"""qbot new: a generated project is complete and its own tests pass right away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qbot.errors import ConfigError
from qbot.scaffold import create_project

CLI = "import click; from qbot._cli_dev import register; g = click.Group('qbot'); register(g); g()"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )


def test_new_project_has_every_piece(tmp_path: Path) -> None:
    project = create_project("shop-bot", tmp_path)
    files = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert files == {
        ".dockerignore",
        ".gitignore",
        "Dockerfile",
        "README.md",
        "config.yaml",
        "intents.yaml",
        "pyproject.toml",
        "shop_bot/__init__.py",
        "shop_bot/bot.py",
        "templates/welcome.txt",
        "tests/test_bot.py",
        "tests/test_conversation.yaml",
    }
    assert 'qbot_target = "shop_bot.bot:bot"' in (project / "pyproject.toml").read_text()
    assert '"shop_bot.bot:bot"' in (project / "Dockerfile").read_text()
    assert "__PKG__" not in (project / "shop_bot/bot.py").read_text()


def test_new_project_tests_pass_and_lint_clean(tmp_path: Path) -> None:
    project = create_project("shop-bot", tmp_path)
    result = _run(project, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    lint = _run(project, "-m", "ruff", "check", "--no-cache", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_new_project_config_is_valid(tmp_path: Path) -> None:
    from qbot.config import load_settings

    project = create_project("shop-bot", tmp_path)
    settings = load_settings(project / "config.yaml")
    assert settings.bot.name == "shop-bot"
    assert settings.intents.file == "intents.yaml"


@pytest.mark.parametrize("name", ["1bot", "my bot", "../escape", ""])
def test_new_rejects_unusable_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="must start with a letter"):
        create_project(name, tmp_path)


def test_new_command_refuses_a_non_empty_directory_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = _run(tmp_path, "-c", CLI, "new", "taken")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: 'taken' already exists and is not empty: pick another name"
    ]
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_new_command_prints_the_next_steps(tmp_path: Path) -> None:
    result = _run(tmp_path, "-c", CLI, "new", "helpdesk")
    assert result.returncode == 0, result.stderr
    assert "qbot dev helpdesk.bot:bot" in result.stdout
    assert (tmp_path / "helpdesk" / "helpdesk" / "bot.py").is_file()
