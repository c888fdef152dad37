"""qbot new: a generated project is complete and its own tests pass right away."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import PathDistribution, distribution
from pathlib import Path

import pytest

from qbot.errors import ConfigError
from qbot.scaffold import create_project, qbot_requirement

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
    assert "5 passed" in result.stdout
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
    # python3: Debian and Ubuntu have no `python` command unless asked for.
    assert "python3 -m venv .venv" in result.stdout
    assert "python3 -m venv .venv" in (tmp_path / "helpdesk" / "README.md").read_text()
    assert (tmp_path / "helpdesk" / "helpdesk" / "bot.py").is_file()


@pytest.mark.parametrize(
    ("name", "shadowed"),
    [
        ("qbot", "the qbot framework"),
        ("QBot", "the qbot framework"),
        ("json", "the standard-library module 'json'"),
        ("asyncio", "the standard-library module 'asyncio'"),
        ("tests", "the tests/ folder"),
    ],
)
def test_new_refuses_names_that_would_shadow_a_module(
    tmp_path: Path, name: str, shadowed: str
) -> None:
    with pytest.raises(ConfigError, match=f"would shadow {shadowed}: pick another name"):
        create_project(name, tmp_path)
    assert not (tmp_path / name).exists()


def test_new_command_refuses_qbot_in_one_line(tmp_path: Path) -> None:
    result = _run(tmp_path, "-c", CLI, "new", "qbot")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: project name 'qbot' makes a package 'qbot' that would shadow the qbot framework: "
        "pick another name, e.g. 'qbot-bot'"
    ]


def _installed(tmp_path: Path, direct_url: dict[str, object] | None) -> PathDistribution:
    info = tmp_path / "qbot-1.4.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qbot\nVersion: 1.4.2\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return PathDistribution(info)


@pytest.mark.parametrize(
    ("direct_url", "requirement"),
    [
        (None, "qbot>=1.4.2"),  # from a package index: no direct_url.json
        (
            {"url": "file:///src/qbot", "dir_info": {"editable": True}},
            "qbot @ file:///src/qbot",
        ),
        (
            {"url": "file:///w/qbot-1.4.2-py3-none-any.whl", "archive_info": {}},
            "qbot @ file:///w/qbot-1.4.2-py3-none-any.whl",
        ),
        (
            {
                "url": "https://github.com/o/qbot",
                "vcs_info": {"vcs": "git", "commit_id": "abc123"},
            },
            "qbot @ git+https://github.com/o/qbot@abc123",
        ),
    ],
)
def test_new_project_depends_on_qbot_where_it_was_installed_from(
    tmp_path: Path, direct_url: dict[str, object] | None, requirement: str
) -> None:
    assert qbot_requirement(_installed(tmp_path, direct_url)) == requirement


def test_new_project_from_a_source_checkout_depends_on_that_checkout(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    origin = json.loads(distribution("qbot").read_text("direct_url.json") or "{}")
    if origin.get("url") != root.as_uri():
        pytest.skip(f"qbot is not installed from this checkout ({root}) but from {origin!r}")
    project = create_project("desk", tmp_path)
    assert f'dependencies = ["qbot @ {root.as_uri()}"]' in (project / "pyproject.toml").read_text()


def test_new_project_dockerfile_takes_settings_from_the_environment(tmp_path: Path) -> None:
    project = create_project("desk", tmp_path)
    dockerfile = (project / "Dockerfile").read_text()
    assert "config.yaml" not in dockerfile.split("\nFROM", 1)[1]  # only the comment names it
    assert "QBOT_STORAGE__URL=sqlite:////data/qbot.db" in dockerfile
    assert "USER bot" in dockerfile
    assert "config.yaml" in (project / ".dockerignore").read_text().splitlines()
