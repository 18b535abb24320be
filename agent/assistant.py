"""The phone assistant: its persona and its tools. What each caller turn calls for is decided in `turn_policy`."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from livekit import rtc
from livekit.agents import Agent, ChatContext, ModelSettings, RunContext, function_tool, get_job_context, llm
from livekit.agents.beta import EndCallTool

from calls.models import EndNote, EndReason, MessageReason, no_note
from sip.provisioning import managed_outbound_trunk

from .business import BusinessProfile
from .intents import Intent
from .keypad import describe
from .small_model import recent_window
from .take_message import TakeMessage, TakenMessage, read_out
from .turn_policy import (
    ASK_END,
    ASK_MESSAGE,
    CANT_ARRANGE_NO_COLLEAGUE,
    DONT_KNOW_NO_COLLEAGUE,
    STILL_UNCLEAR_NO_COLLEAGUE,
    TOOLS,
    Act,
    Answer,
    Say,
    Turn,
    TurnPolicy,
    facts_message,
    last_said,
)
from .warm_transfer import Handover, WarmTransfer, briefing

log = logging.getLogger("agent")

INSTRUCTIONS = """You are the receptionist of {business_name}, on a phone call.
Answer in one or two short spoken sentences. No markdown, lists or emoji.
Answer only from the facts given with the caller's question. If they don't answer it, say you don't know.
Never invent prices, availability, hours or policies.
Language: {agent_language}."""

END_CALL_DESCRIPTION = "End the phone call after the caller says goodbye."
NOT_ENDED = "The call goes on."
NO_COLLEAGUE = f"I'm sorry, no colleague can take calls right now. {ASK_MESSAGE}"
TRANSFER_FAILED = f"I'm sorry, the transfer didn't go through. {ASK_MESSAGE}"
ON_HOLD = "Sure, let me see whether a colleague is free. Please hold."
COLLEAGUE_UNAVAILABLE = f"Thank you for holding. I'm sorry, my colleague can't take your call right now. {ASK_MESSAGE}"
# Why a message is taken, from the offer the caller said yes to (anything else: they asked for one).
OFFERED_MESSAGE = {NO_COLLEAGUE: MessageReason.no_colleague, TRANSFER_FAILED: MessageReason.transfer_failed,
                   COLLEAGUE_UNAVAILABLE: MessageReason.transfer_failed,
                   DONT_KNOW_NO_COLLEAGUE: MessageReason.unanswered,
                   CANT_ARRANGE_NO_COLLEAGUE: MessageReason.request,
                   STILL_UNCLEAR_NO_COLLEAGUE: MessageReason.unanswered}
NO_SUCH_KEY = "Sorry, that key does nothing here."
TRANSFERRING = "Sure, I'm transferring you to a colleague now. Please hold."
# The tools' own sentences (agent/ready_speech.py synthesizes them ahead).
SAID_BY_TOOLS = (TRANSFERRING, ON_HOLD, NO_COLLEAGUE, TRANSFER_FAILED, COLLEAGUE_UNAVAILABLE, NO_SUCH_KEY)
# Told each message a caller leaves (the call record stores it); `finished` is False for a call that ended halfway.
MessageTaken = Callable[[TakenMessage, MessageReason, bool], None]


def message_taken_nowhere(_message: TakenMessage, _reason: MessageReason, _finished: bool) -> None:
    """Where no call is recorded (tests, the prompt-cache warm-up)."""


OUTBOUND = "\nYou placed this call. Its purpose: {purpose}"


def instructions_for(profile: BusinessProfile, purpose: str = "") -> str:
    instructions = INSTRUCTIONS.format(business_name=profile.business_name, agent_language=profile.agent_language)
    return instructions + (OUTBOUND.format(purpose=purpose) if purpose else "")


def sip_caller(room: rtc.Room | None) -> rtc.RemoteParticipant | None:
    if room is None:
        return None
    return next((p for p in room.remote_participants.values()
                 if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP), None)


def transfer_target(number: str) -> str:
    """The REFER's target for TRANSFER_NUMBER (E.164, or a sip: address)."""
    return number if number.startswith("sip:") else f"tel:{number}"


async def transfer_sip_caller(job, caller: rtc.RemoteParticipant, number: str) -> None:
    """A cold transfer of the phone caller to `number` (E.164, or a sip: address): livekit-sip sends the caller's
    side a SIP REFER. Raises when the transfer does not go through."""
    target = transfer_target(number)
    await job.transfer_sip_participant(caller, target)
    log.info("transferred the caller to %s", target)
    log.debug("transferred %s to %s", caller.identity, target)


def conversation_of(chat_ctx: llm.ChatContext) -> list[Turn]:
    return [Turn(item.role, item.text_content or "", item.transcript_confidence if item.role == "user" else None)
            for item in chat_ctx.items
            if isinstance(item, llm.ChatMessage) and item.role in ("user", "assistant")]


async def tell(context: RunContext, sentence: str) -> llm.ToolResult:
    """Speaks a tool's fixed answer at once and asks the LLM for no reply."""
    await context.session.say(sentence, allow_interruptions=False).wait_for_playout()
    return llm.ToolResult(sentence, reply_required=False)


