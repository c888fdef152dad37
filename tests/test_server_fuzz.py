"""Property-based fuzzing of the webhook server: thousands of generated and mutated bodies.

The real server (and a fake Qiscus) run in a thread of their own on port 0; hypothesis posts to
it over plain HTTP/1.1. Whatever the body: no 5xx, no dropped connection, a JSON answer, no
reply posted for a refused body, and the server still answers a normal webhook afterwards.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from edge import echo_bot, edge_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webhooks import sdk_body

from qbot.config import ServerSettings
from qbot.emulator import Emulator, serve_emulator
from qbot.server import create_app, start_server
from tests.emulated import FAKE, fake_store

_rooms = itertools.count(700_000)


@dataclass
class Served:
    port: int
    fake: Emulator
    refused_rooms: set[str] = field(default_factory=set)
    answers: dict[int, int] = field(default_factory=dict)

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            try:
                conn.request("POST", "/webhook", body=body, headers=headers or {})
            except (BrokenPipeError, ConnectionResetError):
                # The server may answer before it has read the whole body and close: 413 over
                # the size limit, or the HTTP parser's 400 for a header value no HTTP allows
                # (a control character in the signature). The rest of a big body then finds the
                # socket closed; the answer is there. Within the limit and with clean headers,
                # a closed socket is a dropped connection: the failure this suite looks for.
                values = "".join((headers or {}).values())
                clean = not any((c < " " and c != "\t") or c == "\x7f" for c in values)
                if len(body) <= ServerSettings().max_body_bytes and clean:
                    raise
            resp = conn.getresponse()  # a dropped connection raises here
            text = resp.read()
        finally:
            conn.close()
        self.answers[resp.status] = self.answers.get(resp.status, 0) + 1
        return resp.status, json.loads(text)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    ready: list[Served] = []
    started = threading.Event()
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        async with serve_emulator(FAKE, fake_store()) as fake:
            settings = edge_settings(fake)
            app = create_app(echo_bot(), settings)
            runner = await start_server(app, settings, host="127.0.0.1", port=0)
            stop.append(asyncio.Event())
            loop_box.append(asyncio.get_running_loop())
            ready.append(Served(int(runner.addresses[0][1]), fake))
            started.set()
            await stop[0].wait()
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(60), "the fuzzed server did not start"
    yield ready[0]
    loop_box[0].call_soon_threadsafe(stop[0].set)
    thread.join(60)


def _fresh_body(text: str = "fuzz") -> dict[str, Any]:
    return sdk_body(text, room_id=next(_rooms))


def _check(served: Served, body: bytes, room: Any = None, **headers: str) -> None:
    status, answer = served.post(body, headers)
    assert status < 500, (status, answer, body[:300])
    assert isinstance(answer, dict)
    assert ("error" in answer) if status >= 400 else ("status" in answer)
    if status >= 400 and room is not None:
        served.refused_rooms.add(str(room))


# Everything JSON can hold, lone surrogates included (ensure_ascii writes them as \udXXX).
_chars = st.characters(codec=None, categories=None)
_text = st.text(_chars, max_size=40)
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | _text
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=30,
)
_FIELDS = [
    ("type",),
    ("payload",),
    ("payload", "from"),
    ("payload", "from", "email"),
    ("payload", "from", "id"),
    ("payload", "room"),
    ("payload", "room", "id"),
    ("payload", "room", "type"),
    ("payload", "room", "options"),
    ("payload", "room", "participants"),
    ("payload", "message"),
    ("payload", "message", "id"),
    ("payload", "message", "unique_temp_id"),
    ("payload", "message", "type"),
    ("payload", "message", "text"),
    ("payload", "message", "payload"),
    ("payload", "message", "extras"),
    ("payload", "message", "unix_timestamp"),
    ("payload", "message", "created_at"),
]

_FUZZ = settings(
    max_examples=600,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@_FUZZ
@given(value=_json)
def test_fuzz_any_json_body_gets_a_4xx_or_200(served: Served, value: Any) -> None:
    _check(served, json.dumps(value).encode())


@_FUZZ
@given(path=st.sampled_from(_FIELDS), value=_json, text=_text)
def test_fuzz_a_webhook_with_one_field_replaced(
    served: Served, path: tuple[str, ...], value: Any, text: str
) -> None:
    body = _fresh_body(text)
    room = body["payload"]["room"]["id"]
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _check(served, json.dumps(body).encode(), room)


@_FUZZ
@given(
    cuts=st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 8), st.binary(max_size=8)), max_size=4
    )
)
def test_fuzz_a_webhook_with_mutated_bytes(
    served: Served, cuts: list[tuple[int, int, bytes]]
) -> None:
    body = _fresh_body()
    room = body["payload"]["room"]["id"]
    raw = bytearray(json.dumps(body).encode())
    for at, drop, insert in cuts:
        at = min(at, len(raw))
        raw[at : at + drop] = insert
    _check(served, bytes(raw), room)


@settings(max_examples=150, deadline=None, database=None)
@given(
    depth=st.integers(1, 200_000),
    opener=st.sampled_from(["[", "{", '{"a":', '[{"payload":']),
    signature=st.text(_chars.filter(lambda c: c not in "\r\n\x00"), max_size=70),
)
def test_fuzz_deep_bodies_and_odd_headers(
    served: Served, depth: int, opener: str, signature: str
) -> None:
    raw = (opener * depth).encode()
    # Header values as raw bytes: latin-1 carries any byte through http.client.
    header = signature.encode("utf-8", "surrogatepass").decode("latin-1")
    _check(served, raw, **{"QISCUS-SDK-SIGNATURE": header})


def test_fuzz_leaves_the_server_answering_and_no_refused_body_answered(served: Served) -> None:
    body = sdk_body("still here", room_id=next(_rooms))
    status, answer = served.post(json.dumps(body).encode())
    assert (status, answer) == (200, {"status": "accepted"})
    room = str(body["payload"]["room"]["id"])

    def answered() -> bool:
        return any(str(c["room_id"]) == room for c in served.fake.posted_comments())

    for _ in range(400):
        if answered():
            break
        threading.Event().wait(0.025)
    assert answered(), "the server no longer answers a normal webhook"
    posted_to = {str(c["room_id"]) for c in served.fake.posted_comments()}
    assert not posted_to & served.refused_rooms
    assert not any(status >= 500 for status in served.answers)
