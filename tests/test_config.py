"""Settings: YAML + environment, defaults, errors that name the key, the example file."""

from __future__ import annotations

from pathlib import Path

import pytest

from qbot.config import PLACEHOLDER_SECRETS, Settings, load_settings
from qbot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = "qiscus:\n  app_id: shop\n  secret_key: s3cret\nbot:\n  email: bot@shop.id\n"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_config_example_file_loads_and_documents_every_key() -> None:
    settings = load_settings(ROOT / "config.example.yaml")
    assert settings.qiscus.app_id == "my-app-id"
    example = (ROOT / "config.example.yaml").read_text()
    for section, model in Settings.model_fields.items():
        assert f"\n{section}:" in example, section
        assert model.annotation is not None
        for key in model.annotation.model_fields:  # type: ignore[union-attr]
            assert f"  {key}:" in example, f"{section}.{key} is not in config.example.yaml"


def test_config_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.qiscus.base_url == "https://shop.qiscus.com"
    assert settings.server.webhook_path == "/webhook"
    assert settings.server.port == 8000
    assert settings.webhook.signature_token is None
    assert settings.webhook.dedupe_ttl >= 600


def test_config_v21_base_url(tmp_path: Path) -> None:
    text = MINIMAL.replace("secret_key: s3cret\n", "secret_key: s3cret\n  api_version: '2.1'\n")
    settings = load_settings(write(tmp_path, text))
    assert settings.qiscus.base_url == "https://api.qiscus.com"


def test_config_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBOT_QISCUS__SECRET_KEY", "from-env")
    monkeypatch.setenv("QBOT_SERVER__PORT", "9001")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.qiscus.secret_key.get_secret_value() == "from-env"
    assert settings.qiscus.app_id == "shop"
    assert settings.server.port == 9001


def test_config_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBOT_QISCUS__APP_ID", "envapp")
    monkeypatch.setenv("QBOT_QISCUS__SECRET_KEY", "k")
    monkeypatch.setenv("QBOT_BOT__EMAIL", "b@x.id")
    assert load_settings(None).qiscus.base_url == "https://envapp.qiscus.com"


def test_config_secrets_are_never_shown(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL + "webhook:\n  signature_token: tok123\n"))
    shown = repr(settings) + str(settings.model_dump())
    assert "s3cret" not in shown
    assert "tok123" not in shown


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("bot:\n  email: b@x\n", "qiscus.app_id is required (set it in"),
        (MINIMAL + "server:\n  port: nope\n", "server.port"),
        (MINIMAL + "server:\n  webhook_path: hook\n", "must start with '/'"),
        (MINIMAL + "serer:\n  port: 1\n", "serer is not a known setting"),
        (MINIMAL + "qiscus:\n  base_url: ftp://x\n", "qiscus"),
        ("- a\n- b\n", "must hold a mapping"),
        ("qiscus: [\n", "not valid YAML"),
        (MINIMAL + "office_hours:\n  holidays: [2026-13-45]\n", "not valid YAML.*month"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        load_settings(write(tmp_path, text))


def test_config_missing_key_names_the_env_var(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="QBOT_QISCUS__SECRET_KEY"):
        load_settings(write(tmp_path, "qiscus:\n  app_id: a\nbot:\n  email: b@x\n"))


def test_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_config_room_linger_defaults_under_the_lease_and_refuses_a_long_one(
    tmp_path: Path,
) -> None:
    assert load_settings(write(tmp_path, MINIMAL)).storage.linger() == 5.0
    short = load_settings(write(tmp_path, MINIMAL + "storage:\n  lease_ttl: 3\n"))
    assert short.storage.linger() == 1.0  # a third of the lease
    kept = load_settings(write(tmp_path, MINIMAL + "storage:\n  room_linger: 0\n"))
    assert kept.storage.linger() == 0.0
    with pytest.raises(ConfigError, match=r"room_linger \(20 s\) must be under half of lease_ttl"):
        load_settings(write(tmp_path, MINIMAL + "storage:\n  room_linger: 20\n"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            MINIMAL + "server:\n  prot: 9000\n",
            "server.prot is not a known setting (did you mean server.port?)",
        ),
        (MINIMAL + "sever:\n  port: 1\n", "sever is not a known setting (did you mean server?)"),
        (
            "qiscus:\n  app_id: shop\n  secret_key: s3cret\n  appid: x\nbot:\n  email: b@x\n",
            "qiscus.appid is not a known setting (did you mean qiscus.app_id?)",
        ),
        (MINIMAL + "zzz: 1\n", "zzz is not a known setting"),
    ],
)
def test_config_unknown_key_suggests_the_likely_one(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert str(info.value) == f"invalid configuration: {problem}"


def test_config_unknown_env_key_names_the_variable_and_suggests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBOT_QISCUS__APPID", "x")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, MINIMAL))
    assert str(info.value) == (
        "invalid configuration: QBOT_QISCUS__APPID: qiscus.appid is not a known setting "
        "(did you mean QBOT_QISCUS__APP_ID?)"
    )


def test_config_unknown_env_section_is_caught_with_a_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBOT_SEVER__PORT", "9000")
    monkeypatch.setenv("QBOT_NOTHING_LIKE_IT__X", "1")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, MINIMAL))
    assert str(info.value) == (
        "invalid configuration: QBOT_NOTHING_LIKE_IT__X sets 'nothing_like_it', which is not a "
        "known section; QBOT_SEVER__PORT sets 'sever', which is not a known section "
        "(did you mean QBOT_SERVER__PORT?)"
    )


def test_config_env_problems_come_with_the_file_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBOT_SEVER__PORT", "9000")
    with pytest.raises(ConfigError, match=r"QBOT_SEVER__PORT.*qiscus\.app_id is required"):
        load_settings(write(tmp_path, "bot:\n  email: b@x\n"))


@pytest.mark.parametrize("secret", ["change-me", "", "  Secret ", "my-secret-key", "CHANGEME"])
def test_config_placeholder_secrets_are_named(tmp_path: Path, secret: str) -> None:
    text = f"qiscus:\n  app_id: shop\n  secret_key: '{secret}'\nbot:\n  email: b@x\n"
    text += "webhook:\n  signature_token: change-me\npostback:\n  secret: a-real-long-one\n"
    settings = load_settings(write(tmp_path, text))
    assert settings.placeholder_secrets() == ["qiscus.secret_key", "webhook.signature_token"]


def test_config_real_secrets_and_unset_optional_ones_are_not_placeholders(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, MINIMAL)).placeholder_secrets() == []


def test_config_shipped_examples_count_as_placeholders() -> None:
    # The example config and the scaffold's config must never pass as real secrets.
    assert load_settings(ROOT / "config.example.yaml").placeholder_secrets() == [
        "qiscus.secret_key"
    ]
    scaffold = (ROOT / "qbot/scaffold_template/config.yaml.tmpl").read_text()
    secret = scaffold.split("secret_key:", 1)[1].split()[0]
    assert secret.lower() in PLACEHOLDER_SECRETS
