"""How a caller's turn is handled: the intent layer decides, on every AI path, what the LLM may not.

- Ending the call and transferring happen only on a confident intent; an unsure one gets a yes/no question first, and
  the caller's answer decides. A negated request ("don't hang up") is not that intent at all.
- A caller who asks to leave a message, or says yes to the offer of one, is asked for it (agent/take_message.py).
- Hours and time questions get an answer computed from the schedule and the clock, never the model's guess; so does
  any request for a day the business is closed ("Can I pick up bread on Monday?").
- "What did you say?" gets the last reply again, word for word.
- "Hold on" gets a short reply and no action; so do thanks without a goodbye ("you're welcome", then the question
  whether to end the call) and a caller asking to stay on the line ("don't hang up", "no need to transfer me").
- A request only the staff can act on (a booking, an order, a complaint) that no entry answers gets an offer of a
  colleague or a message, never a promise.
- A turn that a knowledge-base entry answers gets that answer, as the business wrote it; a question that no entry
  answers gets "I don't know" and an offer of a colleague, never an invented price or policy.
- A turn the STT was unsure of (Whisper's own confidence, agent/stt.py) is asked again instead of answered: a line
  that garbled "Do you have sourdough today?" into "Do you have powder, golden may?" gets "Sorry, I didn't catch
  that", never an answer to the garble; twice in a row, the caller is offered a colleague.
- Everything else (greetings, small talk) goes to the LLM.

Decisions read only the conversation so far (no hidden state), so a preemptive generation that runs twice for the same
turn decides the same way twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from stack.settings import Settings

from .business import BusinessProfile
from .hours import answer_hours_question, clock, day_hours, hours_from_text, read_question, weekly_summary
from .intents import Intent, IntentClassifier, default_classifier
from .knowledge import KnowledgeBase
from .vocabulary import transcription_prompt

log = logging.getLogger("agent.policy")

# Chosen on the exemplar bank by cross-validation (bench/intent_eval.py): above ACT_THRESHOLD no utterance of another
# intent was ever acted on; between the two the caller is asked first.
ACT_THRESHOLD = {"end_call": 0.60, "transfer": 0.75}
CONFIRM_THRESHOLD = 0.35
# Taking a message ends nothing (the caller can decline each question), so it needs no confirmation first.
MESSAGE_THRESHOLD = 0.50

ASK_END = "Is there anything else, or shall I end the call?"
ASK_TRANSFER = "Would you like me to put you through to a colleague?"
ASK_MESSAGE = "Would you like to leave a message?"
WAIT_REPLY = "Sure, take your time. I'll stay on the line."
NOT_ENDING = "Okay, I'm still here. What else can I help you with?"
OKAY = "Okay. What else can I help you with?"
NOT_TRANSFERRING = OKAY
YOURE_WELCOME = f"You're welcome! {ASK_END}"
DONT_KNOW = "I'm sorry, I don't have that information."
CALL_BACK = f"A colleague can call you back. {ASK_MESSAGE}"
DONT_KNOW_NO_COLLEAGUE = f"{DONT_KNOW} {CALL_BACK}"
# Bookings, orders, cancellations, complaints: only the staff can act on them. Measured: handed these, the LLM promised
# what no one will do ("Sure, I'll put you on the list for Saturday", an invented phone number to book on).
CANT_ARRANGE = "I can't arrange that myself, but a colleague can."
CANT_ARRANGE_NO_COLLEAGUE = f"I can't arrange that myself, but a colleague can call you back. {ASK_MESSAGE}"
# A knowledge-base entry this little more relevant than the rest may be one beside the question, not its answer
# ("can I bring my dog?" -> the seating entry): it is read with an offer of a colleague. Chosen on
# tests/data/bakery_facts_eval.csv and bakery_near_misses.csv (tests/test_knowledge.py prints it): below 0.06 lie 18
# of the 31 wrong entries read out and 15 of the 55 right ones.
SURE_MATCH = 0.06
IF_NOT_ASKED = "If that's not what you asked, "
TOOLS = {"end_call": "end_call", "transfer": "transfer_to_human", "time": "get_current_time",
         "message": "take_message"}
HOURS_QUESTION = "What are your opening hours?"
# Below this transcript confidence a turn is asked again; below the second, a turn that would go to the LLM with no
# fact beside it (where a garble becomes an invented answer). Chosen on bench/stt_confidence.py's labelled turns
# (docs/quality.md): the first, the highest at which no Piper turn heard right and about 3 % of espeak-ng's are asked
# again; the second, the highest at which none of the free answers heard right, in either voice, is.
PARDON_THRESHOLD = 0.40
PARDON_THRESHOLD_FREE_ANSWER = 0.55
PARDON = "Sorry, I didn't catch that. Could you say it again?"
STILL_UNCLEAR = "I'm sorry, I still couldn't make that out."
STILL_UNCLEAR_NO_COLLEAGUE = f"{STILL_UNCLEAR} {CALL_BACK}"


@dataclass(frozen=True)
class Act:
    """Run this tool now (it speaks its own fixed sentence)."""
    tool: str
    intent: Intent


@dataclass(frozen=True)
class Say:
    """Speak this sentence instead of asking the LLM."""
    text: str
    intent: Intent


@dataclass(frozen=True)
class Answer:
    """Ask the LLM, with these facts beside the caller's words (none: nothing in the knowledge base matched)."""
    facts: tuple[str, ...]
    intent: Intent


