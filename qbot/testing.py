"""qbot's pytest plugin: talk to your bot in tests, and run YAML transcripts as tests.

Installed with qbot (entry point ``pytest11``). Point it at your bot once:

```toml
[tool.pytest.ini_options]
qbot_target = "mybot.bot:bot"     # MODULE:ATTR, like `qbot run`
```

then:

```python
async def test_menu(qbot_chat):
    replies = await qbot_chat.say("menu")
    replies.assert_buttons("Track my order", "Today's deals")
    (await qbot_chat.tap("Today's deals")).assert_cards("Batik shirt", "Rice cooker")
```

A bot runs against an in-process Qiscus emulator (real HTTP on 127.0.0.1, port 0): every reply
goes through the real client and REST API, and every message through the webhook server's path
(``bot.feed_update``: dedupe, one room at a time in order, the outbox, ``ctx.log`` bound).

Files named ``test_*.yaml`` holding ``turns`` or ``transcripts`` (and every YAML file under the
``qbot_transcripts`` directories) are collected as transcript tests; see ``docs/testing.md``
for the format.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from qbot.emulator.harness import BotReply, Chat, Harness, Replies, find_postback
from qbot.errors import ConfigError

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.config import Settings

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is in qbot's dev extras
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "BotReply",
    "Chat",
    "Harness",
    "Replies",
    "TranscriptFailure",
    "check_reply",
    "find_postback",
    "load_transcripts",
    "run_transcript",
]

_REPLY_KEYS = frozenset(
    {"type", "text", "text_contains", "text_matches", "buttons", "cards", "payload", "template"}
)
_ACTIONS = ("say", "tap", "event", "agent", "resolve", "advance")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: Any) -> float | None:
    """Seconds of an ``advance:`` turn (``25h``, ``90m``, ``2d``, ``30s`` or a number of
    seconds), ``None`` when it is not one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if value >= 0 else None
    match = _DURATION.match(str(value))
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None


_TURN_KEYS = frozenset({*_ACTIONS, "objects", "expect", "handoff"})


# ---- options and fixtures ----------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "qbot_chat(**options): options of the qbot_chat fixture's chat "
        "(omnichannel=True, channel='wa', email=..., name=...)",
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qbot", "qbot bot testing")
    group.addoption("--qbot-target", default=None, help="the bot under test, as MODULE:ATTR")
    parser.addini("qbot_target", "the bot under test, as MODULE:ATTR (e.g. mybot.bot:bot)")
    parser.addini("qbot_config", "a qbot config YAML the bot under test is configured with")
    parser.addini(
        "qbot_transcripts",
        "directories whose YAML files are all transcript tests",
        type="paths",
        default=[],
    )


def _load_bot(target: str) -> Bot:
    from qbot._cli_common import load_bot

    bot: Bot = load_bot(target)
    return bot


def _configured_target(config: pytest.Config) -> str | None:
    value = config.getoption("--qbot-target") or config.getini("qbot_target")
    return str(value) if value else None


def _settings(config: pytest.Config, path: str | None = None) -> Settings | None:
    from qbot.config import load_settings

    path = path or str(config.getini("qbot_config") or "") or None
    if path is None:
        return None
    return load_settings(Path(config.rootpath, path))


@pytest.fixture
def qbot_bot(pytestconfig: pytest.Config) -> Bot:
    """The bot under test, from ``qbot_target``; override this fixture to build one in code."""
    target = _configured_target(pytestconfig)
    if target is None:
        raise pytest.UsageError(
            "qbot.testing does not know which bot to test: set qbot_target = 'MODULE:ATTR' in "
            "[tool.pytest.ini_options], pass --qbot-target, or override the qbot_bot fixture"
        )
    return _load_bot(target)


@pytest.fixture
def qbot_settings(pytestconfig: pytest.Config) -> Settings | None:
    """Settings for the bot under test (``qbot_config``), or ``None`` for emulator defaults."""
    return _settings(pytestconfig)


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def qbot_harness(qbot_bot: Bot, qbot_settings: Settings | None) -> AsyncIterator[Harness]:
        """The bot wired to a fresh in-process emulator; ``await qbot_harness.chat(...)``."""
        async with Harness(qbot_bot, qbot_settings) as harness:
            yield harness

    @pytest_asyncio.fixture
    async def qbot_chat(qbot_harness: Harness, request: pytest.FixtureRequest) -> Chat:
        """A user (``user@example.com``, "User") in a one-to-one room with the bot.

        ``@pytest.mark.qbot_chat(omnichannel=True, channel="wa")`` makes it a customer writing
        through Omnichannel (``await qbot_chat.resolve()``, ``agent_says``...).
        """
        marker = request.node.get_closest_marker("qbot_chat")
        return await qbot_harness.chat(**(marker.kwargs if marker is not None else {}))

    @pytest_asyncio.fixture
    async def qbot_chat_factory(
        qbot_harness: Harness,
    ) -> Callable[..., Awaitable[Chat]]:
        """``await qbot_chat_factory(email, name, group=None)``: more users, group rooms."""
        return qbot_harness.chat


