"""qbot._bodies.read_body on a body already whole in aiohttp's buffer (no timer armed)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request

from qbot._bodies import read_body


class _Protocol:
    _reading_paused = False

    def pause_reading(self, **_: Any) -> None:
        pass

    def resume_reading(self, **_: Any) -> None:
        pass


def _request(body: bytes, *, announced: bool) -> web.Request:
    stream = streams.StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    stream.feed_data(body)
    stream.feed_eof()
    headers = {"Content-Length": str(len(body))} if announced else {"Transfer-Encoding": "chunked"}
    return make_mocked_request("POST", "/webhook", headers=headers, payload=stream)


async def test_a_whole_body_is_read_as_it_came() -> None:
    body = b'{"a": 1}'
    assert await read_body(_request(body, announced=True), 100, 1.0) == body
    assert await read_body(_request(body, announced=False), 100, 1.0) == body


async def test_a_whole_chunked_body_over_the_limit_is_refused() -> None:
    answer = await read_body(_request(b"x" * 101, announced=False), 100, 1.0)
    assert isinstance(answer, web.Response) and answer.status == 413
    assert answer.text is not None and "100 bytes" in json.loads(answer.text)["error"]
    announced = await read_body(_request(b"x" * 101, announced=True), 100, 1.0)
    assert isinstance(announced, web.Response) and announced.status == 413
