"""Outbound calls (`cli.py dial`): the job's metadata names the number, the purpose and the outbound trunk. The agent
places the call itself (CreateSIPParticipant, waiting until it is answered) with livekit-agents' answering-machine
detection (AMD) listening from the start, then talks with a person, or waits for a voicemail greeting to end, leaves
a short message and hangs up. Busy, unanswered, declined and failed calls end with an outcome of their own in the
call store, which `cli.py dial` reads.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from livekit import api
from livekit.agents import AgentSession, JobContext
from livekit.agents.voice.amd import AMD, AMDCategory

from calls.models import EndReason

from .business import BusinessProfile

log = logging.getLogger("agent.outbound")

ROOM_PREFIX = "outbound-"
IDENTITY = "callee"
# SIP final responses and what they mean for the call's outcome (anything else: dial_failed).
OUTCOME_OF_STATUS = {486: EndReason.callee_busy, 600: EndReason.callee_busy, 603: EndReason.declined,
                     408: EndReason.no_answer, 480: EndReason.no_answer, 487: EndReason.no_answer}
# AMD's verdicts on which a message is left (an IVR menu has nobody to talk to either).
LEAVE_A_MESSAGE = {AMDCategory.MACHINE_VM, AMDCategory.MACHINE_IVR}
# AMD hands a greeting longer than its 2.5 s "short greeting" to the LLM; the local 0.5B model gave no verdict for
# a 5.6 s voicemail greeting (AMD timed out: "uncertain"). A person who answers says a few words and waits; this
# much speech with no verdict is taken for a machine.
LONG_GREETING_S = 4.0


@dataclass(frozen=True)
class OutboundCall:
    """What `cli.py dial` asks for, carried in the agent dispatch's metadata."""
    number: str
    purpose: str
    trunk_id: str
    ringing_timeout: int = 30

    def metadata(self) -> str:
        return json.dumps({"outbound": asdict(self)})

    @classmethod
    def from_metadata(cls, metadata: str | None) -> OutboundCall | None:
        """The outbound call a job is for; None for an inbound call (its dispatch carries no such metadata)."""
        try:
            fields = json.loads(metadata or "{}").get("outbound")
        except (ValueError, AttributeError):
            return None
        return cls(**fields) if isinstance(fields, dict) else None


def sentence(text: str) -> str:
    """The purpose as one spoken sentence: capitalised, ending in a full stop."""
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if re.search(r"[.!?]$", text) else f"{text}."


def opening_line(profile: BusinessProfile, purpose: str) -> str:
    return f"Hello, this is the assistant of {profile.business_name}. {sentence(purpose)}".strip()


def voicemail_message(profile: BusinessProfile, purpose: str, callback_number: str) -> str:
    call_back = f" Please call us back on {spoken_number(callback_number)}." if callback_number else ""
    return f"Hello, this is {profile.business_name}. {sentence(purpose)}{call_back} Thank you, goodbye."


def spoken_number(number: str) -> str:
    from .take_message import read_out

    return read_out(number)


def dial_outcome(error: Exception) -> tuple[EndReason, str]:
    """How a dial that raised ended: busy, no answer, declined, or failed (with what failed)."""
    code = getattr(error, "sip_status_code", None)
    if code is None and getattr(error, "status", None) == 408:  # livekit-sip v1.8.0's ring timeout: no SIP status
        code = 408
    reason = OUTCOME_OF_STATUS.get(code) if code is not None else None
    status = getattr(error, "sip_status", None) or ""
    detail = f"{code} {status}".strip() if code is not None else str(error)
    return reason or EndReason.dial_failed, detail


async def dial(lk: api.LiveKitAPI, *, trunk_id: str, number: str, room: str, identity: str,
               ringing_timeout: float) -> None:
    """CreateSIPParticipant through our outbound trunk into `room`, returning once `number` answered; raises
    otherwise (busy, no answer, declined: dial_outcome says which). The callee of an outbound call, and the colleague
    of a warm transfer (agent/warm_transfer.py)."""
    await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
        sip_trunk_id=trunk_id, sip_call_to=number, room_name=room, participant_identity=identity,
        participant_name=identity, wait_until_answered=True, ringing_timeout={"seconds": int(ringing_timeout)}))


async def detect_and_dial(ctx: JobContext, session: AgentSession, call: OutboundCall,
                          on_answer: Callable[[], None]):
    """Dials with AMD listening; AMD's verdict once the callee answered (raises when the dial fails)."""
    async with AMD(session, llm=None, stt=None, participant_identity=IDENTITY, suppress_compatibility_warning=True,
                   ivr_detection=False) as detector:
        await dial(ctx.api, trunk_id=call.trunk_id, number=call.number, room=ctx.room.name, identity=IDENTITY,
                   ringing_timeout=call.ringing_timeout)
        on_answer()
        log.info("outbound call answered; listening for a person or a machine")
        verdict = await detector.execute()
    log.info("answering-machine detection: %s (%s, %.1f s of speech)", verdict.category.value, verdict.reason,
             verdict.speech_duration)
    if verdict.category == AMDCategory.UNCERTAIN and verdict.speech_duration >= LONG_GREETING_S:
        log.info("no verdict after %.1f s of greeting: taken for a machine", verdict.speech_duration)
        return verdict.model_copy(update={"category": AMDCategory.MACHINE_VM, "reason": "long_greeting"})
    return verdict