Decision = Act | Say | Answer


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str
    confidence: float | None = None  # the STT's, for a spoken caller turn (None: typed, or not reported)


class TurnPolicy:
    def __init__(self, *, profile: BusinessProfile, classifier: IntentClassifier, knowledge: KnowledgeBase,
                 now: Callable[[ZoneInfo], datetime] = datetime.now, verbatim_answers: bool = True) -> None:
        self.profile = profile
        self.verbatim_answers = verbatim_answers  # False: the LLM phrases the facts (measured: worse)
        self.classifier = classifier
        self.knowledge = knowledge
        self._now = now
        self._english = profile.agent_language.lower().startswith("en")
        self._schedule = profile.opening_schedule()
        # A preemptive generation and the final one decide the same turn: its words are embedded once.
        self._embed = lru_cache(maxsize=16)(classifier.embed)

    @classmethod
    def load(cls, settings: Settings | None = None, *, now: Callable[[ZoneInfo], datetime] = datetime.now,
             verbatim_answers: bool = True) -> TurnPolicy:
        """The policy for the business configured in `settings` (default: Settings.load())."""
        settings = Settings.load() if settings is None else settings
        profile = answering_profile(settings)
        return cls(profile=profile, classifier=default_classifier(), now=now, verbatim_answers=verbatim_answers,
                   knowledge=knowledge_for(str(settings.business_config or ""), settings.business_facts,
                                           profile.business_name))

    def transcription_prompt(self) -> str:
        return transcription_prompt(business_name=self.profile.business_name, terms=self.knowledge.vocabulary())

    def describe(self) -> str:
        hours = (f"opening hours {self.profile.opening_hours!r}" if self._schedule else
                 "no opening hours that can be checked (set OPENING_HOURS): hours questions get BUSINESS_HOURS "
                 "read out")
        return f"turn policy: {len(self.knowledge)} knowledge-base entries, {hours}"

    def now(self) -> datetime:
        try:
            zone = ZoneInfo(self.profile.business_timezone)
        except ZoneInfoNotFoundError:
            zone = ZoneInfo("UTC")
        return self._now(zone)

    def decide(self, conversation: list[Turn]) -> Decision:
        """What to do about the caller's last turn (the last user item of `conversation`)."""
        caller = next((turn for turn in reversed(conversation) if turn.role == "user"), Turn("user", ""))
        words = caller.text
        vector = self._embed(words) if words.strip() else None
        intent = self.classifier.classify(words, vector=vector)
        # The question the caller answers is the one before any "say that again".
        decision = self._decide(words, intent, vector, last_said(conversation, skipping=PARDON))
        if words.strip() and caller.confidence is not None and (caller.confidence < PARDON_THRESHOLD or (
                caller.confidence < PARDON_THRESHOLD_FREE_ANSWER and isinstance(decision, Answer)
                and not decision.facts)):
            decision = self._pardon(intent, last_said(conversation))
        heard = "" if caller.confidence is None else f", heard with confidence {caller.confidence:.2f}"
        log.info("turn intent %s (%.2f)%s -> %s", intent.name, intent.confidence, heard, type(decision).__name__)
        return decision

    def _decide(self, words: str, intent: Intent, vector: np.ndarray | None, last_reply: str) -> Decision:
        asked = last_reply.lower()  # a question may come mid-sentence ("If that's not what you asked, would you ...")
        if asked.endswith(ASK_END.lower()) and intent.name in ("yes", "no"):
            return Act("end_call", intent) if intent.name == "yes" else Say(NOT_ENDING, intent)
        if asked.endswith(ASK_TRANSFER.lower()) and intent.name in ("yes", "no"):
            return Act("transfer_to_human", intent) if intent.name == "yes" else Say(NOT_TRANSFERRING, intent)
        if asked.endswith(ASK_MESSAGE.lower()) and intent.name in ("yes", "no"):
            return Act(TOOLS["message"], intent) if intent.name == "yes" else Say(OKAY, intent)
        if intent.name in ("end_call", "transfer"):
            if intent.confidence >= ACT_THRESHOLD[intent.name]:
                return Act(TOOLS[intent.name], intent)
            if intent.confidence >= CONFIRM_THRESHOLD:
                return Say(ASK_END if intent.name == "end_call" else ASK_TRANSFER, intent)
        if intent.name == "message" and intent.confidence >= MESSAGE_THRESHOLD:
            return Act(TOOLS["message"], intent)
        if intent.name == "time":
            return Act(TOOLS["time"], intent)
        if intent.name == "wait":
            return self._said(WAIT_REPLY, intent)
        if intent.name == "repeat":
            return self._said(self._repeated(words, vector, last_reply), intent)
        # Measured: handed these, the small LLM refused ("I can't assist with that") or said "you don't know".
        if intent.name == "thanks":
            return self._said(YOURE_WELCOME, intent)
        if intent.name == "stay":
            return self._said(NOT_ENDING, intent)
        if intent.name in ("yes", "no"):  # to nothing we asked: the LLM has no question to read it against
            return self._said(OKAY, intent)
        if intent.name == "hours":
            if self._schedule is None:
                return Answer((f"Our opening hours: {self.profile.business_hours}.",), intent)
            return self._said(self._hours_answer(words), intent)
        if self._names_a_closed_day(words):
            # "Can I pick up bread on Monday?" asks about the business's hours too: the closure comes first.
            return self._said(self._hours_answer(words), intent)
        matches = self.knowledge.search(words, query_vector=vector)
        facts = tuple(match.entry.answer for match in matches)
        if facts and self.verbatim_answers:
            # The business's own answer, word for word: measured, the small models garble prices and policies
            # they are handed (docs/quality.md), and no LLM round trip is quicker.
            if matches[0].score < SURE_MATCH:
                return self._said(f"{facts[0]} {offer_if_not_answered(self.profile)}", intent)
            return self._said(facts[0], intent)
        if intent.name == "question" and not facts:
            return self._said(dont_know(self.profile), intent)
        if intent.name == "request" and not facts:
            return self._said(cant_arrange(self.profile), intent)
        return Answer(facts, intent)

    def _repeated(self, words: str, vector: np.ndarray | None, last_reply: str) -> str:
        """"What did you say?": the last reply again, word for word. Measured: handed these turns, the LLM read out
        its instructions, or answered a misheard "What is your address?" ("What did you remember?") with an invented
        menu. "What did you say the address was?" names what it wants: an entry sure to answer it comes first."""
        matches = self.knowledge.search(words, query_vector=vector) if self.verbatim_answers else []
        if matches and matches[0].score >= SURE_MATCH:
            return matches[0].entry.answer
        return last_reply or self.profile.greeting_text

    def _pardon(self, intent: Intent, asked: str) -> Decision:
        if asked.endswith(PARDON):  # asked once already: the line, not the caller, is the problem
            return self._said(still_unclear(self.profile), intent)
        return self._said(PARDON, intent)

    def hours_sentence(self) -> str:
        """The opening hours, read out (the keypad's "hours" key)."""
        if self._schedule is None:
            return f"Our opening hours are {self.profile.business_hours}."
        return self._hours_answer(HOURS_QUESTION)

    def yes_or_no(self, words: str) -> str | None:
        """"yes", "no", or None: the caller's answer to a yes/no question, as the intent layer reads it."""
        intent = self.classifier.classify(words, vector=self._embed(words) if words.strip() else None)
        return intent.name if intent.name in ("yes", "no") and intent.confidence >= CONFIRM_THRESHOLD else None

    def _hours_answer(self, words: str) -> str:
        return answer_hours_question(words, schedule=self._schedule, now=self.now(),
                                     country=self.profile.business_country)

    def _names_a_closed_day(self, words: str) -> bool:
        if self._schedule is None:
            return False
        asked = read_question(words, now=self.now(), country=self.profile.business_country)
        return bool(asked.days) and not any(day_hours(self._schedule, day).is_open for day in asked.days)

    def _said(self, text: str, intent: Intent) -> Decision:
        # The fixed sentences are English; in another language the LLM says the same thing in the caller's language.
        return Say(text, intent) if self._english else Answer((text,), intent)

    def allows(self, tool: str, conversation: list[Turn]) -> Decision:
        """Whether the LLM's own call of an irreversible tool may run: Act (yes), Say (ask first), or Answer (no)."""
        decision = self.decide(conversation)
        if isinstance(decision, Act) and decision.tool == tool:
            return decision
        if isinstance(decision, Say) and decision.text in (ASK_END, ASK_TRANSFER):
            return decision
        return Answer((), decision.intent)

    def clock_sentence(self) -> str:
        now = self.now()
        state = self.profile.open_state(now) or f"Our hours are {self.profile.business_hours}."
        return f"It's {clock(now)} on {now.strftime('%A, %B')} {now.day} here. {state}"