class GuardedEndCallTool(EndCallTool):
    """LiveKit's end-call tool (end the session, then delete the room, which hangs up a phone caller), run only when
    the turn policy allows it, whichever model asked. It speaks a fixed farewell itself."""

    def __init__(self, *, farewell: str, policy: TurnPolicy, note_end: EndNote = no_note) -> None:
        super().__init__(end_instructions=None)
        self._farewell = farewell
        self._policy = policy
        self._note_end = note_end
        self._tools = [function_tool(self._end_call, name="end_call", description=END_CALL_DESCRIPTION)]

    async def _end_call(self, ctx: RunContext):
        verdict = self._policy.allows("end_call", conversation_of(ctx.session.history))
        if isinstance(verdict, Say):
            return await tell(ctx, verdict.text)
        if not isinstance(verdict, Act):
            log.info("end_call refused: the caller's intent is %s", verdict.intent.name)
            return NOT_ENDED
        self._note_end(EndReason.assistant_ended, None)
        await ctx.session.say(self._farewell, allow_interruptions=False).wait_for_playout()
        return await super()._end_call(ctx)


class PhoneAssistant(Agent):
    """`on_intent(words, intent)` hears the turn policy's intent for each caller turn, `note_end` why the assistant
    is ending the call, and `on_message` each message a caller leaves (all three: the call record,
    agent/call_record.py)."""

    def __init__(self, profile: BusinessProfile, policy: TurnPolicy, caller_number: str | None = None, *,
                 on_intent: Callable[[str, Intent], None] | None = None, note_end: EndNote = no_note,
                 on_message: MessageTaken = message_taken_nowhere, opening: str = "", purpose: str = "") -> None:
        self.opening = opening  # a call we placed: our first words, whatever the callee said first
        # A call we placed says nothing until answering-machine detection has heard who answered (worker.call_out):
        # a reply to a voicemail greeting would talk over it, and a person would hear the opening twice.
        self.screening = bool(opening)
        self.profile = profile
        self.policy = policy
        self.caller_number = caller_number
        self.on_intent = on_intent
        self.note_end = note_end
        self.on_message = on_message
        self.shortcuts = profile.keypad_shortcuts()
        self._keyed: tuple[str, MessageReason | None] | None = None  # a keypad action's tool, for the next reply
        # The caller's number stays out of the prompt: the 0.5B model read it out ("The caller is calling from ...").
        super().__init__(instructions=instructions_for(profile, purpose), chat_ctx=ChatContext.empty(),
                         tools=[GuardedEndCallTool(farewell=profile.farewell_text, policy=policy, note_end=note_end)])

    async def llm_node(self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings):
        last = chat_ctx.items[-1] if chat_ctx.items else None
        decision = None
        if self.screening:
            return
        if self.opening and not any(turn.role == "assistant" for turn in conversation_of(chat_ctx)):
            yield self.opening
            return
        if self._keyed:  # the reply press() asked for: the key is the caller's latest word
            decision = Act(self._keyed[0], Intent("keypad", 1.0))
        elif isinstance(last, llm.ChatMessage) and last.role == "user":
            decision = await asyncio.to_thread(self.policy.decide, conversation_of(chat_ctx))
            if self.on_intent:
                self.on_intent(last.text_content or "", decision.intent)
        if isinstance(decision, Act):
            yield llm.ChatChunk(id=f"policy-{uuid.uuid4().hex[:12]}", delta=llm.ChoiceDelta(
                role="assistant", tool_calls=[llm.FunctionToolCall(
                    name=decision.tool, arguments="{}", call_id=f"call_{uuid.uuid4().hex[:24]}")]))
            return
        if isinstance(decision, Say):
            yield decision.text
            return
        chat_ctx = recent_window(chat_ctx)
        if isinstance(decision, Answer) and (note := facts_message(decision.facts)):
            chat_ctx = chat_ctx.copy()
            chat_ctx.add_message(role="system", content=note)
        # Actions are the turn policy's alone, so the model is offered no tools: it only talks (a small model offered
        # tools writes calls, and a dropped call left the caller in silence).
        async for chunk in Agent.default.llm_node(self, chat_ctx, [], model_settings):
            yield chunk

    # --- the keypad (agent/keypad.py) ---------------------------------------------------------------------------------
    def press(self, action: str) -> None:
        """A keypad shortcut's action ("" for a key with none): spoken at once, or run as the next reply's tool."""
        session = self.session
        session.interrupt()
        if action == "hours":
            session.say(self.policy.hours_sentence())
        elif action == "repeat":
            said = [turn.text for turn in conversation_of(session.history) if turn.role == "assistant" and turn.text]
            session.say(said[-1] if said else self.profile.greeting_text)
        elif action in ("person", "message"):
            if action == "person" and self.profile.transfer_number:
                self._keyed = (TOOLS["transfer"], None)
            else:
                reason = MessageReason.no_colleague if action == "person" else MessageReason.asked
                self._keyed = (TOOLS["message"], reason)
            session.generate_reply()
        else:
            session.say(" ".join(part for part in (NO_SUCH_KEY, describe(self.shortcuts)) if part))

    def _take_keyed(self, tool: str) -> tuple[str, MessageReason | None] | None:
        keyed, self._keyed = self._keyed, None
        return keyed if keyed and keyed[0] == tool else None

    # --- tools (run on the turn policy's decision, or a keypad shortcut) --------------------------------------------
    @function_tool
    async def take_message(self, context: RunContext) -> llm.ToolResult:
        """Take a message for the business: the caller's name, a number to call back, and what to pass on."""
        keyed = self._take_keyed(TOOLS["message"])
        conversation = conversation_of(context.session.history)
        reason = keyed[1] if keyed else OFFERED_MESSAGE.get(last_said(conversation), MessageReason.asked)
        task = TakeMessage(caller_number=self.caller_number, answer=self.policy.yes_or_no)
        try:
            message = await task
        except BaseException:  # the caller hung up halfway: keep what they said
            partial = task.so_far()
            if partial.caller_name:
                self.on_message(partial, reason, False)
            raise
        self.on_message(message, reason, True)
        callback = f" We'll call you back on {read_out(message.callback_number)}." if message.callback_number else ""
        return await tell(context, f"Thank you, I've passed your message on.{callback} {ASK_END}")

    @function_tool
    async def transfer_to_human(self, context: RunContext) -> llm.ToolResult | str:
        """Transfer the caller to a human colleague."""
        if not self._take_keyed(TOOLS["transfer"]):  # a keypad shortcut is the caller's plain request
            verdict = self.policy.allows("transfer_to_human", conversation_of(context.session.history))
            if isinstance(verdict, Say):
                return await tell(context, verdict.text)
            if not isinstance(verdict, Act):
                return NOT_ENDED
        number = self.profile.transfer_number
        if not number:
            return await tell(context, NO_COLLEAGUE)
        try:
            job = get_job_context()
        except RuntimeError:
            return await tell(context, f"I can't transfer you from here, but you can reach a colleague at {number}.")
        caller = sip_caller(job.room)
        if caller is None:
            return await tell(context, f"I can't transfer you from this line, but you can call {number} to reach "
                                       "a colleague.")
        if trunk := await self._warm_transfer_trunk(job, number):
            return await self._warm_transfer(context, job, caller, trunk, number)
        await tell(context, TRANSFERRING)
        target = transfer_target(number)
        self.note_end(EndReason.transferred, target)  # before: the caller's leg may go while the REFER is answered
        try:
            await transfer_sip_caller(job, caller, number)
        except Exception as error:  # the carrier refused the REFER, say
            self.note_end(None, None)
            log.warning("transfer to %s failed: %s", target, error)
            return await tell(context, TRANSFER_FAILED)
        return llm.ToolResult("The caller has been transferred.", reply_required=False)

    async def _warm_transfer_trunk(self, job, number: str) -> str:
        """The outbound trunk a warm transfer dials through; "" for a cold transfer (TRANSFER_MODE)."""
        if self.profile.transfer_mode == "cold" or number.startswith("sip:"):  # a sip: URI is for a REFER only
            return ""
        try:
            trunk = await managed_outbound_trunk(job.api)
        except Exception as error:  # the API is down: a REFER needs nothing from it
            log.warning("no warm transfer: the outbound trunk could not be looked up (%s)", error)
            return ""
        if trunk is None and self.profile.transfer_mode == "warm":
            log.warning("TRANSFER_MODE=warm, but there is no outbound trunk (set SIP_OUTBOUND_ADDRESS and run "
                        "`python cli.py sip setup`): transferring cold")
        return trunk.sip_trunk_id if trunk else ""

    async def _warm_transfer(self, context: RunContext, job, caller: rtc.RemoteParticipant, trunk_id: str,
                             number: str) -> llm.ToolResult:
        caller_words = [turn.text for turn in conversation_of(context.session.history) if turn.role == "user"][-2:]
        transfer = WarmTransfer(
            room=job.room, lk=job.api, session=context.session, caller=caller, trunk_id=trunk_id, number=number,
            briefing=briefing(self.profile.business_name, self.caller_number, caller_words),
            answer=self.policy.yes_or_no, ringing_timeout=job.proc.userdata["settings"].sip_outbound_ringing_timeout)
        transfer.prepare_hold_music()
        await tell(context, ON_HOLD)
        handover = await transfer.run()
        if handover is Handover.accepted:
            self.note_end(EndReason.transferred, f"{transfer_target(number)} (warm)")
            return llm.ToolResult("The caller is talking to a colleague.", reply_required=False)
        if handover is Handover.caller_left:
            return llm.ToolResult("The caller hung up while on hold.", reply_required=False)
        return await tell(context, COLLEAGUE_UNAVAILABLE)

    @function_tool
    async def get_current_time(self, context: RunContext) -> llm.ToolResult:
        """The current date and time where the business is, and whether it is open now."""
        return await tell(context, self.policy.clock_sentence())
