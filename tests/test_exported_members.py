"""The public surface is curated: pin it so a change to it is deliberate."""

from __future__ import annotations

import qbot


def test_exported_members_are_pinned_and_sorted() -> None:
    assert qbot.__all__ == sorted(qbot.__all__, key=lambda n: (n[0].islower(), n))
    assert set(qbot.__all__) == {
        "AccountLinking", "Bot", "Buttons", "Card", "Carousel", "ConfigError", "Context",
        "Custom", "Field", "Form", "HandlerRegistrationError", "IntentMatch", "IntentSet",
        "InvalidInput", "LeaseLostError", "Message", "MessageBuildError", "Outcome", "Postback",
        "PostbackError", "QbotError", "QiscusAPIError", "QiscusClient", "QiscusError",
        "QiscusNetworkError", "Reply", "RetryPolicy", "Router", "Settings", "State",
        "SystemEvent", "TemplateError", "Templates", "Text", "Update", "filters",
        "load_intents", "load_settings",
    }  # fmt: skip
    for name in qbot.__all__:
        assert getattr(qbot, name) is not None
