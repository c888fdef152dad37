"""The public surface is curated: pin it so a change to it is deliberate."""

from __future__ import annotations

import pytest

import qbot
from qbot import errors
from qbot import filters as F


def test_exported_members_are_pinned_and_sorted() -> None:
    assert qbot.__all__ == sorted(qbot.__all__, key=lambda n: (n[0].islower(), n))
    assert set(qbot.__all__) == {
        "AccountLinking", "Action", "Bot", "Buttons", "Card", "Carousel", "ConfigError", "Context",
        "Custom", "Field", "Form", "HandlerRegistrationError", "ImportFileError", "IntentMatch",
        "IntentSet", "InvalidInput", "Message", "MessageBuildError", "OfficeHours", "Outcome",
        "OutsideWindowError", "Postback",
        "PostbackError", "QbotError", "QiscusAPIError", "QiscusBadRequest", "QiscusClient",
        "QiscusError", "QiscusForbidden", "QiscusNetworkError", "QiscusNotFound",
        "QiscusRateLimited", "QiscusServerError", "QiscusUnauthorized", "Reply", "RetryPolicy",
        "Router", "Settings", "StartupError", "State", "Steps", "StorageError", "SystemEvent",
        "TemplateError", "TemplateLimitError", "Templates", "Text", "Update", "filters",
        "load_intents", "load_settings",
    }  # fmt: skip
    for name in qbot.__all__:
        assert getattr(qbot, name) is not None


def test_exported_members_include_every_error_but_the_runtime_internal_one() -> None:
    public = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    assert public - set(qbot.__all__) == {"LeaseLostError"}


def test_exported_members_lease_lost_error_still_imports_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"LeaseLostError is internal.*StorageError"):
        from qbot import LeaseLostError
    assert LeaseLostError is errors.LeaseLostError
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        qbot.Nope  # noqa: B018 - the attribute access is the test


@pytest.mark.parametrize(
    ("old", "new"), [("Text", F.TextIs), ("State", F.StateIs), ("Sender", F.SentBy)]
)
def test_exported_members_old_filter_names_still_work_with_a_warning(
    old: str, new: type[F.Filter]
) -> None:
    with pytest.warns(DeprecationWarning, match=rf"filters\.{old} is now {new.__name__}"):
        assert getattr(F, old) is new
    assert old not in F.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        F.Nope  # noqa: B018 - the attribute access is the test
