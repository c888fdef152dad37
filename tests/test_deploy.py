"""The deploy files: the app starts as an unprivileged user in a read-only tree, compose is sound.

Docker itself is not run here (no registry): the container's situation is rebuilt instead, a
root-owned copy of the tree that user ``nobody`` can read but not write, with one writable data
folder, the environment the Dockerfile sets, and `qbot run` started as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# User nobody, allowed to read and search any folder (CAP_DAC_READ_SEARCH) so this run's
# interpreter and packages are reachable wherever they live; writing is still refused.
NOBODY = [
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
    "--",
]


@pytest.fixture(scope="module")
def python_for_nobody() -> str:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to start the app as user nobody")
    python = os.path.realpath(sys.executable)
    probe = [*NOBODY, python, "-c", "import os; print(os.getuid())"]
    result = subprocess.run(probe, capture_output=True, text=True, check=False)
    if result.stdout.strip() != "65534":
        pytest.skip(f"cannot run {python} as user nobody: {result.stderr.strip()}")
    return python


@pytest.fixture
def readonly_tree() -> Iterator[Path]:
    """/app and /data as in the image: the code root-owned, only data/ writable by nobody."""
    base = Path(tempfile.mkdtemp(prefix="qbot-deploy-"))
    try:
        base.chmod(0o755)  # mkdtemp makes it 0700: nobody could not even enter
        app = base / "app"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for part in ("qbot", "bots", "templates"):
            shutil.copytree(ROOT / part, app / part, ignore=ignore)
        for path in [app, *app.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        data = base / "data"
        data.mkdir()
        os.chown(data, 65534, 65534)
        yield base
    finally:
        shutil.rmtree(base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(python: str, base: Path, port: int, **env: str) -> subprocess.Popen[str]:
    # The tree's own qbot first, then this run's installed dependencies (readable by nobody).
    site = sysconfig.get_paths()["purelib"]
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(base / "data"),
        "PYTHONPATH": f"{base / 'app'}{os.pathsep}{site}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "QBOT_QISCUS__APP_ID": "deploy-test",
        "QBOT_QISCUS__SECRET_KEY": "deploy-secret",
        "QBOT_QISCUS__BASE_URL": "http://127.0.0.1:9",
        "QBOT_BOT__EMAIL": "bot@example.com",
        "QBOT_SERVER__HOST": "127.0.0.1",
        "QBOT_SERVER__PORT": str(port),
        **env,
    }
    cli = "from qbot.cli import main; main()"
    return subprocess.Popen(
        [*NOBODY, python, "-c", cli, "run", "bots.demo:bot"],
        cwd=base / "app",
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _healthz(port: int, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                answer: dict[str, Any] = yaml.safe_load(r.read())
                return answer
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "the server never answered /healthz"
            time.sleep(0.2)


def test_app_starts_as_nobody_in_a_readonly_tree_with_only_data_writable(
    python_for_nobody: str, readonly_tree: Path
) -> None:
    port = _free_port()
    db = readonly_tree / "data" / "qbot.db"
    with _start(python_for_nobody, readonly_tree, port, QBOT_STORAGE__URL=f"sqlite:///{db}") as p:
        try:
            assert _healthz(port, p)["status"] == "ok"
            # The image's HEALTHCHECK command, on the port the server was configured with.
            assert _docker_healthcheck(port) == 0
            assert _docker_healthcheck(_free_port()) != 0
        finally:
            p.terminate()
            p.communicate(timeout=30)
    assert p.returncode == 0
    assert db.is_file() and db.stat().st_uid == 65534
    assert not (readonly_tree / "app" / ".qbot").exists()


def test_unwritable_default_storage_is_reported_for_what_it_is(
    python_for_nobody: str, readonly_tree: Path
) -> None:
    port = _free_port()
    with _start(python_for_nobody, readonly_tree, port) as proc:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: cannot start: cannot create the storage folder '{readonly_tree}/app/.qbot': "
        "Permission denied; make it writable or set storage.url (QBOT_STORAGE__URL), e.g. "
        "sqlite:////data/qbot.db"
    ], err
    assert "Traceback" not in err


def test_taken_port_is_still_reported_as_a_listen_failure(
    python_for_nobody: str, readonly_tree: Path
) -> None:
    db = readonly_tree / "data" / "qbot.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        storage = f"sqlite:///{db}"
        with _start(python_for_nobody, readonly_tree, port, QBOT_STORAGE__URL=storage) as proc:
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), err
    assert last.endswith("address already in use"), err


def _docker_healthcheck(port: int) -> int:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("HEALTHCHECK")]
    command = line.split(" CMD ", 1)[1]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "QBOT_SERVER__PORT": str(port)}
    return subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, check=False
    ).returncode


def _dockerfile_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line.removeprefix("ENV ").split())
    return env


def test_dockerfile_installs_dependencies_first_and_writes_only_to_data() -> None:
    text = (ROOT / "Dockerfile").read_text()
    steps = [
        line.split()[0] + " " + line.split()[1] for line in text.splitlines() if line[:1].isupper()
    ]
    assert steps.index("COPY pyproject.toml") < steps.index("RUN python") < steps.index("COPY qbot")
    env = _dockerfile_env(text)
    assert env["QBOT_STORAGE__URL"] == "sqlite:////data/qbot.db"
    assert "VOLUME /data" in text and "USER bot" in text
    healthcheck = text[text.index("HEALTHCHECK") :]
    assert "QBOT_SERVER__PORT" in healthcheck and ":8000" not in healthcheck
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", "config.yaml"} <= set(ignored)


def test_compose_runs_redis_and_two_healthy_replicas_behind_one_port() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "bot", "proxy"}
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    bot = services["bot"]
    assert bot["deploy"]["replicas"] == 2
    assert "ports" not in bot  # only the proxy is published
    assert bot["environment"]["QBOT_STORAGE__URL"].startswith("redis://redis:6379/")
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["proxy"]["ports"] == ["8000:80"]
    (conf,) = services["proxy"]["volumes"]
    assert (ROOT / conf.split(":")[0]).is_file()
    assert "server bot:8000" in (ROOT / conf.split(":")[0]).read_text()
    assert set(compose["volumes"]) == {"redis-data"}


def test_compose_config_is_accepted_by_docker_compose() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    plugin = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if plugin.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin here")
    env = {
        **os.environ,
        "QBOT_QISCUS__APP_ID": "x",
        "QBOT_QISCUS__SECRET_KEY": "x",
        "QBOT_BOT__EMAIL": "bot@example.com",
    }
    result = subprocess.run(
        [docker, "compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
