"""The chat model on llama-cpp-python, rendered with the GGUF's own chat template so Qwen sees tools as it was
trained."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from stack.settings import Settings

from .cpu_turns import in_turns
from .model_store import resolve_llm

log = logging.getLogger("local_openai.llm")
STOP = ["<|im_end|>", "<|endoftext|>"]
WARM_SYSTEM_PROMPT = "You are a helpful phone assistant. Answer in one or two short sentences."


class ContextLengthExceeded(ValueError):
    def __init__(self, tokens: int, limit: int):
        super().__init__(f"This model's maximum context length is {limit} tokens, but the messages use {tokens} "
                         "tokens. Shorten the conversation.")


@dataclass
class Generation:
    prompt_tokens: int
    completion_tokens: int = 0


def _text_of(content) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def to_template_messages(messages: list[dict]) -> list[dict]:
    """OpenAI messages as the Qwen template expects them (tool-call arguments as objects, text as strings)."""
    converted = []
    for message in messages:
        item = {"role": message.get("role", "user"), "content": _text_of(message.get("content"))}
        if message.get("tool_calls"):
            item["tool_calls"] = []
            for call in message["tool_calls"]:
                function = call.get("function", {})
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except json.JSONDecodeError:
                    arguments = {}
                item["tool_calls"].append({"name": function.get("name", ""), "arguments": arguments})
        if message.get("role") == "developer":
            item["role"] = "system"
        converted.append(item)
    return converted


class ChatModel:
    def __init__(self, model: str | None = None, threads: int | None = None, context: int = 4096):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        started = time.monotonic()
        self.model_name = model or Settings.load().local_llm_model
        source = resolve_llm(self.model_name)
        options = dict(n_ctx=context, n_threads=threads or os.cpu_count() or 2, n_batch=512, verbose=False)
        if isinstance(source, str):  # a Hugging Face repo id, for users with internet
            self._llm = Llama.from_pretrained(source, filename="*q4_k_m.gguf", **options)
        else:
            self._llm = Llama(model_path=str(source), **options)
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self.model_name} has no chat template in its GGUF metadata")
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._llm._model.token_get_text(self._llm.token_eos()),
            bos_token=self._llm._model.token_get_text(self._llm.token_bos()) if self._llm.token_bos() >= 0 else "",
        )
        self._lock = threading.Lock()  # one llama context: one generation at a time
        log.info("LLM %s loaded in %.1f s", self.model_name, time.monotonic() - started)

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        return self._formatter(messages=to_template_messages(messages), tools=tools or None).prompt

    def prompt_tokens(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        """The prompt as tokens; ContextLengthExceeded when it leaves no room for an answer."""
        tokens = self._llm.tokenize(self.render(messages, tools).encode(), add_bos=False, special=True)
        if len(tokens) >= self._llm.n_ctx() - 1:
            raise ContextLengthExceeded(len(tokens), self._llm.n_ctx())
        return tokens

    def stream(self, tokens: list[int], max_tokens: int, temperature: float,
               usage: Generation | None = None, cancelled: threading.Event | None = None) -> Iterator[str]:
        """Text deltas for a prompt from prompt_tokens(). The llama context keeps the previous prompt, so a
        shared prefix (the system prompt and earlier turns) is not evaluated again. A request `cancelled` while it
        waited for the model (its client went away) ends here, before its prompt is evaluated."""
        usage = usage or Generation(prompt_tokens=0)
        with self._lock:
            if cancelled is not None and cancelled.is_set():
                log.info("chat: the client left while it waited; %d prompt tokens not evaluated", len(tokens))
                return
            started = time.monotonic()
            usage.prompt_tokens = len(tokens)
            cached = self._llm.longest_token_prefix(self._llm._input_ids.tolist(), tokens)
            first_token_s = None
            try:
                for chunk in in_turns(self._llm.create_completion(
                    tokens, max_tokens=max_tokens, temperature=temperature, stop=STOP, stream=True,
                )):
                    if first_token_s is None:
                        first_token_s = time.monotonic() - started
                    usage.completion_tokens += 1
                    if text := chunk["choices"][0]["text"]:
                        yield text
            finally:
                log.info("chat: %d prompt tokens (%d cached), first token %.0f ms, %d tokens in %.2f s",
                         len(tokens), cached, 1000 * (first_token_s or 0), usage.completion_tokens,
                         time.monotonic() - started)

    def warm(self, system_prompt: str = WARM_SYSTEM_PROMPT, tools: list[dict] | None = None) -> float:
        """Evaluates a system prompt so the first real request finds it cached; returns the seconds it took."""
        started = time.monotonic()
        prompt = self.prompt_tokens([{"role": "system", "content": system_prompt}, {"role": "user", "content": "Hi"}],
                                    tools)
        for _ in self.stream(prompt, max_tokens=1, temperature=0.0):
            pass
        return time.monotonic() - started
