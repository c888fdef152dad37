"""Settings: a YAML file, then the environment (``QBOT_`` prefix, ``__`` nesting) on top.

```python
settings = load_settings("config.yaml")          # QBOT_QISCUS__SECRET_KEY=... overrides the file
settings.qiscus.secret_key.get_secret_value()
```
"""

from __future__ import annotations

import difflib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from qbot.errors import ConfigError
from qbot.office_hours import OfficeHoursSettings
from qbot.omnichannel.client import DEFAULT_BASE_URL as DEFAULT_OMNICHANNEL_URL

__all__ = [
    "PLACEHOLDER_SECRETS",
    "BotSettings",
    "FallbackTemplateSettings",
    "LogSettings",
    "MetricsSettings",
    "OfficeHoursSettings",
    "OmnichannelSettings",
    "PostbackSettings",
    "QiscusSettings",
    "ServerSettings",
    "Settings",
    "StateSettings",
    "StorageSettings",
    "WebhookSettings",
    "WhatsAppSettings",
    "load_settings",
]


ENV_PREFIX = "QBOT_"
ENV_DELIMITER = "__"

PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "my-secret-key", "your-secret-key", "xxx"}
)
"""Secret values that stand for "fill me in" (compared stripped, case-insensitively): the
scaffold's and ``config.example.yaml``'s examples among them. ``qbot check-config`` refuses them
and ``qbot run`` warns about them."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QiscusSettings(_Section):
    """How qbot reaches the Qiscus server API."""

    app_id: str = Field(min_length=1)
    secret_key: SecretStr
    base_url: str = ""
    api_version: Literal["2", "2.1"] = "2"
    timeout: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    max_retry_time: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _default_base_url(self) -> QiscusSettings:
        if not self.base_url:
            self.base_url = (
                "https://api.qiscus.com"
                if self.api_version == "2.1"
                else f"https://{self.app_id}.qiscus.com"
            )
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self


class BotSettings(_Section):
    """Who the bot is in Qiscus: its replies are posted as this user."""

    email: str = Field(min_length=1)
    name: str = "qbot"
    avatar_url: str | None = None


class ServerSettings(_Section):
    """The webhook server."""

    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=0, le=65535)
    webhook_path: str = "/webhook"
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    shutdown_timeout: float = Field(default=30.0, ge=0)
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a connection has to send its request headers, and again its body (slow clients
    are closed; a slow body is answered 408)."""
    keepalive_timeout: float = Field(default=75.0, ge=0)
    """Seconds an idle kept-alive connection stays open (0: close after each response)."""
    max_connections: int | None = Field(default=None, ge=1)
    """Open connections at most; ``None``: three quarters of the open-file limit."""
    workers: int | Literal["auto"] = 1
    """Processes of ``qbot run`` serving the port (``auto``: one per core); see docs/scaling.md."""

    @model_validator(mode="after")
    def _path_is_absolute(self) -> ServerSettings:
        if not self.webhook_path.startswith("/"):
            raise ValueError(f"webhook_path must start with '/', got {self.webhook_path!r}")
        return self

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_or_count(cls, value: object) -> int | str:
        # One message for every wrong value (the union's own errors name both of its halves).
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WORKERS:
            return value
        raise ValueError(f"must be 'auto' or a whole number from 1 to {MAX_WORKERS}, got {value!r}")

    def worker_count(self) -> int:
        """How many processes ``workers`` means on this machine."""
        return min(cores(), MAX_WORKERS) if self.workers == "auto" else self.workers


MAX_WORKERS = 256
"""The most ``server.workers`` / ``qbot run --workers`` accepts (a typo guard, not a limit of the
design)."""


def cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class WebhookSettings(_Section):
    """What the server accepts."""

    signature_token: SecretStr | None = None
    dedupe_ttl: float = Field(default=600.0, ge=600.0)


