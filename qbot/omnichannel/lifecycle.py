"""Omnichannel's lifecycle webhooks (resolved, new session, agent allocation) as updates.

Each webhook becomes an `Update` of the reserved message type `LIFECYCLE`, its identity a hash
of the body, so it takes the path of every message: stored in the inbox and deduplicated, run by
the room's worker in order with the room's messages, acked together with its state once its
effects are done (a crash before that runs it again; its desk calls and replies keep their
outbox ids and happen once). `run_lifecycle` does the effects:

- ``resolved``: the room's handoff ends, the bot is turned back on at the desk, the customer's
  and the room's conversation state are cleared; then the ``@bot.on_resolved`` handlers run.
- ``new-session``: the ``@bot.on_new_session`` handlers run.
- ``agent-allocation``: the ``@bot.on_agent_allocation`` handlers run
  (``await ctx.assign_agent(id)``); with none, Omnichannel's candidate agent is assigned.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel

from qbot._json import loads
from qbot.handlers import run_handler
from qbot.models.webhook import Update
from qbot.omnichannel.delivery import menu_key
from qbot.omnichannel.models import AgentAllocationWebhook, NewSessionWebhook, ResolvedWebhook

if TYPE_CHECKING:
    from qbot.context import Context

__all__ = ["LIFECYCLE", "LIFECYCLE_KINDS", "lifecycle_body", "lifecycle_update", "run_lifecycle"]

log = structlog.get_logger("qbot.omnichannel")

LIFECYCLE = "qbot_omnichannel_lifecycle"
"""The message type of an update made from a lifecycle webhook."""
LIFECYCLE_KINDS: dict[str, type[BaseModel]] = {
    "resolved": ResolvedWebhook,
    "new-session": NewSessionWebhook,
    "agent-allocation": AgentAllocationWebhook,
}
"""Each lifecycle webhook (the last part of its path) and the model of its body."""


def _who(parsed: BaseModel) -> tuple[str, str, str, str | None]:
    """``(room_id, customer email, customer name, channel source)`` of a parsed body."""
    if isinstance(parsed, ResolvedWebhook):
        source = parsed.service.source if isinstance(parsed.service.source, str) else None
        return parsed.room_id, parsed.customer.user_id or "", parsed.customer.name, source
    if isinstance(parsed, NewSessionWebhook):
        log_ = parsed.room_log
        return parsed.room_id, log_.user_id or "", "", log_.source
    assert isinstance(parsed, AgentAllocationWebhook)
    return str(parsed.room_id), parsed.email, parsed.name, parsed.source


def lifecycle_update(kind: str, raw: bytes) -> Update:
    """The update a lifecycle webhook body becomes; its sender is the room's customer.

    Raises:
        ValueError: ``kind`` is not a lifecycle webhook, or ``raw`` is not JSON, not its body,
            or names no room (the message says which).
    """
    model = LIFECYCLE_KINDS.get(kind)
    if model is None:
        raise ValueError(f"no lifecycle webhook {kind!r}: one of {', '.join(LIFECYCLE_KINDS)}")
    try:
        body = loads(raw)
    except ValueError as e:
        raise ValueError(f"body is not JSON: {e}") from e
    except RecursionError as e:
        raise ValueError(f"the {kind} body is nested too deeply") from e
    if not isinstance(body, dict):
        raise ValueError(f"body must be a JSON object, got {type(body).__name__}")
    try:
        parsed = model.model_validate(body)  # a ValidationError is a ValueError
    except RecursionError as e:
        raise ValueError(f"the {kind} body is nested too deeply") from e
    room_id, email, name, source = _who(parsed)
    if not room_id:
        raise ValueError(f"the {kind} webhook names no room")
    digest = hashlib.blake2b(raw, digest_size=12).hexdigest()
    return Update.model_validate(
        {
            "type": LIFECYCLE,
            "payload": {
                "from": {"email": email, "name": name},
                "room": {"id": room_id, "options": {"source": source} if source else {}},
                "message": {
                    "type": LIFECYCLE,
                    "unique_temp_id": f"omnichannel-{kind}-{digest}",
                    "payload": {"kind": kind, "body": body},
                },
            },
        }
    )


def lifecycle_body(ctx: Context) -> tuple[str, BaseModel]:
    """The kind and parsed body of the lifecycle update ``ctx`` handles."""
    payload: dict[str, Any] = ctx.message.payload or {}
    kind = str(payload.get("kind"))
    return kind, LIFECYCLE_KINDS[kind].model_validate(payload.get("body") or {})


async def run_lifecycle(ctx: Context) -> str:
    """Do a lifecycle webhook's effects, then run its handlers; return the handler name."""
    kind, parsed = lifecycle_body(ctx)
    room = str(ctx.room.id)
    handlers = ctx.bot.lifecycle_handlers(kind)
    if isinstance(parsed, ResolvedWebhook):
        ended = await ctx.storage.handoff_end(room)
        await ctx.desk_call("activate", active=True)
        await ctx.state.clear()
        await ctx.room_state.clear()
        await ctx.storage.delete_state(menu_key(room))
        log.info("omnichannel.resolved", handoff_ended=ended, by=parsed.resolved_by.email)
    elif isinstance(parsed, AgentAllocationWebhook) and not handlers:
        candidate = parsed.candidate_agent
        if candidate is not None and candidate.id is not None:
            await ctx.assign_agent(candidate.id)
        else:
            log.warning("omnichannel.no_candidate_agent")
    for fn in handlers:
        await run_handler(fn, ctx.bot, ctx)
    return f"on_{kind.replace('-', '_')}"