def dont_know(profile: BusinessProfile) -> str:
    return f"{DONT_KNOW} {ASK_TRANSFER}" if profile.transfer_number else DONT_KNOW_NO_COLLEAGUE


def cant_arrange(profile: BusinessProfile) -> str:
    return f"{CANT_ARRANGE} {ASK_TRANSFER}" if profile.transfer_number else CANT_ARRANGE_NO_COLLEAGUE


def offer_if_not_answered(profile: BusinessProfile) -> str:
    if profile.transfer_number:
        return IF_NOT_ASKED + ASK_TRANSFER[0].lower() + ASK_TRANSFER[1:]
    return f"{IF_NOT_ASKED}{CALL_BACK[0].lower()}{CALL_BACK[1:]}"


def still_unclear(profile: BusinessProfile) -> str:
    return f"{STILL_UNCLEAR} {ASK_TRANSFER}" if profile.transfer_number else STILL_UNCLEAR_NO_COLLEAGUE


def answering_profile(settings: Settings) -> BusinessProfile:
    """The business the policy answers for: its opening hours derived from BUSINESS_HOURS where none are set."""
    profile = BusinessProfile.load(settings)
    if not profile.opening_hours and (derived := hours_from_text(profile.business_hours)):
        profile = replace(profile, opening_hours=derived)  # computed answers from the free text's schedule
    return profile


