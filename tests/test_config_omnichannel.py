"""The ``omnichannel:`` settings: defaults, the app code fallback, validation, the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qbot.config import load_settings
from qbot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = "qiscus:\n  app_id: kovof-123\n  secret_key: s3cret\nbot:\n  email: bot@shop.id\n"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_omnichannel_defaults_use_the_app_id_as_app_code(tmp_path: Path) -> None:
    omni = load_settings(write(tmp_path, MINIMAL)).omnichannel

    assert omni.mode == "auto"
    assert omni.base_url == "https://multichannel.qiscus.com"
    assert omni.app_code == "kovof-123"
    assert omni.webhook_token is None
    assert omni.text_menus == []


def test_omnichannel_section_is_read_and_normalised(tmp_path: Path) -> None:
    text = MINIMAL + (
        "omnichannel:\n  mode: always\n  base_url: https://omnichannel.qiscus.com/\n"
        "  app_code: other-app\n  webhook_token: t0ken\n  text_menus: [WA, ' ig ', '']\n"
    )

    settings = load_settings(write(tmp_path, text))
    omni = settings.omnichannel

    assert omni.mode == "always"
    assert omni.base_url == "https://omnichannel.qiscus.com"
    assert omni.app_code == "other-app"
    assert omni.webhook_token is not None
    assert omni.webhook_token.get_secret_value() == "t0ken"
    assert "t0ken" not in repr(settings)
    assert omni.text_menus == ["wa", "ig"]


def test_each_settings_object_gets_its_own_app_code(tmp_path: Path) -> None:
    first = load_settings(write(tmp_path, MINIMAL))
    second = load_settings(write(tmp_path, MINIMAL.replace("kovof-123", "other")))

    assert (first.omnichannel.app_code, second.omnichannel.app_code) == ("kovof-123", "other")


def test_omnichannel_keys_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBOT_OMNICHANNEL__MODE", "never")
    monkeypatch.setenv("QBOT_OMNICHANNEL__WEBHOOK_TOKEN", "from-env")

    omni = load_settings(write(tmp_path, MINIMAL)).omnichannel

    assert omni.mode == "never"
    assert omni.webhook_token is not None
    assert omni.webhook_token.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ("  mode: sometimes\n", "omnichannel.mode"),
        ("  base_url: multichannel.qiscus.com\n", "base_url must start with http"),
        ("  colour: blue\n", "omnichannel.colour is not a known setting"),
    ],
)
def test_bad_omnichannel_settings_name_the_key(tmp_path: Path, section: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(write(tmp_path, MINIMAL + "omnichannel:\n" + section))


def test_the_example_config_documents_the_omnichannel_section() -> None:
    omni = load_settings(ROOT / "config.example.yaml").omnichannel

    assert omni.app_code == "my-app-id"
    assert omni.text_menus == []
