"""The business's knowledge base: `[[faq]]` entries (question variants and one spoken answer) in the business TOML
file, and the entries relevant to a caller's turn, found by sentence embeddings.

    [[faq]]
    id = "custom-cake-price"                 # optional; default "faq-<n>"
    questions = ["How much is a custom cake?", "What do you charge for a birthday cake?"]
    answer = "Custom cakes start at 45 dollars for a 6-inch cake; order two days ahead."
    keywords = ["custom cake", "6-inch"]     # optional: words the speech-to-text should know

The older BUSINESS_FACTS string still works: each ";"-separated fact becomes an entry that is its own question.

Relevance (measured on tests/data/bakery_facts_eval.csv, see tests/test_knowledge.py): an entry's similarity to the
caller's words is the mean of three views (its best question variant, its answer, and all of it as one passage),
and its relevance is that similarity minus the caller's mean similarity to the other entries. The subtraction
is what tells "a question this entry answers" from "a question about the same shop that no entry answers": e5's
cosines sit between 0.8 and 0.9 for any two sentences about cakes, so a fixed cosine threshold cannot.

A relevant entry must also be nearer the caller's words than any of ~400 generic shop questions
(agent/data/generic_shop_questions.csv, "how much is a baguette?", "do you sell gift cards?") that are not close
paraphrases of the business's own variants. That is what turns down "How much is a loaf of sourdough?" when the only
entry naming sourdough is about gluten-free bread: the caller's words are nearer a generic price question.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

GENERIC_QUESTIONS = Path(__file__).with_name("data") / "generic_shop_questions.csv"
MAX_ANSWER_WORDS = 60  # about 20 seconds of speech: longer, and callers interrupt or forget the start
ENTRY_KEYS = {"id", "questions", "answer", "keywords"}


class Embedder(Protocol):
    def query(self, texts: list[str]) -> np.ndarray: ...
    def passage(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Entry:
    id: str
    questions: tuple[str, ...]
    answer: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    entry: Entry
    score: float  # relevance: similarity above the caller's mean similarity to the other entries


@dataclass(frozen=True)
class RetrievalOptions:
    # Chosen on the bakery evaluation set (tests/test_knowledge.py prints the sweep), together with the background
    # test below: 45 of 49 answerable questions get the right entry, 15 of 16 unanswerable ones nothing.
    threshold: float = 0.030
    # The entry's nearest view (best variant or answer) may trail the nearest generic question by at most this much.
    background_margin: float = -0.02
    # Generic questions this close to one of the business's variants are its own questions, not background.
    background_overlap: float = 0.90
    # An entry's baseline is the caller's mean similarity to the *other* entries, shrunk toward this typical value as
    # if there were `background_weight` more of them, so that a knowledge base of two facts still has a sane one.
    background_similarity: float = 0.80
    background_weight: float = 4.0


class KnowledgeError(ValueError):
    """The knowledge base has problems; `problems` holds one actionable line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_entries(path: str | Path) -> list[Entry]:
    """The `[[faq]]` entries of a business TOML file (none: an empty list); KnowledgeError lists every problem."""
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KnowledgeError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise KnowledgeError([f"{path}: cannot read it ({error})"]) from None
    except tomllib.TOMLDecodeError as error:  # its message ends "(at line 7, column 12)"
        raise KnowledgeError([f"{path}: TOML syntax error: {error}"]) from None
    entries, problems = parse_entries(data.get("faq", []), source=str(path))
    if problems:
        raise KnowledgeError(problems)
    return entries


def parse_entries(tables: object, *, source: str) -> tuple[list[Entry], list[str]]:
    """Entries from the parsed `faq` array, and one line per problem ("<source>: [[faq]] entry 3 ...")."""
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        return [], [f"{source}: 'faq' must be a list of [[faq]] tables, "
                    "each with questions = [...] and answer = \"...\""]
    entries: list[Entry] = []
    problems: list[str] = []
    ids_seen: dict[str, int] = {}
    questions_seen: dict[str, int] = {}
    for number, table in enumerate(tables, start=1):
        entry_id = table.get("id", f"faq-{number}")
        where = f"{source}: [[faq]] entry {number}" + (f" (id {entry_id!r})" if "id" in table else "")
        problem_count = len(problems)

        def problem(text: str, where: str = where) -> None:  # bound now: `where` changes with each entry
            problems.append(f"{where}: {text}")

        if unknown := sorted(set(table) - ENTRY_KEYS):
            problem(f"unknown key {', '.join(map(repr, unknown))}; an entry has only id, questions, answer, keywords")
        if not isinstance(entry_id, str) or not entry_id.strip():
            problem("id must be a non-empty string, like id = \"parking\"")
        elif entry_id in ids_seen:
            problem(f"duplicate id {entry_id!r} (entry {ids_seen[entry_id]} has it too); give each entry its own id")
        else:
            ids_seen[entry_id] = number

        answer = table.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            problem("missing or empty answer; add answer = \"what the assistant should say\"")
        elif (words := len(answer.split())) > MAX_ANSWER_WORDS:
            problem(f"the answer is {words} words, too long to say on the phone; keep it to {MAX_ANSWER_WORDS} "
                    "or split it into two entries")

        questions = table.get("questions")
        if not _string_list(questions) or not any(question.strip() for question in questions):
            problem("no questions; add questions = [\"How might a caller ask this?\", ...]")
            questions = []
        elif any(not question.strip() for question in questions):
            problem("a question is empty; remove the \"\" from questions")
        for question in questions:
            key = _normalised(question)
            if key and key in questions_seen:
                other = questions_seen[key]
                problem(f"duplicate question {question!r} (entry {other} has it too); keep it in one entry only")
            elif key:
                questions_seen[key] = number

        keywords = table.get("keywords", [])
        if not _string_list(keywords):
            problem("keywords must be a list of strings, like keywords = [\"sourdough\", \"Birch Lane\"]")
            keywords = []

        if len(problems) == problem_count:
            entries.append(Entry(id=entry_id.strip(), answer=" ".join(answer.split()),
                                 questions=tuple(q.strip() for q in questions if q.strip()),
                                 keywords=tuple(k.strip() for k in keywords if k.strip())))
    return entries, problems


