"""The business's own words, as a prompt that primes speech-to-text to spell them.

Whisper (and OpenAI's transcribe models) read the prompt as if it were the text spoken just before the audio, so a
natural sentence that names the business, its street and its products makes "Lakeside Bakery" likelier than
"Lake Hide Bakery". Whisper keeps at most ~224 prompt tokens; we stay far below (MAX_PROMPT_WORDS), because a long
prompt costs decode time on every request and a prompt of bare lists invites the model to echo it.
"""

from __future__ import annotations

import re

MAX_PROMPT_WORDS = 60


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" ,;.")


def _words(text: str) -> int:
    return len(text.split())


def _spoken_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def transcription_prompt(*, business_name: str, terms: list[str], street: str = "") -> str:
    """One or two plain sentences naming the business, its street and as many of `terms` (in order) as fit in
    MAX_PROMPT_WORDS; duplicates (case-insensitive) and terms already in the name are dropped."""
    name, street = _clean(business_name), _clean(street)
    opening = f"A phone call to {name}" if name else "A phone call"
    opening += f" on {street}." if street else "."
    seen = {name.lower()}
    kept: list[str] = []
    budget = MAX_PROMPT_WORDS - _words(opening) - _words("The caller asks about or")
    for term in terms:
        term = _clean(term)
        if not term or term.lower() in seen:
            continue
        if _words(term) > budget:
            break  # terms come in order of importance: a later, shorter one would skip over this one
        seen.add(term.lower())
        kept.append(term)
        budget -= _words(term)
    if not kept:
        return opening
    return f"{opening} The caller asks about {_spoken_list(kept)}."
