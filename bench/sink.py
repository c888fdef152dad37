"""A minimal stand-in for Qiscus's ``post_comment``: counts replies and says when each arrived.

It also answers like the Telegram Bot API for the aiogram peer: a ``POST .../sendMessage``
(form-encoded, as aiogram sends it) gets ``{"ok": true, "result": <Message>}``, and its body is
handed on with the text as ``message``, the key a Qiscus reply has.

Raw asyncio streams rather than aiohttp, so the sink costs as little CPU as possible and the bot
under test, not the harness, is what limits the throughput.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

OnReply = Callable[[dict[str, object]], None]
_MAX_HEADER = 64 * 1024


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _response(comment_id: int, body: dict[str, object]) -> bytes:
    comment = {
        "id": comment_id,
        "message": body.get("message", ""),
        "type": body.get("type", "text"),
        "room_id": body.get("room_id"),
        "unique_temp_id": body.get("unique_temp_id"),
    }
    data = json.dumps({"status": 200, "results": {"comment": comment}}).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def _telegram(message_id: int, body: dict[str, object]) -> bytes:
    chat = {"id": int(str(body.get("chat_id", 0))), "type": "private"}
    result = {"message_id": message_id, "date": int(time.time()), "chat": chat, "text": ""}
    result["text"] = body.get("text", "")
    data = json.dumps({"ok": True, "result": result}).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


class Sink:
    """Accepts ``POST .../post_comment`` on 127.0.0.1 and calls ``on_reply`` with each body.

    Args:
        on_reply: called with the decoded JSON body of every reply.
    """

    def __init__(self, on_reply: OnReply) -> None:
        self.on_reply = on_reply
        self.count = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > _MAX_HEADER:
                    break
                raw = await reader.readexactly(_content_length(head))
                self.count += 1
                if b"/sendMessage " in head.split(b"\r\n", 1)[0]:
                    body: dict[str, object] = dict(parse_qsl(raw.decode()))
                    writer.write(_telegram(self.count, body))
                    body["message"] = body.get("text", "")
                else:
                    body = json.loads(raw)
                    writer.write(_response(self.count, body))
                self.on_reply(body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