# ---- transcripts -------------------------------------------------------------------------------


class TranscriptFailure(AssertionError):
    """A transcript turn got replies other than the ones it expects."""


def _fail_file(path: Path, message: str) -> ConfigError:
    return ConfigError(f"transcript file {str(path)!r}: {message}")


def load_transcripts(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Read a transcript file: ``(file options, transcripts)``, or ``None`` if it is not one.

    Raises:
        ConfigError: the file is a transcript file but malformed; the message names the entry.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise _fail_file(path, f"not valid YAML: {e}") from e
    if not isinstance(data, dict) or not ({"turns", "transcripts"} & data.keys()):
        return None
    if "turns" in data:
        items = [{"name": data.get("name") or path.stem, "turns": data["turns"]}]
    else:
        items = data["transcripts"]
        if not isinstance(items, list):
            raise _fail_file(path, "'transcripts' must be a list of {name, turns}")
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("turns"), list):
            raise _fail_file(path, f"transcript #{i} needs a 'turns' list")
        item.setdefault("name", f"transcript {i}")
        for n, turn in enumerate(item["turns"], 1):
            _check_turn(path, str(item["name"]), n, turn)
    options = {
        k: v for k, v in data.items() if k not in ("turns", "transcripts", "name", "channel")
    }
    if data.get("channel") is not None:
        options["channel"] = data["channel"]
    return options, items


def _check_turn(path: Path, name: str, n: int, turn: Any) -> None:
    where = f"{name!r} turn {n}"
    if not isinstance(turn, dict):
        raise _fail_file(path, f"{where} must be a mapping like {{say: hi, expect: [...]}}")
    unknown = set(turn) - _TURN_KEYS
    if unknown:
        raise _fail_file(path, f"{where} has unknown keys {sorted(unknown)}")
    actions = [k for k in _ACTIONS if k in turn]
    if len(actions) != 1:
        raise _fail_file(path, f"{where} needs exactly one of {', '.join(_ACTIONS)}")
    if "advance" in turn and duration(turn["advance"]) is None:
        raise _fail_file(path, f"{where}: advance is a duration like 25h, 90m, 2d or 30s")
    handoff = turn.get("handoff")
    if handoff is not None and not isinstance(handoff, bool | dict):
        raise _fail_file(path, f"{where}: handoff is true, false or {{agent: NAME}}")
    expect = turn.get("expect")
    if expect is None:
        return
    if not isinstance(expect, list):
        raise _fail_file(path, f"{where}: expect must be a list of replies ([] for none)")
    for spec in expect:
        if isinstance(spec, dict) and set(spec) - _REPLY_KEYS:
            bad = sorted(set(spec) - _REPLY_KEYS)
            raise _fail_file(path, f"{where}: unknown reply keys {bad}; use {sorted(_REPLY_KEYS)}")
        if not isinstance(spec, dict | str):
            raise _fail_file(path, f"{where}: a reply is a text or a mapping, got {spec!r}")


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


def check_reply(reply: BotReply, spec: str | dict[str, Any]) -> list[str]:
    """What in ``reply`` differs from a transcript's expected reply (empty when it matches)."""
    if isinstance(spec, str):
        spec = {"text": spec}
    problems = []
    if "type" in spec and reply.type != spec["type"]:
        problems.append(f"type is {reply.type!r}, expected {spec['type']!r}")
    if "text" in spec and reply.text != spec["text"]:
        problems.append(f"text is {reply.text!r}, expected {spec['text']!r}")
    if "text_contains" in spec and str(spec["text_contains"]) not in reply.text:
        problems.append(f"text {reply.text!r} does not contain {spec['text_contains']!r}")
    if "text_matches" in spec and not re.search(str(spec["text_matches"]), reply.text):
        problems.append(f"text {reply.text!r} does not match /{spec['text_matches']}/")
    if "buttons" in spec and reply.button_labels != list(spec["buttons"]):
        problems.append(f"buttons are {reply.button_labels!r}, expected {spec['buttons']!r}")
    if "cards" in spec:
        titles = [str(c.get("title", "")) for c in reply.cards]
        if titles != list(spec["cards"]):
            problems.append(f"cards are {titles!r}, expected {spec['cards']!r}")
    if "template" in spec:
        shown = reply.template.get("name") if reply.template is not None else None
        if shown != spec["template"]:
            problems.append(f"template is {shown!r}, expected {spec['template']!r}")
    if "payload" in spec and not _subset(spec["payload"], reply.payload):
        problems.append(f"payload {reply.payload!r} does not contain {spec['payload']!r}")
    return problems