def fixed_replies(profile: BusinessProfile, answers: Sequence[str], *, today: date) -> list[str]:
    """The replies the policy says word for word to a caller of `profile`, whose knowledge base answers with
    `answers`, and the week's hours as of `today` (other computed answers aside): what agent/ready_speech.py
    synthesizes ahead."""
    offer = offer_if_not_answered(profile)
    replies = [*answers, *(f"{answer} {offer}" for answer in answers), dont_know(profile), cant_arrange(profile),
               PARDON, still_unclear(profile), ASK_END, ASK_TRANSFER, ASK_MESSAGE, WAIT_REPLY, NOT_ENDING, OKAY,
               YOURE_WELCOME]
    if (schedule := profile.opening_schedule()) is not None:
        replies.append(weekly_summary(schedule, today=today, country=profile.business_country))
    return replies


@lru_cache(maxsize=4)
def knowledge_for(config_file: str, facts: str, business_name: str) -> KnowledgeBase:
    """Embedded once per process and business (entries are embedded at load)."""
    return KnowledgeBase.for_business(config_file=config_file, facts=facts, business_name=business_name)


def last_said(conversation: list[Turn], *, skipping: str = "") -> str:
    """What the assistant said just before the caller's last turn ("" if nothing), passing over `skipping`."""
    seen_user = False
    for turn in reversed(conversation):
        if turn.role == "user":
            seen_user = True
        elif seen_user and turn.role == "assistant" and not (skipping and turn.text.strip() == skipping):
            return turn.text.strip()
    return ""


def facts_message(facts: tuple[str, ...]) -> str | None:
    """The note placed right after the caller's words for the LLM; None when there is nothing to add (a note saying
    "no fact answers this" was read out by the 0.5B model as "You don't know.")."""
    if not facts:
        return None
    listed = "\n".join(f"- {fact}" for fact in facts)
    return f"Facts for this answer (use only these; if they don't answer it, say you don't know):\n{listed}"
