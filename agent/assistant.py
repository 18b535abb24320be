"""The phone assistant: its persona and its tools. What each caller turn calls for is decided in `turn_policy`."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from livekit import rtc
from livekit.agents import Agent, ChatContext, ModelSettings, RunContext, function_tool, get_job_context, llm
from livekit.agents.beta import EndCallTool

from calls.models import EndNote, EndReason, no_note

from .business import BusinessProfile
from .intents import Intent
from .small_model import recent_window
from .turn_policy import Act, Answer, Say, Turn, TurnPolicy, facts_message

log = logging.getLogger("agent")

INSTRUCTIONS = """You are the receptionist of {business_name}, on a phone call.
Answer in one or two short spoken sentences. No markdown, lists or emoji.
Answer only from the facts given with the caller's question. If they don't answer it, say you don't know.
Never invent prices, availability, hours or policies.
Language: {agent_language}."""

END_CALL_DESCRIPTION = "End the phone call after the caller says goodbye."
NOT_ENDED = "The call goes on."


def instructions_for(profile: BusinessProfile) -> str:
    return INSTRUCTIONS.format(business_name=profile.business_name, agent_language=profile.agent_language)


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
    return [Turn(item.role, item.text_content or "") for item in chat_ctx.items
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
    """`on_intent(words, intent)` hears the turn policy's intent for each caller turn, and `note_end` why the
    assistant is ending the call (both: the call record, agent/call_record.py)."""

    def __init__(self, profile: BusinessProfile, policy: TurnPolicy, caller_number: str | None = None, *,
                 on_intent: Callable[[str, Intent], None] | None = None, note_end: EndNote = no_note) -> None:
        self.profile = profile
        self.policy = policy
        self.caller_number = caller_number
        self.on_intent = on_intent
        self.note_end = note_end
        # The caller's number stays out of the prompt: the 0.5B model read it out ("The caller is calling from ...").
        super().__init__(instructions=instructions_for(profile), chat_ctx=ChatContext.empty(),
                         tools=[GuardedEndCallTool(farewell=profile.farewell_text, policy=policy, note_end=note_end)])

    async def llm_node(self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings):
        last = chat_ctx.items[-1] if chat_ctx.items else None
        decision = None
        if isinstance(last, llm.ChatMessage) and last.role == "user":
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

    @function_tool
    async def transfer_to_human(self, context: RunContext) -> llm.ToolResult | str:
        """Transfer the caller to a human colleague."""
        verdict = self.policy.allows("transfer_to_human", conversation_of(context.session.history))
        if isinstance(verdict, Say):
            return await tell(context, verdict.text)
        if not isinstance(verdict, Act):
            return NOT_ENDED
        number = self.profile.transfer_number
        if not number:
            return await tell(context, "I'm sorry, no colleague can take calls right now. I can help you myself, "
                                       "or you can call back during our opening hours.")
        try:
            job = get_job_context()
        except RuntimeError:
            return await tell(context, f"I can't transfer you from here, but you can reach a colleague at {number}.")
        caller = sip_caller(job.room)
        if caller is None:
            return await tell(context, f"I can't transfer you from this line, but you can call {number} to reach "
                                       "a colleague.")
        await tell(context, "Sure, I'm transferring you to a colleague now. Please hold.")
        target = transfer_target(number)
        self.note_end(EndReason.transferred, target)  # before: the caller's leg may go while the REFER is answered
        try:
            await transfer_sip_caller(job, caller, number)
        except Exception as error:  # the carrier refused the REFER, say
            self.note_end(None, None)
            log.warning("transfer to %s failed: %s", target, error)
            return await tell(context, "I'm sorry, the transfer didn't go through. Please call back in a little while.")
        return llm.ToolResult("The caller has been transferred.", reply_required=False)

    @function_tool
    async def get_current_time(self, context: RunContext) -> llm.ToolResult:
        """The current date and time where the business is, and whether it is open now."""
        return await tell(context, self.policy.clock_sentence())