def entries_from_facts(text: str) -> list[Entry]:
    """BUSINESS_FACTS: each ";"-separated fact is an entry that answers questions like itself."""
    facts = [" ".join(fact.split()) for fact in text.split(";")]
    return [Entry(id=f"fact-{number}", questions=(fact,), answer=fact)
            for number, fact in enumerate(filter(None, facts), start=1)]


def profile_entries(business_name: str) -> list[Entry]:
    """What every business's knowledge base answers without being told: its own name."""
    if not business_name.strip():
        return []
    return [Entry(id="business-name", answer=f"This is {business_name.strip()}.",
                  questions=("Which business did I call?", "What's the name of your business?", "Who am I talking to?",
                             "What company is this?"))]


class KnowledgeBase:
    """Entries embedded once at construction; `search` finds those relevant to what the caller said."""

    def __init__(self, entries: Sequence[Entry], *, embedder: Embedder | None = None,
                 options: RetrievalOptions = RetrievalOptions(), background: np.ndarray | None = None) -> None:
        """`background`: query vectors of questions no entry answers (default, with the real embedder: the generic
        shop questions; with another embedder: none)."""
        self.entries = tuple(entries)
        self.options = options
        if embedder is None and self.entries:
            from .embeddings import shared_embedder

            embedder = shared_embedder()
            if background is None:
                background = generic_question_vectors()
        self._embedder = embedder
        if not self.entries:
            return
        questions = [question for entry in self.entries for question in entry.questions]
        # The question variants are embedded as queries: caller-to-variant is question-to-question, a symmetric task.
        self._question_vectors = embedder.query(questions)
        self._question_starts = np.cumsum([0] + [len(entry.questions) for entry in self.entries[:-1]])
        self._answer_vectors = embedder.passage([entry.answer for entry in self.entries])
        self._entry_vectors = embedder.passage([" ".join((*entry.questions, entry.answer)) for entry in self.entries])
        # BUSINESS_FACTS items are statements, not questions: a generic question is always nearer, so they are exempt.
        self._stated_only = np.array([entry.questions == (entry.answer,) for entry in self.entries])
        self._background = np.zeros((0, self._question_vectors.shape[1]), dtype=np.float32)
        if background is not None and len(background):
            own = (background @ self._question_vectors.T).max(axis=1) >= options.background_overlap
            self._background = background[~own]

    @classmethod
    def load(cls, path: str | Path, *, facts: str = "", embedder: Embedder | None = None,
             options: RetrievalOptions = RetrievalOptions()) -> KnowledgeBase:
        """The `[[faq]]` entries of a business TOML file, plus BUSINESS_FACTS items if given."""
        return cls([*read_entries(path), *entries_from_facts(facts)], embedder=embedder, options=options)

    @classmethod
    def from_facts(cls, text: str, *, embedder: Embedder | None = None,
                   options: RetrievalOptions = RetrievalOptions()) -> KnowledgeBase:
        return cls(entries_from_facts(text), embedder=embedder, options=options)

    @classmethod
    def for_business(cls, *, config_file: str | Path = "", facts: str = "", business_name: str = "",
                     embedder: Embedder | None = None) -> KnowledgeBase:
        """What a business configured: BUSINESS_CONFIG's `[[faq]]` entries and BUSINESS_FACTS (either may be absent),
        and its name."""
        return cls(business_entries(config_file=config_file, facts=facts, business_name=business_name),
                   embedder=embedder)

    def __len__(self) -> int:
        return len(self.entries)

    def _views(self, query_vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per entry, the caller's similarity to its best question variant and to its answer; and the vector."""
        query_vector = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        best_question = np.maximum.reduceat(self._question_vectors @ query_vector, self._question_starts)
        return best_question, self._answer_vectors @ query_vector, query_vector

    def relevance(self, query_vector: np.ndarray) -> np.ndarray:
        """Each entry's relevance to the caller's (query-embedded) words; the threshold applies to these."""
        if not self.entries:
            return np.zeros(0, dtype=np.float32)
        return self._relevance(*self._views(query_vector))

    def _relevance(self, best_question: np.ndarray, answer: np.ndarray, query_vector: np.ndarray) -> np.ndarray:
        similarity = (best_question + answer + self._entry_vectors @ query_vector) / 3
        options = self.options
        others = similarity.sum() - similarity
        background = ((others + options.background_weight * options.background_similarity)
                      / (len(similarity) - 1 + options.background_weight))
        return similarity - background

    def nearer_than_background(self, query_vector: np.ndarray) -> np.ndarray:
        """Per entry: whether the caller's words are about as near it as to any generic question (True when there
        is no background, and for BUSINESS_FACTS items)."""
        return self._nearer_than_background(*self._views(query_vector))

    def _nearer_than_background(self, best_question: np.ndarray, answer: np.ndarray,
                                query_vector: np.ndarray) -> np.ndarray:
        if not len(self._background):
            return np.ones(len(self.entries), dtype=bool)
        nearest_generic = (self._background @ query_vector).max()
        near = np.maximum(best_question, answer) - nearest_generic >= self.options.background_margin
        return near | self._stated_only

    def search(self, text: str, *, limit: int = 3, query_vector: np.ndarray | None = None) -> list[Match]:
        """The entries above the relevance threshold and nearer than the background, most relevant first. Pass
        `query_vector` (the turn's `Embedder.query` vector of `text`) when it is already computed, to save embedding
        it again."""
        if not self.entries or limit <= 0:
            return []
        if query_vector is None:
            if not text.strip():
                return []
            query_vector = self._embedder.query([text])[0]
        views = self._views(query_vector)  # computed once for both tests
        scores = self._relevance(*views)
        accepted = (scores >= self.options.threshold) & self._nearer_than_background(*views)
        ranked = np.argsort(-scores, kind="stable")[:limit]
        return [Match(entry=self.entries[i], score=float(scores[i])) for i in ranked if accepted[i]]

    def vocabulary(self) -> list[str]:
        """Distinctive words for the speech-to-text prompt: the entries' keywords, then the names in the answers
        ("Birch Lane", "Apple Pay"); case-insensitively unique, in order."""
        return vocabulary_of(self.entries)


def business_entries(*, config_file: str | Path = "", facts: str = "", business_name: str = "") -> list[Entry]:
    """The entries of `KnowledgeBase.for_business`, unembedded: BUSINESS_CONFIG's `[[faq]]`, BUSINESS_FACTS (or the
    TOML's own business_facts key, as BusinessProfile reads it) and the business's name."""
    entries = []
    if config_file:
        if not facts:
            facts = str(_toml_value(config_file, "business_facts") or "")
        entries = read_entries(config_file)
    return [*entries, *entries_from_facts(facts), *profile_entries(business_name)]


def generic_questions(path: Path = GENERIC_QUESTIONS) -> list[str]:
    """Questions callers ask small businesses of many kinds: the background no business's entry should beat."""
    with path.open(newline="", encoding="utf-8") as file:
        return [row["question"] for row in csv.DictReader(file)]


def generic_question_vectors() -> np.ndarray:
    """The generic questions' `query` vectors, from the cache that install fills."""
    from .embeddings import cached_queries

    return cached_queries(generic_questions(), name="generic-questions")


def vocabulary_of(entries: Sequence[Entry]) -> list[str]:
    terms = [keyword for entry in entries for keyword in entry.keywords]
    terms += [name for entry in entries for name in _names(entry.answer)]
    unique: list[str] = []
    for term in terms:  # "Mill" adds nothing after "Mill Street"
        if not any(re.search(rf"\b{re.escape(term)}\b", kept, re.IGNORECASE) for kept in unique):
            unique.append(term)
    return unique


# Capitalised words that are not names.
_COMMON = {"i", "we", "our", "you", "your", "yes", "no", "am", "pm", "a", "an", "the", "and", "or", "it", "please",
           "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "mondays", "tuesdays",
           "wednesdays", "thursdays", "fridays", "saturdays", "sundays"}


def _names(text: str) -> list[str]:
    """Runs of capitalised words that do not start a sentence: "Lakeside Park", "Apple Pay", "Google Pay"."""
    names = []
    for sentence in re.split(r"(?<=[.!?;:])\s+", text):
        # A comma ends a name ("Trek, Cannondale"); the sentence's first word is capitalised anyway.
        words = re.findall(r"[A-Za-z][\w'&-]*|,", sentence)[1:]
        run: list[str] = []
        for word in [*words, ""]:
            if word[:1].isupper() and word.casefold() not in _COMMON:
                run.append(word)
            elif run:
                names.append(" ".join(run))
                run = []
    return names


def _normalised(question: str) -> str:
    return " ".join(re.findall(r"\w+", question.casefold()))


def _string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _toml_value(path: str | Path, key: str) -> object:
    try:
        return tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8")).get(key)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # read_entries reports the file's problem
