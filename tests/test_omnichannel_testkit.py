"""The test kit's Omnichannel side: the qbot_chat marker, resolve, agent_says, the assertions."""

from __future__ import annotations

import pytest

from bots.demo import bot as demo
from qbot import Bot
from qbot.emulator.harness import Chat, Harness
from qbot.testing import TranscriptFailure, run_transcript


@pytest.fixture
def qbot_bot() -> Bot:
    return demo


@pytest.mark.qbot_chat(omnichannel=True, channel="wa", name="Ana")
async def test_the_demo_hands_off_to_support_and_surveys_after_resolve(qbot_chat: Chat) -> None:
    assert qbot_chat.channel == "wa"
    await qbot_chat.say("can I talk to a human")
    await qbot_chat.assert_handed_off(agent="Ayu")
    with pytest.raises(AssertionError, match=r"still handled by the bot|not assigned"):
        await qbot_chat.assert_handed_off(agent="Bima")
    (await qbot_chat.agent_says("Hello, Ayu here")).assert_none()
    survey = await qbot_chat.resolve()
    survey.assert_buttons("1 - Very poor", "2 - Poor", "3 - Okay", "4 - Good", "5 - Excellent")
    await qbot_chat.assert_with_bot()
    (await qbot_chat.tap("4 - Good")).assert_texts("Thank you for rating us 4 out of 5!")


async def test_a_qiscus_chat_has_no_desk(qbot_chat: Chat) -> None:
    with pytest.raises(AssertionError, match="not an Omnichannel chat"):
        await qbot_chat.resolve()


async def test_assert_with_bot_fails_while_handed_off() -> None:
    async with Harness(demo) as harness:
        chat = await harness.chat(omnichannel=True, channel="ig")
        await chat.say("connect me to customer service")
        with pytest.raises(AssertionError, match="bot is off"):
            await chat.assert_with_bot()


async def test_a_transcript_turn_checks_the_handoff() -> None:
    transcript = {
        "name": "t",
        "turns": [{"say": "can I talk to a human", "handoff": {"agent": "Citra"}}],
    }
    with pytest.raises(TranscriptFailure, match="agent 'Citra' is not assigned"):
        await run_transcript(demo, transcript, channel="wa")
    qiscus = {"name": "t", "turns": [{"resolve": True}]}
    with pytest.raises(TranscriptFailure, match="need an Omnichannel chat"):
        await run_transcript(demo, qiscus)
