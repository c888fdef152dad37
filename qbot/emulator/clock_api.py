"""The emulated time, for the page: read it, and skip ahead.

    ``GET  /emulator/api/clock``          ``{now, iso, offset, running, manual}``
    ``POST /emulator/api/clock/advance``  ``{seconds?, minutes?, hours?, days?}``: move forward

The emulator's clock is the one ``qbot dev`` (a running :class:`~qbot.clock.ManualClock`) and the
test kit (a frozen one) share with the bot: skipping ahead 25 hours closes WhatsApp windows and
fires what was scheduled, as if the hours had passed. A wall clock (an emulator run alone) cannot
be moved: ``advance`` answers 409.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from qbot._json import loads
from qbot.clock import ManualClock
from qbot.emulator.core import Emulator

__all__ = ["MAX_STEP", "clock_routes", "clock_view"]

MAX_STEP = 366 * 86400.0
"""The longest skip ahead one call may ask for (a year)."""
_UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}


def clock_view(emulator: Emulator) -> dict[str, Any]:
    """The emulated time as the page shows it."""
    clock = emulator.clock
    now = clock.time()
    manual = clock if isinstance(clock, ManualClock) else None
    return {
        "now": now,
        "iso": datetime.fromtimestamp(now, UTC).isoformat(),
        "offset": manual.offset if manual is not None else 0.0,
        "running": manual.running if manual is not None else True,
        "manual": manual is not None,
    }


def _step(body: Any) -> float:
    if not isinstance(body, dict) or not body:
        raise ValueError("give seconds, minutes, hours or days to skip ahead")
    unknown = sorted(set(body) - set(_UNITS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}: use seconds, minutes, hours or days")
    total = 0.0
    for name, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r:.40}")
        # A float may be NaN or infinite (JSON's NaN, Infinity, 1e400); an int may be huge.
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{name} is NaN: give a number of {name}")
        if isinstance(value, float) and math.isinf(value):
            raise ValueError(f"{name} is infinite ({value}): give a finite number of {name}")
        if value < 0:
            raise ValueError(f"{name} must not be negative: time only moves forward")
        if value > MAX_STEP / _UNITS[name]:  # checked before multiplying: no overflow
            shown = f"{float(value):g}" if value < 1e300 else "over 1e300"
            raise ValueError(f"skip at most a year at a time, asked {shown} {name}")
        total += float(value) * _UNITS[name]
    if total > MAX_STEP:
        raise ValueError(f"skip at most a year at a time, asked {total / 86400:g} days")
    return total


def clock_routes(emulator: Emulator) -> list[web.RouteDef]:
    """The page's clock routes (not Qiscus endpoints: not recorded)."""

    async def show(request: web.Request) -> web.Response:
        return web.json_response(clock_view(emulator))

    async def advance(request: web.Request) -> web.Response:
        clock = emulator.clock
        if not isinstance(clock, ManualClock):
            return web.json_response(
                {"error": "this emulator runs on the wall clock: start it with qbot dev"},
                status=409,
            )
        try:
            body = await request.json(loads=loads)
            step = _step(body)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        clock.advance(step)
        view = clock_view(emulator)
        emulator.publish({"event": "clock", "clock": view})
        return web.json_response(view)

    return [
        web.get("/emulator/api/clock", show),
        web.post("/emulator/api/clock/advance", advance),
    ]
