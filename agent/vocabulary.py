"""The business's own words, as a prompt that primes speech-to-text to spell them.

Whisper (and OpenAI's transcribe models) read the prompt as the text spoken just before the audio. On a call that
is the assistant's greeting, so the prompt is a greeting that names the business, its street and its products:
"Lakeside Bakery" becomes likelier than "Lake Hide Bakery". Measured once with bench/stt_wer.py's calls and Whisper
tiny.en (Piper / espeak-ng voice): this form missed 12% / 39% of the business's terms, a description ("A phone call
to ... The caller asks about ...") 21% / 55%, a bare list 21% / 55%; the description also leaked "The caller" into
transcripts. Whisper keeps at most ~224 prompt tokens; we stay far below (MAX_PROMPT_WORDS), since every prompt
token is decoded again on every request.
"""

from __future__ import annotations

import re

MAX_PROMPT_WORDS = 60
CLOSING = "How can I help you today?"


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" ,;.")


def _words(text: str) -> int:
    return len(text.split())


def _spoken_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def transcription_prompt(*, business_name: str, terms: list[str], street: str = "") -> str:
    """A greeting naming the business, its street and as many of `terms` (in order) as fit in MAX_PROMPT_WORDS;
    duplicates (case-insensitive) and terms already in the name are dropped."""
    name, street = _clean(business_name), _clean(street)
    opening = f"Thanks for calling {name}" if name else "Thanks for calling"
    opening += f" on {street}." if street else "."
    seen = {name.lower()}
    kept: list[str] = []
    budget = MAX_PROMPT_WORDS - _words(opening) - _words("We have and") - _words(CLOSING)
    for term in terms:
        term = _clean(term)
        if not term or term.lower() in seen:
            continue
        if _words(term) > budget:
            break  # terms come in order of importance: a later, shorter one must not skip over this one
        seen.add(term.lower())
        kept.append(term)
        budget -= _words(term)
    products = f" We have {_spoken_list(kept)}." if kept else ""
    return f"{opening}{products} {CLOSING}"
