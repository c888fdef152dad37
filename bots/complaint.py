"""The demo's complaint form: order number → issue type (buttons) → description → confirm.

Included by ``bots/demo.py``; start it from the menu ("File a complaint") or by typing
"complaint". Type "back" or "cancel" at any question.
"""

from __future__ import annotations

import hashlib
from typing import Any

from qbot import Context, Router
from qbot.forms import Field, Form, length, regex

router = Router("complaint")

ISSUES = {
    "late": "Late delivery",
    "damaged": "Damaged item",
    "wrong": "Wrong item",
    "other": "Something else",
}

complaint = Form(
    "complaint",
    [
        Field(
            "order_number",
            "Which order is it about? Send its number, e.g. 123.",
            validate=regex(r"#?\d{3,10}", "An order number has 3 to 10 digits, e.g. 123."),
            label="Order",
        ),
        Field("issue", "What went wrong?", choices=ISSUES, label="Issue"),
        Field(
            "description",
            "Please describe the problem in a few words.",
            validate=length(min=10, max=1000),
            label="Description",
        ),
    ],
)
router.include_router(complaint)


@complaint.on_complete
async def file_complaint(ctx: Context, data: dict[str, Any]) -> None:
    # Derived from the confirming message, so processing it again gives the same ticket.
    seed = f"{ctx.room.id}:{ctx.message.identity or ctx.text}"
    ticket = "C-" + hashlib.sha256(seed.encode()).hexdigest()[:6].upper()
    await ctx.state.set("last_complaint", {"ticket": ticket, **data})
    order = str(data["order_number"]).lstrip("#")
    await ctx.reply(
        f"Thank you. Complaint {ticket} about order #{order} ({ISSUES[data['issue']]}) is filed; "
        "our team will answer within one working day."
    )


@router.postback(action="complaint")
async def start_from_menu(ctx: Context) -> None:
    await complaint.start(ctx)


@router.message(text=["complaint", "file a complaint", "complain"])
async def start_typed(ctx: Context) -> None:
    await complaint.start(ctx)
