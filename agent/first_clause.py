"""The reply's first clause goes to TTS alone, so the caller hears it sooner.

A non-streaming TTS (OpenAI's, and the local Piper endpoint) is fed by livekit-agents' StreamAdapter one sentence at a
time, so the first audio waits for the whole first sentence to be written and synthesized. Measured alone
(bench/stages.py), Piper's first audio takes about 60 ms for a four-word clause and 200 ms for a fourteen-word
sentence; an LLM writes the first clause sooner than the first sentence too. Cutting the first sentence after its
first clause (a comma, semicolon, colon or dash once MIN_WORDS words are said) starts the audio there; the rest of
the reply goes sentence by sentence, as before. A sentence with no such clause within MAX_WORDS goes whole: cut
mid-phrase, it would sound broken.
"""

from __future__ import annotations

import re

from livekit.agents import tokenize, tts

MIN_WORDS = 3  # "Yes, ..." is not worth a request of its own
MAX_WORDS = 12  # a later clause saves little over the whole sentence
CLAUSE_END = re.compile(r"[,;:](?=\s)|\s[-\u2013\u2014](?=\s)")


def first_clause(sentence: str) -> tuple[str, str]:
    """(the first clause, the rest) of `sentence`, or (sentence, "") when it has no clause worth sending alone."""
    for match in CLAUSE_END.finditer(sentence):
        words = len(sentence[:match.start()].split())
        if words > MAX_WORDS:
            break
        rest = sentence[match.end():]
        if words >= MIN_WORDS and rest.strip():
            return sentence[:match.end()], rest
    return sentence, ""


class FirstClauseTokenizer(tokenize.SentenceTokenizer):
    """livekit-agents' sentence tokenizer (blingfire), except that each stream's first sentence is cut after its
    first clause."""

    def __init__(self) -> None:
        self._sentences = tokenize.blingfire.SentenceTokenizer(retain_format=True)

    def tokenize(self, text: str, *, language: str | None = None) -> list[str]:
        sentences = self._sentences.tokenize(text, language=language)
        if not sentences:
            return sentences
        head, rest = first_clause(sentences[0])
        return [head, rest, *sentences[1:]] if rest else sentences

    def stream(self, *, language: str | None = None) -> tokenize.SentenceStream:
        started = False

        def split(text: str) -> list[str]:
            # Only the reply's start is cut: once two pieces come back, the stream sends the first on.
            nonlocal started
            pieces = self._sentences.tokenize(text, language=language) if started else self.tokenize(text)
            started = started or len(pieces) > 1
            return pieces

        # min_token_len 1: a short clause is sent alone (blingfire's default would hold it for the next sentence).
        return tokenize.token_stream.BufferedSentenceStream(tokenizer=split, min_token_len=1, min_ctx_len=10)


def first_clause_tts(speech: tts.TTS) -> tts.TTS:
    """`speech` fed clause-first; a TTS that streams text itself is returned as it is."""
    if speech.capabilities.streaming:
        return speech
    return tts.StreamAdapter(tts=speech, sentence_tokenizer=FirstClauseTokenizer())
