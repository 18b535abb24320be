"""Taking a message when no one can take the call: the caller's name, a number to call back (the one they call from,
or one said or keyed in and read back for a yes), and the message. The assistant stores it with the call record
(`cli.py messages` lists them).

Every question is a fixed sentence and the LLM is never asked: the conversation so far decides the next question
(`next_step`, replayed from the caller's answers, so a generation that runs twice for one turn asks the same thing
twice), and the intent layer reads the caller's yes or no.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from livekit.agents import AgentTask, ChatContext, ModelSettings, llm

ASK_NAME = "Sure, I'll take a message. May I have your name, please?"
ASK_NUMBER = "What number should we call you back on? You can say it, or key it in and then press the pound key."
RETRY_NUMBER = ("Sorry, I didn't catch a phone number. Please say it digit by digit, or key it in and then press "
                "the pound key.")
ASK_TEXT = "Thank you. And what would you like me to pass on?"
RETRY_TEXT = "Sorry, I didn't catch that. What would you like me to pass on?"
NUMBER_TRIES = 3      # numbers asked for before the message is taken without one
MIN_DIGITS = 3        # fewer is no phone number (an extension is asked for as part of the message)
KEYED_NUMBER_END = "#"
KEYED_PAUSE_S = 4.0   # keyed digits without the pound key count as entered after this long

# Word for digit, as callers say phone numbers ("oh" for zero; "double five").
DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
               "six": "6", "seven": "7", "eight": "8", "nine": "9"}
REPEATS = {"double": 2, "triple": 3}

Answer = Callable[[str], str | None]  # the caller's words -> "yes", "no" or None (neither)


@dataclass(frozen=True)
class TakenMessage:
    caller_name: str = ""
    callback_number: str = ""   # digits, "+" first where said
    text: str = ""


@dataclass(frozen=True)
class Ask:
    """Say this next and wait for the caller."""
    sentence: str


@dataclass(frozen=True)
class Done:
    message: TakenMessage


def spoken_digits(words: str) -> str:
    """The phone number in a caller's words: digits as written ("555-0123") or said ("five five five, oh one two
    three", "double two"); every other word is skipped."""
    digits: list[str] = []
    repeat = 1
    for token in re.findall(r"\+?\d+|[a-z]+", words.lower()):
        if token[0] in "+0123456789":
            digits.append(token if not digits else token.lstrip("+"))
            repeat = 1
        elif token in REPEATS:
            repeat = REPEATS[token]
        elif token in DIGIT_WORDS:
            digits.append(DIGIT_WORDS[token] * repeat)
            repeat = 1
    return "".join(digits)


def read_out(number: str) -> str:
    """Digits as a receptionist reads them back: "5 5 5, 0 1 2 3" (the last four together, threes before them)."""
    plus, digits = ("plus ", number[1:]) if number.startswith("+") else ("", number)
    groups = [digits[-4:]]
    digits = digits[:-4]
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    return plus + ", ".join(" ".join(group) for group in groups if group)


def confirm_number(number: str) -> str:
    return f"I have {read_out(number)}. Is that right?"


def ask_caller_id(number: str) -> str:
    return f"Thank you. Shall we call you back on the number you're calling from, ending in {read_out(number[-4:])}?"


def next_step(answers: list[str], *, caller_number: str | None, answer: Answer) -> Ask | Done:
    """What to say after the caller's `answers` so far (their turns since ASK_NAME, in order): the next question, or
    the whole message."""
    name, number, candidate = "", "", ""
    tries = 0
    step = "name"
    question = ASK_NAME
    for words in answers:
        words = words.strip()
        if step == "name":
            name = words
            step, question = ("caller_id", ask_caller_id(caller_number)) if caller_number else ("number", ASK_NUMBER)
        elif step == "caller_id":
            said = answer(words)
            if said == "yes":
                number, step, question = caller_number or "", "text", ASK_TEXT
            elif len(digits := spoken_digits(words)) >= MIN_DIGITS:  # "no, call me on 555 ..."
                candidate, step, question = digits, "confirm", confirm_number(digits)
            elif said == "no":
                step, question = "number", ASK_NUMBER
        elif step == "number":
            if len(digits := spoken_digits(words)) >= MIN_DIGITS:
                candidate, step, question = digits, "confirm", confirm_number(digits)
            else:
                tries += 1
                step, question = ("text", ASK_TEXT) if tries >= NUMBER_TRIES else ("number", RETRY_NUMBER)
        elif step == "confirm":
            said = answer(words)
            if said == "yes":
                number, step, question = candidate, "text", ASK_TEXT
            elif len(digits := spoken_digits(words)) >= MIN_DIGITS:  # corrected: "no, it's 555 ..."
                candidate, question = digits, confirm_number(digits)
            elif said == "no":
                tries += 1
                # a message without a number beats no message (a phone caller's own number is on the record)
                step, question = ("text", ASK_TEXT) if tries >= NUMBER_TRIES else ("number", ASK_NUMBER)
        elif step == "text":
            if words:
                return Done(TakenMessage(caller_name=name, callback_number=number, text=words))
            question = RETRY_TEXT
    return Ask(question)


class TakeMessage(AgentTask[TakenMessage]):
    """Asks the caller for their name, a callback number and the message; completes with the message."""

    def __init__(self, *, caller_number: str | None, answer: Answer) -> None:
        # No preemptive generation: the last answer completes the task, and a generation for words the caller then
        # goes on from must not.
        super().__init__(instructions="Take a message for the business.", chat_ctx=ChatContext.empty(),
                         turn_handling={"preemptive_generation": {"enabled": False}})
        self.caller_number = caller_number
        self.answer = answer
        self._keys: list[str] = []
        self._keyed_pause: asyncio.TimerHandle | None = None

    async def on_enter(self) -> None:
        self.session.say(ASK_NAME)

    def answers(self) -> list[str]:
        """The caller's turns since this task began."""
        return [item.text_content or "" for item in self.chat_ctx.items
                if isinstance(item, llm.ChatMessage) and item.role == "user"]

    def so_far(self) -> TakenMessage:
        """What the caller gave before the call ended halfway: their name, and their words after it."""
        answers = [words.strip() for words in self.answers() if words.strip()]
        return TakenMessage(caller_name=answers[0] if answers else "", text=" / ".join(answers[1:]))

    async def llm_node(self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings):
        answers = [item.text_content or "" for item in chat_ctx.items
                   if isinstance(item, llm.ChatMessage) and item.role == "user"]
        step = next_step(answers, caller_number=self.caller_number, answer=self.answer)
        if isinstance(step, Done):
            if not self.done():
                self.complete(step.message)
            return
        yield step.sentence

    def key_pressed(self, digit: str) -> None:
        """A keypad digit (agent/keypad.py routes them here while this task runs): the digits so far are the
        caller's answer at the pound key, or after a pause."""
        if self._keyed_pause:
            self._keyed_pause.cancel()
            self._keyed_pause = None
        if digit != KEYED_NUMBER_END:
            self._keys.append(digit)
            self._keyed_pause = asyncio.get_running_loop().call_later(KEYED_PAUSE_S, self._keyed_entered)
            return
        self._keyed_entered()

    def _keyed_entered(self) -> None:
        self._keyed_pause = None
        if not self._keys:
            return
        keyed, self._keys = "".join(self._keys), []
        self.session.interrupt()
        self.session.generate_reply(user_input=keyed)
