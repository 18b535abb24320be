"""What the caller means by a turn: one intent with a confidence, from a classifier trained on a labelled exemplar
bank (`agent/data/intent_exemplars.csv`).

Features: word 1-3-grams (so "don't hang up" and "hang up now" differ) and the turn's sentence embedding
(multilingual-e5-small, shared with the knowledge-base search: it carries paraphrases and other languages), fed to a
logistic regression whose class probability is the confidence. The method and its settings were chosen by
cross-validated recall on the bank and measured on a held-out labelled set (docs/quality.md,
`python bench/intent_eval.py`).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .embeddings import Embedder, cached_queries, shared_embedder

log = logging.getLogger("agent.intents")

EXEMPLARS = Path(__file__).with_name("data") / "intent_exemplars.csv"
INTENTS = ("end_call", "transfer", "message", "wait", "hours", "time", "yes", "no", "thanks", "stay", "repeat",
           "request", "question", "other")
# Irreversible intents: acted on only when confident; between the two thresholds the caller is asked first.
ACTIONS = ("end_call", "transfer")


@dataclass(frozen=True)
class Intent:
    name: str
    confidence: float


@dataclass(frozen=True)
class ClassifierOptions:
    word_ngrams: tuple[int, int] = (1, 3)
    char_ngrams: tuple[int, int] = (2, 5)
    use_words: bool = True
    use_chars: bool = False  # measured: no gain over words + embedding, and higher thresholds
    use_embedding: bool = True
    embedding_weight: float = 1.0
    regularization: float = 30.0  # logistic regression's C


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(utterance, intent) rows of a labelled CSV (columns `utterance,intent[,...]`)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [(row["utterance"].strip(), row["intent"].strip()) for row in csv.DictReader(handle)]
    unknown = sorted({intent for _, intent in rows} - set(INTENTS))
    if unknown:
        raise ValueError(f"{path}: unknown intent labels {unknown}; allowed: {', '.join(INTENTS)}")
    return rows


def normalise(text: str) -> str:
    # Transcripts come with and without punctuation and capitals; curly quotes break "don't".
    return " ".join(text.lower().replace("\u2019", "'").split())


class IntentClassifier:
    def __init__(self, *, exemplars: list[tuple[str, str]], options: ClassifierOptions = ClassifierOptions(),
                 embedder: Embedder | None = None, exemplar_vectors: np.ndarray | None = None) -> None:
        self.options = options
        self._embedder = embedder if options.use_embedding else None
        texts = [normalise(text) for text, _ in exemplars]
        labels = [intent for _, intent in exemplars]
        self._words = TfidfVectorizer(analyzer="word", ngram_range=options.word_ngrams, sublinear_tf=True,
                                      token_pattern=r"(?u)\b\w[\w']*\b") if options.use_words else None
        self._chars = TfidfVectorizer(analyzer="char_wb", ngram_range=options.char_ngrams,
                                      sublinear_tf=True) if options.use_chars else None
        for vectorizer in (self._words, self._chars):
            if vectorizer is not None:
                vectorizer.fit(texts)
        vectors = None
        if self._embedder is not None:
            vectors = exemplar_vectors if exemplar_vectors is not None else \
                self._embedder.query([text for text, _ in exemplars])
        self._model = LogisticRegression(C=options.regularization, max_iter=5000, class_weight="balanced")
        self._model.fit(self._features(texts, vectors), labels)
        self.labels: list[str] = list(self._model.classes_)

    def _features(self, texts: list[str], vectors: np.ndarray | None):
        parts = [vectorizer.transform(texts) for vectorizer in (self._words, self._chars) if vectorizer is not None]
        if vectors is not None:
            parts.append(sparse.csr_matrix(vectors * self.options.embedding_weight))
        return sparse.hstack(parts).tocsr()

    def embed(self, text: str) -> np.ndarray | None:
        """The turn's sentence embedding (None when the classifier uses none); pass it back to `classify`."""
        return None if self._embedder is None else self._embedder.query([text])[0]

    def probabilities(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
        if self._embedder is not None and vectors is None:
            vectors = self._embedder.query(texts)
        return self._model.predict_proba(self._features([normalise(t) for t in texts], vectors))

    def classify(self, text: str, *, vector: np.ndarray | None = None) -> Intent:
        if not text.strip():
            return Intent("other", 1.0)
        row = self.probabilities([text], None if vector is None else vector[None, :])[0]
        best = int(np.argmax(row))
        return Intent(self.labels[best], float(row[best]))


@lru_cache(maxsize=1)
def default_classifier() -> IntentClassifier:
    exemplars = read_labelled(EXEMPLARS)
    return IntentClassifier(exemplars=exemplars, embedder=shared_embedder(),
                            exemplar_vectors=exemplar_vectors(exemplars))


def exemplar_vectors(exemplars: list[tuple[str, str]]) -> np.ndarray:
    """The exemplar bank's `query` vectors, from the cache that install fills."""
    return cached_queries([text for text, _ in exemplars], name="intent-exemplars")