class PostbackSettings(_Section):
    """Postback signing: with a secret, forged or unsigned postbacks are rejected, and so are
    taps from another room or user and buttons older than ``max_age`` seconds."""

    secret: SecretStr | None = None
    max_age: float = Field(default=30 * 24 * 3600.0, gt=0)
    legacy_until: datetime | None = datetime(2027, 1, 1, tzinfo=UTC)
    """Until when buttons signed before conversation binding are accepted (``null``: never)."""

    @field_validator("legacy_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


DEFAULT_ROOM_LINGER = 5.0
"""Seconds a room's worker keeps an emptied room when ``storage.room_linger`` is unset."""

DEFAULT_SERVED_STORAGE = "sqlite:///.qbot/qbot.db"
"""The storage of ``qbot run`` and ``qbot dev`` when ``storage.url`` is not set."""


class StorageSettings(_Section):
    """Where conversation state, dedupe records, the inbox and the outbox live.

    ``url`` unset (``None``): a served bot (``qbot run``, ``qbot dev``) uses
    :data:`DEFAULT_SERVED_STORAGE`, SQLite in ``.qbot/qbot.db`` (the folder is created); a bot
    driven in-process (``Bot.feed_update``, ``qbot.testing``, ``qbot shell``) uses ``memory://``,
    so tests never share a file.
    """

    url: str | None = None
    lease_ttl: float = Field(default=30.0, ge=1.0)
    """Seconds a room stays with a worker that stopped renewing its lease (a dead replica)."""
    room_linger: float | None = Field(default=None, ge=0.0)
    """Seconds a room's worker keeps the room (and its lease) after its last message, so that
    the conversation's next message needs no lease change; under half ``lease_ttl``. Unset:
    5 s, or a third of ``lease_ttl`` when that is shorter (see :meth:`linger`)."""

    @model_validator(mode="after")
    def _linger_under_lease(self) -> StorageSettings:
        if self.room_linger is not None and self.room_linger >= self.lease_ttl / 2:
            raise ValueError(
                f"room_linger ({self.room_linger:g} s) must be under half of lease_ttl "
                f"({self.lease_ttl:g} s): a lingering room's lease is not renewed"
            )
        return self

    def linger(self) -> float:
        """The room linger in effect: ``room_linger``, else 5 s capped at a third of the lease."""
        if self.room_linger is not None:
            return self.room_linger
        return min(DEFAULT_ROOM_LINGER, self.lease_ttl / 3)

    def served_url(self) -> str:
        """The URL a served bot (``qbot run``, ``qbot dev``) opens."""
        return self.url or DEFAULT_SERVED_STORAGE


class StateSettings(_Section):
    """Conversation state and human handoff.

    Attributes:
        ttl: seconds a conversation's state lives after its last change (``null``: forever).
        handoff_ttl: seconds a handoff lasts unless ``ctx.handoff(ttl=...)`` says otherwise
            (``null``: until resumed).
        agents: emails of human agents; their ``resume_command`` ends a handoff in the room.
        resume_command: the text an agent sends to give the room back to the bot.
    """

    ttl: float | None = Field(default=7 * 24 * 3600.0, gt=0)
    handoff_ttl: float | None = Field(default=24 * 3600.0, gt=0)
    agents: list[str] = Field(default_factory=list)
    resume_command: str = Field(default="/bot resume", min_length=1)


class LogSettings(_Section):
    """Logging: ``format`` auto is JSON when stderr is not a terminal."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class IntentSettings(_Section):
    """Named intents: the YAML file and the confidence needed to match."""

    file: str | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)  # None: the file's, else 0.5


class TemplateSettings(_Section):
    """Reply templates (jinja2)."""

    directory: str = "templates"


class MetricsSettings(_Section):
    """``GET /metrics`` in the Prometheus text format (see ``qbot.metrics``).

    Attributes:
        enabled: serve it (off by default: the numbers say how busy the bot is).
        path: where, on the webhook server's port.
        token: when set, a scrape needs ``Authorization: Bearer <token>``.
    """

    enabled: bool = False
    path: str = "/metrics"
    token: SecretStr | None = None

    @model_validator(mode="after")
    def _path_is_absolute(self) -> MetricsSettings:
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")
        return self


class FallbackTemplateSettings(_Section):
    """The template sent instead of a free-form message once WhatsApp's window is closed."""

    name: str = Field(min_length=1)
    language: str = "id"
    variables: list[str] = Field(default_factory=list)


class WhatsAppSettings(_Section):
    """WhatsApp's rules (see docs/whatsapp.md).

    Attributes:
        window_hours: how long after the customer's last message free-form messages may go
            out (WhatsApp's customer-service window: 24).
        enforce_window: refuse free-form messages outside the window (``OutsideWindowError``,
            or ``fallback_template``); ``false`` leaves it to WhatsApp to refuse them.
        fallback_template: sent (once per closed window) instead of a free-form message
            outside the window; unset, such a message raises ``OutsideWindowError``.
        channel_id: the WhatsApp channel proactive templates to a new number go from; unset,
            the app's only WhatsApp channel.
        namespace: the template namespace, when Omnichannel's template list gives none.
    """

    window_hours: float = Field(default=24.0, gt=0)
    enforce_window: bool = True
    fallback_template: FallbackTemplateSettings | None = None
    channel_id: int | str | None = None
    namespace: str | None = None


class OmnichannelSettings(_Section):
    """Qiscus Omnichannel: WhatsApp, Instagram, Messenger, Line, Telegram and the web widget.

    Attributes:
        mode: ``auto`` treats a room as Omnichannel when its webhook says so (top-level
            ``app_code`` or ``channel``, or a ``source``/``channel`` in ``room.options``);
            ``always`` and ``never`` force it.
        base_url: the Omnichannel API.
        app_code: the Omnichannel app code; empty means ``qiscus.app_id`` (the same string).
        webhook_token: when set, Omnichannel's lifecycle webhooks must carry ``?token=...``.
        text_menus: channel sources (``wa``, ``ig``...) whose buttons are sent as numbered text.
        whatsapp: WhatsApp's 24-hour window and templates.
    """

    mode: Literal["auto", "always", "never"] = "auto"
    base_url: str = DEFAULT_OMNICHANNEL_URL
    app_code: str = ""
    webhook_token: SecretStr | None = None
    text_menus: list[str] = Field(default_factory=list)
    whatsapp: WhatsAppSettings = Field(default_factory=WhatsAppSettings)

    @model_validator(mode="after")
    def _normalise(self) -> OmnichannelSettings:
        self.base_url = (self.base_url or DEFAULT_OMNICHANNEL_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        self.text_menus = [s.strip().casefold() for s in self.text_menus if s.strip()]
        return self


class Settings(BaseSettings):
    """Every setting qbot reads. See ``config.example.yaml`` for each key."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        case_sensitive=False,
    )

    qiscus: QiscusSettings
    bot: BotSettings
    server: ServerSettings = ServerSettings()
    webhook: WebhookSettings = WebhookSettings()
    postback: PostbackSettings = PostbackSettings()
    storage: StorageSettings = StorageSettings()
    state: StateSettings = StateSettings()
    log: LogSettings = LogSettings()
    intents: IntentSettings = IntentSettings()
    templates: TemplateSettings = TemplateSettings()
    omnichannel: OmnichannelSettings = Field(default_factory=OmnichannelSettings)
    metrics: MetricsSettings = MetricsSettings()
    office_hours: OfficeHoursSettings = Field(default_factory=OfficeHoursSettings.off)

    @model_validator(mode="after")
    def _omnichannel_app_code(self) -> Settings:
        # Omnichannel's app code is the Chat SDK app id unless the user says otherwise.
        if not self.omnichannel.app_code:
            self.omnichannel.app_code = self.qiscus.app_id
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (passed as init values): twelve-factor deployments
        # keep secrets out of the YAML.
        return env_settings, init_settings

    def placeholder_secrets(self) -> list[str]:
        """The keys whose secret is a placeholder (see :data:`PLACEHOLDER_SECRETS`).

        Every ``SecretStr`` setting that is set counts (``qiscus.secret_key``,
        ``webhook.signature_token``, ``postback.secret``, and any section's secret added later).
        """
        found = []
        for section in type(self).model_fields:
            values = getattr(self, section)
            for key in type(values).model_fields:
                value = getattr(values, key)
                if isinstance(value, SecretStr) and _is_placeholder(value):
                    found.append(f"{section}.{key}")
        return found


def _is_placeholder(secret: SecretStr) -> bool:
    return secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what PyYAML found wrong, on one line: ``" at line 2, column 2: expected ..."``."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return ": " + " ".join(str(error).split())
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = error.problem or error.context or "malformed"
    return f"{where}: {' '.join(what.split())}"


def read_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read a YAML mapping, raising ConfigError that names the file (as ``what``: "config file",
    "intents file") on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {str(p)!r} is a directory, not a file") from None
    except OSError as e:
        raise ConfigError(f"cannot read {what} {str(p)!r}: {e.strerror}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {str(p)!r} is not valid YAML{_yaml_problem(e)}") from None
    except (ValueError, TypeError) as e:  # e.g. a date like 2026-13-45: yaml's own error
        raise ConfigError(f"{what} {str(p)!r} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {str(p)!r} must hold a mapping, not {type(data).__name__}")
    return data


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (optional) and the environment.

    Args:
        path: a YAML file; ``None`` reads the environment only.
        **overrides: top-level sections merged over the file (used by ``qbot dev`` and tests).

    Raises:
        ConfigError: the file is missing or malformed, or a value is invalid; the message names
            every offending key.
    """
    data = read_yaml(path) if path is not None else {}
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    problems = _unknown_env_sections()
    try:
        settings = Settings(**data)
    except ValidationError as e:
        problems.extend(_describe(e, path))
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return settings


def _env_name(loc: tuple[str, ...]) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(loc).upper()


def _from_env(loc: tuple[str, ...]) -> bool:
    name = _env_name(loc)
    return any(key.upper() == name for key in os.environ)


def _unknown_env_sections() -> list[str]:
    """``QBOT_SECTION__KEY`` variables whose section does not exist (pydantic ignores them)."""
    problems = []
    for key in sorted(os.environ):
        head, _, rest = key.upper().partition(ENV_DELIMITER)
        if not head.startswith(ENV_PREFIX) or not rest:
            continue
        section = head[len(ENV_PREFIX) :].lower()
        if section in Settings.model_fields:
            continue
        problem = f"{key} sets {section!r}, which is not a known section"
        close = _close_match(section, Settings.model_fields)
        if close is not None:
            meant = _env_name((close, *rest.lower().split(ENV_DELIMITER)))
            problem += f" (did you mean {meant}?)"
        problems.append(problem)
    return problems


def _close_match(name: str, known: Any) -> str | None:
    matches = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _fields_at(loc: tuple[str, ...]) -> dict[str, Any]:
    """The settings a key at ``loc + (name,)`` could have meant (empty past a non-section)."""
    model: Any = Settings
    for part in loc:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return {}
    return dict(model.model_fields)


def _unknown_key(loc: tuple[str, ...]) -> str:
    """``section.key is not a known setting``, naming its variable and the likely intent."""
    env = _from_env(loc)
    problem = f"{_env_name(loc) + ': ' if env else ''}{'.'.join(loc)} is not a known setting"
    close = _close_match(loc[-1], _fields_at(loc[:-1]))
    if close is not None:
        meant = (*loc[:-1], close)
        problem += f" (did you mean {_env_name(meant) if env else '.'.join(meant)}?)"
    return problem


def _describe(error: ValidationError, path: str | Path | None) -> list[str]:
    where = f"in {str(path)!r}" if path is not None else "in the config file (--config)"
    problems = []
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"])
        if item["type"] == "missing":
            for key in _required_keys(loc):
                env = _env_name(tuple(key.split(".")))
                problems.append(f"{key} is required (set it {where} or as {env})")
        elif item["type"] == "extra_forbidden":
            problems.append(_unknown_key(loc))
        else:
            problems.append(f"{'.'.join(loc) or '(root)'}: {item['msg']}")
    return problems


def _required_keys(loc: tuple[str, ...]) -> list[str]:
    """A missing section stands for its required keys: name those, which is what a user sets."""
    field = Settings.model_fields.get(loc[0]) if len(loc) == 1 else None
    section = field.annotation if field is not None else None
    if isinstance(section, type) and issubclass(section, BaseModel):
        return [f"{loc[0]}.{name}" for name, f in section.model_fields.items() if f.is_required()]
    return [".".join(loc)]
