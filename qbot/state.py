"""Conversation state: what a handler reads and writes through ``ctx.state`` and ``ctx.room_state``.

A :class:`State` is one JSON object in the storage (``{"step": ..., "data": {...}}``) under
:func:`~qbot.storage.state_key`: per (room, user) for ``ctx.state``, per room for
``ctx.room_state``. It is loaded before the handlers run; writes are kept in the context and
saved by the one commit that also acks the message, so a state change is saved together with
the processing of its message, never half. Until then the handler reads its own writes.

```python
@bot.message(text="subscribe")
async def subscribe(ctx: Context) -> None:
    await ctx.state.goto("ask_email")
    await ctx.reply("Your email?")

@bot.message(state="ask_email")
async def got_email(ctx: Context) -> None:
    await ctx.state.update(email=ctx.text, subscribed=True)
    await ctx.state.goto(None)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qbot.errors import QbotError, StorageError
from qbot.storage.records import StateWrite, dumps, loads

if TYPE_CHECKING:
    from qbot.storage import Storage

__all__ = ["State"]


class State:
    """One conversation's state: named values and the current step.

    Args:
        storage: where the state is read from (writes go through the message's commit).
        key: the storage key (``state_key(room_id, user_id)`` or ``state_key(room_id)``).
        ttl: seconds the state lives after its last change; ``None`` keeps it.
    """

    def __init__(self, storage: Storage, key: str, *, ttl: float | None = None) -> None:
        self.storage = storage
        self.key = key
        self.ttl = ttl
        self._loaded = False
        self._saved: str = "{}"
        self._step: str | None = None
        self._data: dict[str, Any] = {}
        self._dirty = False

    async def load(self) -> State:
        """Read the stored state (once; later calls are no-ops). Returns ``self``."""
        if not self._loaded:
            self.preload(await self.storage.get_state(self.key))
        return self

    def preload(self, stored: Any) -> None:
        """Take ``stored`` (this key's value, read by the caller) as the loaded state.

        The runtime reads both states of a message in one round trip with
        :meth:`~qbot.storage.Storage.load_room` and hands them over here. A no-op once loaded.
        """
        if self._loaded:
            return
        self._loaded = True
        if not stored or not isinstance(stored, dict):  # nothing stored: no JSON to copy
            self._saved = "{}"
            self._step, self._data, self._dirty = None, {}, False
            return
        self._saved = dumps(stored, "state")
        self._reset()

    def _reset(self) -> None:
        stored = loads(self._saved)
        step = stored.get("step")
        data = stored.get("data")
        self._step = step if isinstance(step, str) else None
        self._data = data if isinstance(data, dict) else {}
        self._dirty = False

    def _need(self) -> None:
        if not self._loaded:
            raise QbotError(
                f"state {self.key!r} is not loaded yet: call 'await state.load()' first "
                "(handlers get it loaded)"
            )

    # --- reading ------------------------------------------------------------------------------

    @property
    def step(self) -> str | None:
        """The current step (set by :meth:`goto`), or ``None``."""
        self._need()
        return self._step

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` (a copy), or ``default``."""
        await self.load()
        if key not in self._data:
            return default
        return loads(dumps(self._data[key], f"state value {key!r}"))

    async def all(self) -> dict[str, Any]:
        """Every stored value (a copy)."""
        await self.load()
        copy: dict[str, Any] = loads(dumps(self._data, "state"))
        return copy

    # --- writing ------------------------------------------------------------------------------

    async def set(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``.

        Raises:
            StorageError: ``key`` is not a non-empty string or ``value`` is not JSON.
        """
        await self.update({key: value})

    async def update(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Store several values at once: ``update({"a": 1})`` or ``update(a=1, b=2)``.

        Raises:
            StorageError: a key is not a non-empty string or a value is not JSON.
        """
        await self.load()
        merged = {**(values or {}), **more}
        for key, value in merged.items():
            if not isinstance(key, str) or not key:
                raise StorageError(f"state keys must be non-empty strings, got {key!r}")
            # Checked now, so the error points at the handler line that stored it.
            merged[key] = loads(dumps(value, f"state value {key!r}"))
        self._data.update(merged)
        self._dirty = True

    async def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        await self.load()
        if key in self._data:
            del self._data[key]
            self._dirty = True

    async def clear(self) -> None:
        """Forget every value and the step."""
        await self.load()
        self._data = {}
        self._step = None
        self._dirty = True

    async def goto(self, step: str | None) -> None:
        """Move to ``step`` (handlers registered with ``state=step`` now match); ``None`` ends.

        ``step`` is a string or a member of a :class:`~qbot.names.Steps` group
        (``Checkout.ADDRESS``), stored as its value.

        Raises:
            StorageError: ``step`` is neither a non-empty string nor ``None``.
        """
        if step is not None and (not isinstance(step, str) or not step):
            raise StorageError(f"a step is a non-empty string or None, got {step!r}")
        await self.load()
        # A Steps member (qbot.names) is stored as its plain string value.
        self._step = None if step is None else str.__str__(step)
        self._dirty = True

    # --- for the runtime ------------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        """Whether there are writes not yet committed."""
        return self._dirty

    def pending_write(self) -> StateWrite | None:
        """The write that saves the changes, or ``None`` when nothing changed."""
        if not self._dirty:
            return None
        if self._step is None and not self._data:
            return StateWrite(self.key, delete=True)
        return StateWrite(self.key, {"step": self._step, "data": self._data}, self.ttl)

    def rollback(self) -> None:
        """Drop the writes not yet committed (a handler raised)."""
        if self._loaded:
            self._reset()

    def committed(self) -> None:
        """The pending write was saved: it is the new baseline."""
        if self._dirty:
            self._saved = dumps({"step": self._step, "data": self._data}, "state")
            self._dirty = False

    def __repr__(self) -> str:
        shown = f"step={self._step!r} keys={sorted(self._data)!r}" if self._loaded else "unloaded"
        return f"<State {self.key!r} {shown}>"