async def run_transcript(
    bot: Bot,
    transcript: dict[str, Any],
    *,
    settings: Settings | None = None,
    user: dict[str, Any] | None = None,
    channel: str | None = None,
) -> None:
    """Play one transcript against ``bot``.

    Args:
        channel: an Omnichannel channel source (``wa``...): the user is a customer writing on
            it, and turns may be ``agent: TEXT`` and ``resolve: true`` and check ``handoff``.

    Raises:
        TranscriptFailure: a turn's replies differ; the message shows the turn, what was
            expected and every reply the bot sent.
    """
    user = user or {}
    async with Harness(bot, settings) as harness:
        chat = await harness.chat(
            str(user.get("email", "user@example.com")),
            str(user.get("name", "User")),
            omnichannel=channel is not None,
            channel=channel or "wa",
        )
        for n, turn in enumerate(transcript["turns"], 1):
            if ("agent" in turn or "resolve" in turn or "handoff" in turn) and channel is None:
                raise TranscriptFailure(
                    f"turn {n}: agent, resolve and handoff need an Omnichannel chat: "
                    "add 'channel: wa' (or another source) to the transcript or the file"
                )
            if "agent" in turn:
                action = f"agent {turn['agent']!r}"
                replies = await chat.agent_says(str(turn["agent"]), agent=_first_agent(chat))
            elif "resolve" in turn:
                action = "resolve"
                replies = await chat.resolve()
            elif "advance" in turn:  # the clock the bot and the emulator share
                action = f"advance {turn['advance']}"
                replies = await chat.advance(duration(turn["advance"]) or 0.0)
            elif "say" in turn:
                action = f"say {turn['say']!r}"
                replies = await chat.say(str(turn["say"]))
            elif "tap" in turn:
                action = f"tap {turn['tap']!r}"
                try:
                    replies = await chat.tap(str(turn["tap"]))
                except AssertionError as e:
                    raise TranscriptFailure(f"turn {n}: {action}: {e}") from None
            else:
                action = f"event {turn['event']!r}"
                replies = await chat.event(str(turn["event"]), objects=turn.get("objects"))
            await _check_handoff(chat, turn.get("handoff"), f"turn {n}: {action}")
            expect = turn.get("expect")
            if expect is None:
                continue
            problems = []
            if len(replies) != len(expect):
                problems.append(f"expected {len(expect)} replies, got {len(replies)}")
            for i, (reply, spec) in enumerate(zip(replies, expect, strict=False), 1):
                problems.extend(f"reply {i}: {p}" for p in check_reply(reply, spec))
            if problems:
                listed = "\n".join(f"  - {p}" for p in problems)
                raise TranscriptFailure(
                    f"turn {n}: {action}\n{listed}\nthe bot answered:\n{replies.describe()}"
                )


def _first_agent(chat: Chat) -> int | None:
    """Who answers as the agent: ``None`` (the assigned agent), else the desk's first agent."""
    service = chat.harness.desk.services.get(chat.room_id)
    if service is not None and service.agent_ids:
        return None
    first: int = next(iter(chat.harness.desk.agents))
    return first


async def _check_handoff(chat: Chat, expected: bool | dict[str, Any] | None, where: str) -> None:
    if expected is None:
        return
    try:
        if expected is False:
            await chat.assert_with_bot()
        else:
            agent = expected.get("agent") if isinstance(expected, dict) else None
            await chat.assert_handed_off(agent=agent)
    except AssertionError as e:
        raise TranscriptFailure(f"{where}: {e}") from None


class TranscriptItem(pytest.Item):
    """One transcript of a YAML file, run as a test."""

    def __init__(
        self, *, transcript: dict[str, Any], options: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.transcript = transcript
        self.options = options

    def runtest(self) -> None:
        target = self.options.get("bot") or _configured_target(self.config)
        if not target:
            raise ConfigError(
                f"transcript {self.name!r} names no bot: add 'bot: MODULE:ATTR' to the file or "
                "set qbot_target in the pytest configuration"
            )
        bot = _load_bot(str(target))
        settings = _settings(self.config, self.options.get("config"))
        user = self.transcript.get("user") or self.options.get("user")
        channel = self.transcript.get("channel") or self.options.get("channel")
        asyncio.run(
            run_transcript(
                bot,
                self.transcript,
                settings=settings,
                user=user,
                channel=str(channel) if channel else None,
            )
        )

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if isinstance(excinfo.value, TranscriptFailure | ConfigError):
            return f"transcript {self.name!r} ({self.path}): {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"transcript: {self.name}"


class TranscriptFile(pytest.File):
    """A YAML file of transcripts."""

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, ConfigError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def collect(self) -> Iterator[TranscriptItem]:
        loaded = load_transcripts(self.path)
        if loaded is None:
            return
        options, transcripts = loaded
        for transcript in transcripts:
            yield TranscriptItem.from_parent(
                self, name=str(transcript["name"]), transcript=transcript, options=options
            )


def _is_transcript(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return True  # collecting it reports the YAML error with the file name
    return isinstance(data, dict) and bool({"turns", "transcripts"} & data.keys())


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> TranscriptFile | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    dirs = parent.config.getini("qbot_transcripts")
    in_dir = any(file_path.is_relative_to(d) for d in dirs)
    if not (in_dir or file_path.name.startswith("test_")):
        return None
    if not in_dir and not _is_transcript(file_path):
        return None  # some other test_*.yaml: not ours
    file: TranscriptFile = TranscriptFile.from_parent(parent, path=file_path)
    return file
