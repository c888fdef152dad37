"""qbot installs like a real package: the wheel alone runs the CLI, the page and `qbot new`.

Offline: the wheel goes into a fresh venv with ``--no-deps --no-index``; its dependencies come
from this test run's own site-packages (minus qbot's editable install), the way a machine that
already has them would provide them. The generated project's README commands then run with no
index at all and its tests pass.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    venv: Path
    deps: Path  # this run's dependencies, without qbot

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self) -> dict[str, str]:
        """No index, no find-links, no pip config: whatever is not here cannot be fetched."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "QBOT_"))}
        env.update(
            PATH=f"{self.bin}{os.pathsep}{env['PATH']}",
            PYTHONPATH=str(self.deps),
            PIP_CONFIG_FILE=os.devnull,
            PIP_NO_INDEX="1",
            PIP_NO_BUILD_ISOLATION="0",  # pip's spelling of --no-build-isolation
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        return env


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: str = "") -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _deps_without_qbot(target: Path) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        if entry.name.startswith(("qbot-", "_editable_impl_qbot", "__editable__")):
            continue
        (target / entry.name).symlink_to(entry)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    dist = base / "dist"
    # What `make dist` runs: the sdist, then the wheel built from the sdist.
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)], ROOT)
    (wheel,) = dist.glob("qbot-*.whl")
    (sdist,) = dist.glob("qbot-*.tar.gz")
    venv = base / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base)
    deps = _deps_without_qbot(base / "deps")
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    (venv_site / "qbot-test-deps.pth").write_text(f"{deps}\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    _run([*pip, "install", "--quiet", "--no-deps", "--no-index", str(wheel)], base)
    return Installed(wheel, sdist, venv, deps)


def test_wheel_holds_the_page_the_scaffold_and_the_type_marker(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for needed in (
        "qbot/py.typed",
        "qbot/emulator/static/index.html",
        "qbot/emulator/static/style.css",
        "qbot/emulator/static/app.js",
        "qbot/scaffold_template/gitignore.tmpl",
        "qbot/scaffold_template/dockerignore.tmpl",
        "qbot/scaffold_template/__PKG__/bot.py.tmpl",
        "qbot/scaffold_template/tests/test_conversation.yaml.tmpl",
    ):
        assert needed in names, f"{needed} missing from {installed.wheel.name}"
    assert not any(n.startswith(("tests/", "bots/", "bench/")) for n in names)


def test_installed_wheel_runs_qbot_help(installed: Installed, tmp_path: Path) -> None:
    out = _run([str(installed.bin / "qbot"), "--help"], tmp_path, installed.env())
    assert {"run", "dev", "shell", "new"} <= set(re.findall(r"^  (\w[\w-]*)", out, re.M))
    where = _run(
        [str(installed.bin / "python"), "-c", "import qbot; print(qbot.__file__)"],
        tmp_path,
        installed.env(),
    )
    assert where.startswith(str(installed.venv)), where


@pytest.fixture
def project(installed: Installed, tmp_path: Path) -> Path:
    _run([str(installed.bin / "qbot"), "new", "shop"], tmp_path, installed.env())
    return tmp_path / "shop"


def test_new_project_depends_on_the_wheel_qbot_came_from(
    installed: Installed, project: Path
) -> None:
    pyproject = (project / "pyproject.toml").read_text()
    assert f'dependencies = ["qbot @ {installed.wheel.as_uri()}"]' in pyproject


@pytest.fixture
def page_url(installed: Installed, project: Path) -> Iterator[str]:
    """`qbot dev shop.bot:bot` from the installed wheel, on a free port."""
    with subprocess.Popen(
        [str(installed.bin / "qbot"), "dev", "shop.bot:bot", "--port", "0", "--db", "e.sqlite3"],
        cwd=project,
        env=installed.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        bufsize=0,  # read straight from the pipe: select() cannot see a buffered line
    ) as proc:
        assert proc.stderr is not None
        deadline, seen = time.monotonic() + 60, ""
        try:
            while (found := re.search(r"chat with \S+ at (http://\S+)", seen)) is None:
                assert proc.poll() is None, f"qbot dev exited: {seen}"
                assert time.monotonic() < deadline, f"qbot dev never said where it listens: {seen}"
                ready, _, _ = select.select([proc.stderr], [], [], 1.0)
                if ready:
                    seen += os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
            yield found.group(1).rstrip("/")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


def test_installed_wheel_serves_the_chat_page_with_its_static_files(page_url: str) -> None:
    index = _get(page_url + "/")
    assets = re.findall(r'(?:src|href)="(/emulator/static/[^"]+)"', index)
    assert {"/emulator/static/style.css", "/emulator/static/app.js"} <= set(assets)
    for asset in assets:
        assert _get(page_url + asset), f"{asset} is empty"


def _readme_commands(readme: str) -> list[str]:
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None, "the project README has no sh block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_new_project_readme_commands_pass_offline(installed: Installed, project: Path) -> None:
    commands = _readme_commands((project / "README.md").read_text())
    env = installed.env()
    ran = []
    for command in commands:
        if " dev " in command:
            continue  # a server that runs until Ctrl+C: the page test above serves it
        # `qbot shell` reads the terminal: it gets one line, then end of input.
        ran.append(_run(["sh", "-c", command], project, env, stdin="hi\n"))
    assert len(ran) == len(commands) - 1, commands
    assert "Hello User! I'm shop." in ran[1]  # qbot shell
    assert "5 passed" in ran[2], ran[2]  # the project's tests
    installed_qbot = _run(
        [".venv/bin/python", "-c", "import qbot; print(qbot.__file__)"], project, env
    )
    assert installed_qbot.startswith(str(project / ".venv")), installed_qbot
