"""The phone assistant: what it says and the tools it may use."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livekit import rtc
from livekit.agents import Agent, ChatContext, ModelSettings, RunContext, function_tool, get_job_context, llm
from livekit.agents.beta import EndCallTool

from .business import BusinessProfile, spoken_clock
from .call_control import asks_question, caller_is_waiting, caller_says_goodbye, requested_tool

log = logging.getLogger("agent")

INSTRUCTIONS = """You are the receptionist of {business_name}, on a phone call.
Answer in one or two short spoken sentences. No markdown, lists or emoji.
Facts:
- Opening hours: {business_hours} ({business_timezone} time).
{facts}If you don't know, say so and offer a transfer to a colleague. Never invent facts.
When the caller says goodbye, call end_call. When they ask for a person, call transfer_to_human.
Language: {agent_language}."""

END_CALL_DESCRIPTION = (
    "End the phone call. Use it only after the caller says goodbye or asks to end the call. "
    "Never use it when the caller asks you to hold on or wait."
)


def instructions_for(profile: BusinessProfile) -> str:
    facts = "".join(f"- {line.strip()}\n" for line in profile.business_facts.split(";") if line.strip())
    return INSTRUCTIONS.format(facts=facts, **profile.__dict__)


def sip_caller(room: rtc.Room | None) -> rtc.RemoteParticipant | None:
    if room is None:
        return None
    return next((p for p in room.remote_participants.values()
                 if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP), None)


WAIT_REPLY = "Sure, take your time. I'll stay on the line."
NOT_ENDED = "The call goes on."
WAIT_INSTRUCTION = f'The caller asked you to wait. Reply to them, for example "{WAIT_REPLY}"'


async def tell(context: RunContext, sentence: str) -> llm.ToolResult:
    """Speaks a tool's fixed answer at once and asks the LLM for no reply: on a CPU that round trip takes
    seconds, and small models garble or repeat what they are given."""
    await context.session.say(sentence, allow_interruptions=False).wait_for_playout()
    return llm.ToolResult(sentence, reply_required=False)


class GuardedEndCallTool(EndCallTool):
    """LiveKit's end-call tool (end the session, then delete the room, which hangs up a phone caller), refusing
    when the caller only asked to wait. It speaks a fixed farewell itself rather than asking the LLM for one:
    on a CPU that round trip takes seconds while the caller waits to be let go.

    Its description is ours and short: every word of it is prefilled by a small CPU model.
    """

    def __init__(self, farewell: str, english: bool = True) -> None:
        super().__init__(end_instructions=None)
        self._farewell = farewell
        self._english = english  # the guards read English phrases; in other languages the model decides alone
        self._tools = [function_tool(self._end_call, name="end_call", description=END_CALL_DESCRIPTION)]

    async def _end_call(self, ctx: RunContext):
        last_user = next((m.text_content or "" for m in reversed(ctx.session.history.messages())
                          if m.role == "user"), "")
        if self._english and caller_is_waiting(last_user):
            log.info("end_call refused: the caller asked to wait (%r)", last_user)
            return await tell(ctx, WAIT_REPLY)
        if self._english and not caller_says_goodbye(last_user):
            # Small models hang up on a bare "Hello": only the caller's own goodbye ends the call.
            log.info("end_call refused: the caller did not say goodbye (%r)", last_user)
            return NOT_ENDED
        await ctx.session.say(self._farewell, allow_interruptions=False).wait_for_playout()
        return await super()._end_call(ctx)


# A long call's conversation is cut back from MAX_ITEMS to the last KEEP_ITEMS items, in steps, so it fits a small
# local model's context (4096 tokens) and the prompt's cached prefix changes only once every few turns.
MAX_ITEMS, KEEP_ITEMS = 40, 20


def recent_window(chat_ctx: llm.ChatContext) -> llm.ChatContext:
    """The instructions plus the recent conversation. The cut moves every MAX_ITEMS - KEEP_ITEMS items, not
    every turn, and never leaves a tool result without its call."""
    items = chat_ctx.items
    head = 1 if items and isinstance(items[0], llm.ChatMessage) and items[0].role in ("system", "developer") else 0
    body = items[head:]
    if len(body) < MAX_ITEMS:
        return chat_ctx
    step = MAX_ITEMS - KEEP_ITEMS
    start = (len(body) - KEEP_ITEMS) // step * step
    while start < len(body) and not isinstance(body[start], llm.ChatMessage):
        start += 1
    kept = chat_ctx.copy()
    kept.items = items[:head] + body[start:]
    return kept


def without_refused_calls(chat_ctx: llm.ChatContext) -> llm.ChatContext:
    """The conversation without the end_call attempts the tool refused. The model then answers the caller's
    words as if it had never tried (small models read a refusal out, or try again)."""
    refused = {item.call_id for item in chat_ctx.items
               if isinstance(item, llm.FunctionCallOutput) and item.output == NOT_ENDED}
    if not refused:
        return chat_ctx
    kept = chat_ctx.copy()
    kept.items = [item for item in kept.items
                  if not (isinstance(item, (llm.FunctionCall, llm.FunctionCallOutput)) and item.call_id in refused)]
    return kept


class PhoneAssistant(Agent):
    def __init__(self, profile: BusinessProfile, caller_number: str | None = None) -> None:
        self.profile = profile
        self.caller_number = caller_number
        # Per-call context goes in its own message, after the shared instructions, so the local LLM's cached
        # prompt prefix (instructions + tools) stays the same for every call.
        context = ChatContext.empty()
        if caller_number:
            context.add_message(role="system", content=f"The caller is calling from {caller_number}.")
        super().__init__(
            instructions=instructions_for(profile),
            chat_ctx=context,
            tools=[GuardedEndCallTool(profile.farewell_text, english=profile.agent_language.startswith("en"))],
        )

    def llm_node(self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings):
        chat_ctx = recent_window(chat_ctx)
        last = chat_ctx.items[-1] if chat_ctx.items else None
        if isinstance(last, llm.FunctionCallOutput):
            # One action per caller turn: after a tool's result comes the spoken answer. Small models otherwise
            # call the same tool again until livekit-agents' step limit.
            model_settings.tool_choice = "none"
        elif isinstance(last, llm.ChatMessage) and last.role == "user":
            text = last.text_content or ""
            if tool := requested_tool(text):
                model_settings.tool_choice = {"type": "function", "function": {"name": tool}}
            elif caller_is_waiting(text):  # "hold on" asks for words only; small models hang up or transfer here
                model_settings.tool_choice = "none"
                if not asks_question(text):
                    chat_ctx = chat_ctx.copy()
                    chat_ctx.add_message(role="system", content=WAIT_INSTRUCTION)
        chat_ctx = without_refused_calls(chat_ctx)
        return Agent.default.llm_node(self, chat_ctx, tools, model_settings)

    @function_tool
    async def transfer_to_human(self, context: RunContext) -> llm.ToolResult:
        """Transfer the caller to a human colleague. Use it when the caller asks for a person, a human, an
        operator, a manager, or someone else to talk to."""
        number = self.profile.transfer_number
        if not number:
            return await tell(context, "I'm sorry, no colleague can take calls right now. I can help you myself, "
                                       "or take a message.")
        try:
            job = get_job_context()
        except RuntimeError:
            return await tell(context, f"I can't transfer you from here, but you can reach a colleague at {number}.")
        caller = sip_caller(job.room)
        if caller is None:
            return await tell(context, f"I can't transfer you from this line, but you can call {number} to reach "
                                       "a colleague.")
        await tell(context, "Sure, I'm transferring you to a colleague now. Please hold.")
        target = number if number.startswith("sip:") else f"tel:{number}"
        try:
            await job.transfer_sip_participant(caller, target)
        except Exception as error:  # the carrier refused the REFER, say
            log.warning("transfer to %s failed: %s", target, error)
            return await tell(context, "I'm sorry, the transfer didn't go through. I can take a message instead.")
        log.info("transferred %s to %s", caller.identity, target)
        return llm.ToolResult("The caller has been transferred.", reply_required=False)

    @function_tool
    async def get_current_time(self, context: RunContext) -> llm.ToolResult:
        """The current date and time where the business is. Use it when the caller asks the time or the
        date, or whether the business is open right now."""
        try:
            zone = ZoneInfo(self.profile.business_timezone)
        except ZoneInfoNotFoundError:
            zone = ZoneInfo("UTC")
        now = datetime.now(zone)
        state = self.profile.open_state(now) or f"Our hours are {self.profile.business_hours}."
        return await tell(context, f"It's {spoken_clock(now)} on {now.strftime('%A, %B')} {now.day} here. {state}")
