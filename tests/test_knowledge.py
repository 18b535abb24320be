"""The knowledge base: one actionable line per problem in a business's [[faq]] entries, and retrieval measured on the
bakery evaluation set (tests/data/bakery_facts_eval.csv: caller questions worded unlike the entries' variants, and
questions the bakery's entries do not answer)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.business import BusinessProfile
from agent.knowledge import (
    MAX_ANSWER_WORDS,
    Entry,
    KnowledgeBase,
    KnowledgeError,
    RetrievalOptions,
    entries_from_facts,
    read_entries,
    vocabulary_of,
)
from stack.settings import Settings

DATA = Path(__file__).parent / "data"
BAKERY = DATA / "bakery.toml"
EVAL_SET = DATA / "bakery_facts_eval.csv"
REPO = Path(__file__).parent.parent

GOOD_ENTRY = '[[faq]]\nquestions = ["Is there parking?"]\nanswer = "Free parking behind the shop."\n'


def problems_in(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "business.toml"
    path.write_text(text)
    with pytest.raises(KnowledgeError) as caught:
        read_entries(path)
    problems = caught.value.problems
    assert all("\n" not in line and line.startswith(str(path)) for line in problems), problems
    return problems


@pytest.mark.unit
class TestValidation:
    def test_the_bakery_and_the_example_are_valid(self):
        assert len(read_entries(BAKERY)) == 18
        assert len(read_entries(REPO / "config" / "business.example.toml")) >= 5

    def test_the_business_profile_ignores_the_faq_array(self):
        profile = BusinessProfile.load(Settings.of(BUSINESS_CONFIG=str(BAKERY)))
        assert profile.business_name == "Lakeside Bakery"
        assert profile.opening_hours == "Tu-Sa 07:00-18:00; Su 08:00-13:00"
        assert profile.transfer_number == "+15550199"

    def test_no_faq_is_an_empty_knowledge_base(self, tmp_path):
        path = tmp_path / "business.toml"
        path.write_text('business_name = "Shop"\n')
        assert read_entries(path) == []

    def test_toml_syntax_error_names_the_line(self, tmp_path):
        [problem] = problems_in(tmp_path, GOOD_ENTRY + "answer =\n")
        assert "TOML syntax error" in problem and "line 4" in problem

    def test_missing_and_empty_answers(self, tmp_path):
        problems = problems_in(tmp_path, '[[faq]]\nquestions = ["Do you deliver?"]\n'
                                         '[[faq]]\nquestions = ["Do you cater?"]\nanswer = "  "\n')
        assert [p.split(": ", 1)[1] for p in problems] == [
            "[[faq]] entry 1: missing or empty answer; add answer = \"what the assistant should say\"",
            "[[faq]] entry 2: missing or empty answer; add answer = \"what the assistant should say\""]

    def test_no_questions(self, tmp_path):
        [problem] = problems_in(tmp_path, GOOD_ENTRY + '[[faq]]\nid = "x"\nquestions = []\nanswer = "Yes."\n')
        assert "[[faq]] entry 2 (id 'x'): no questions" in problem

    def test_unknown_key(self, tmp_path):
        [problem] = problems_in(tmp_path, GOOD_ENTRY + 'question = "typo"\n')
        assert "entry 1: unknown key 'question'" in problem

    def test_duplicate_id(self, tmp_path):
        entry = '[[faq]]\nid = "same"\nquestions = ["{q}"]\nanswer = "A."\n'
        [problem] = problems_in(tmp_path, entry.format(q="One?") + entry.format(q="Two?"))
        assert "entry 2 (id 'same'): duplicate id 'same' (entry 1 has it too)" in problem

    def test_duplicate_question_ignores_case_and_punctuation(self, tmp_path):
        [problem] = problems_in(tmp_path, GOOD_ENTRY + '[[faq]]\nquestions = ["is there  parking"]\nanswer = "B."\n')
        assert "entry 2: duplicate question 'is there  parking' (entry 1 has it too)" in problem

    def test_answer_too_long_to_say(self, tmp_path):
        long_answer = " ".join(["word"] * (MAX_ANSWER_WORDS + 1))
        [problem] = problems_in(tmp_path, f'[[faq]]\nquestions = ["Q?"]\nanswer = "{long_answer}"\n')
        assert f"entry 1: the answer is {MAX_ANSWER_WORDS + 1} words, too long to say on the phone" in problem
        path = tmp_path / "ok.toml"
        path.write_text(f'[[faq]]\nquestions = ["Q?"]\nanswer = "{" ".join(["word"] * MAX_ANSWER_WORDS)}"\n')
        assert len(read_entries(path)) == 1

    def test_every_problem_is_reported_at_once(self, tmp_path):
        problems = problems_in(tmp_path, '[[faq]]\nanswer = "A."\n[[faq]]\nquestions = ["Q?"]\nkeywords = "x"\n')
        assert len(problems) == 3  # no questions; missing answer; keywords not a list

    def test_cli_prints_the_count_or_one_line_per_problem(self, tmp_path):
        ok = subprocess.run([sys.executable, "cli.py", "kb", "check", str(BAKERY)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and "18 entries OK" in ok.stdout, ok.stderr
        bad = tmp_path / "bad.toml"
        bad.write_text(GOOD_ENTRY + '[[faq]]\nquestions = ["Is there parking?"]\n')
        failed = subprocess.run([sys.executable, "cli.py", "kb", "check", str(bad)], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert failed.returncode == 1
        assert failed.stderr.strip().splitlines() == [
            f"{bad}: [[faq]] entry 2: missing or empty answer; add answer = \"what the assistant should say\"",
            f"{bad}: [[faq]] entry 2: duplicate question 'Is there parking?' (entry 1 has it too); "
            "keep it in one entry only"]


@pytest.mark.unit
class TestFactsAndVocabulary:
    def test_business_facts_become_entries(self):
        entries = entries_from_facts("We are at 1 Example Street;  Parking is free ; ")
        assert entries == [Entry(id="fact-1", questions=("We are at 1 Example Street",),
                                 answer="We are at 1 Example Street"),
                           Entry(id="fact-2", questions=("Parking is free",), answer="Parking is free")]

    def test_vocabulary_keeps_keywords_and_names_once(self):
        vocabulary = vocabulary_of(read_entries(BAKERY))
        for term in ("Birch Lane", "Lakeside Park", "challah", "Apple Pay", "ciabatta"):
            assert term in vocabulary
        assert len({term.casefold() for term in vocabulary}) == len(vocabulary)
        assert not {"We", "Tuesdays", "PM", "Please"} & set(vocabulary)

    def test_names_end_at_commas_and_add_nothing_twice(self):
        entry = Entry(id="x", questions=("Q?",), answer="We sell Trek, Cannondale and Brompton bikes on Mill Street.",
                      keywords=("Mill Street",))
        assert vocabulary_of([entry]) == ["Mill Street", "Trek", "Cannondale", "Brompton"]


class TopicEmbedder:
    """One dimension per topic word, so that the test knows what is similar to what."""
    TOPICS = ("park", "cake", "pay", "other")

    def __init__(self) -> None:
        self.queries: list[str] = []

    def _vectors(self, texts: list[str]) -> np.ndarray:
        vectors = np.array([[float(topic in text.lower()) for topic in self.TOPICS] for text in texts]) + 1e-6
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def query(self, texts: list[str]) -> np.ndarray:
        self.queries += texts
        return self._vectors(texts)

    def passage(self, texts: list[str]) -> np.ndarray:
        return self._vectors(texts)


@pytest.mark.unit
class TestSearch:
    @pytest.fixture()
    def embedder(self):
        return TopicEmbedder()

    @pytest.fixture()
    def knowledge(self, embedder):
        entries = [Entry(id="parking", questions=("Where do I park?", "Is there parking?"), answer="Behind the park."),
                   Entry(id="cakes", questions=("How much is a cake?",), answer="A cake is 45 dollars."),
                   Entry(id="payment", questions=("Can I pay by card?",), answer="Cards and cash; pay at the till.")]
        return KnowledgeBase(entries, embedder=embedder)

    def test_the_matching_entry_alone(self, knowledge):
        [match] = knowledge.search("a cake for my son")
        assert match.entry.id == "cakes"
        [match] = knowledge.search("is there a park nearby?")
        assert match.entry.id == "parking" and match.score > knowledge.options.threshold

    def test_nothing_when_nothing_is_relevant(self, knowledge):
        assert knowledge.search("something other") == []
        assert knowledge.search("   ") == []

    def test_a_given_query_vector_is_not_embedded_again(self, knowledge, embedder):
        embedder.queries.clear()
        vector = embedder.query(["cake"])[0]
        [match] = knowledge.search("cake", query_vector=vector)
        assert match.entry.id == "cakes" and embedder.queries == ["cake"]

    def test_a_question_nearer_a_generic_one_than_any_entry_is_turned_down(self, embedder):
        entries = [Entry(id="cakes", questions=("a cake please",), answer="Cakes are 45 dollars."),
                   Entry(id="parking", questions=("park",), answer="Behind the park.")]
        background = embedder.query(["how to pay for a cake"])
        knowledge = KnowledgeBase(entries, embedder=embedder, background=background)
        assert [m.entry.id for m in knowledge.search("a cake")] == ["cakes"]
        assert knowledge.search("paying for a cake") == []  # the generic question is nearer than the entry
        assert [m.entry.id for m in KnowledgeBase(entries, embedder=embedder).search("paying for a cake")] == ["cakes"]

    def test_limit_and_order(self, embedder):
        entries = [Entry(id=f"cake-{n}", questions=(f"cake {n}",), answer="cake") for n in range(4)]
        entries.append(Entry(id="other", questions=("other",), answer="other"))
        knowledge = KnowledgeBase(entries, embedder=embedder, options=RetrievalOptions(threshold=0.0))
        matches = knowledge.search("cake", limit=2)
        assert [m.entry.id for m in matches] == ["cake-0", "cake-1"]
        assert knowledge.search("cake", limit=0) == []
        assert KnowledgeBase([], embedder=embedder).search("cake") == []


# --- Retrieval with the real embedding model, on the bakery evaluation set -------------------------------------------


def eval_rows() -> list[dict[str, str]]:
    with EVAL_SET.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.unit
def test_eval_set_is_consistent():
    rows = eval_rows()
    ids = {entry.id for entry in read_entries(BAKERY)}
    answerable = [row for row in rows if row["entry_id"]]
    assert len(answerable) >= 40 and len(rows) - len(answerable) >= 12
    assert {row["entry_id"] for row in answerable} <= ids
    assert all(bool(row["expect_any"]) == bool(row["entry_id"]) for row in rows)
    variants = {question.lower() for entry in read_entries(BAKERY) for question in entry.questions}
    assert not variants & {row["question"].lower() for row in rows}  # worded unlike the entries


@pytest.fixture(scope="module")
def bakery_relevance():
    from agent.embeddings import shared_embedder

    knowledge = KnowledgeBase.load(BAKERY)
    rows = eval_rows()
    vectors = shared_embedder().query([row["question"] for row in rows])
    accepted = np.array([knowledge.nearer_than_background(vector) for vector in vectors])
    return knowledge, rows, np.array([knowledge.relevance(vector) for vector in vectors]), accepted


def figures(knowledge, rows, relevance, threshold, accepted=None):
    """(top entry right, above the threshold and accepted among the answerable, nothing so among the unanswerable)."""
    best = relevance.argmax(axis=1)
    accepted = np.ones_like(relevance, dtype=bool) if accepted is None else accepted
    passes = (relevance >= threshold) & accepted
    answered = [passes[i, best[i]] and knowledge.entries[best[i]].id == row["entry_id"]
                for i, row in enumerate(rows) if row["entry_id"]]
    declined = [not passes[i, best[i]] for i, row in enumerate(rows) if not row["entry_id"]]
    return float(np.mean(answered)), float(np.mean(declined))


@pytest.mark.models
def test_retrieval_on_the_bakery_eval_set(bakery_relevance):
    knowledge, rows, relevance, accepted = bakery_relevance
    best = relevance.argmax(axis=1)
    ranked_first = np.mean([knowledge.entries[best[i]].id == row["entry_id"] for i, row in enumerate(rows)
                            if row["entry_id"]])
    print(f"\nright entry ranked first: {ranked_first:.1%}")
    print("threshold  background test  answered with the right entry  unanswerable declined")
    for threshold in (0.020, 0.025, 0.030, 0.035, 0.040, 0.045):
        for background in (False, True):
            answered, declined = figures(knowledge, rows, relevance, threshold, accepted if background else None)
            print(f"{threshold:9.3f}  {'on' if background else 'off':15s}  {answered:29.1%}  {declined:23.1%}")
    answered, declined = figures(knowledge, rows, relevance, knowledge.options.threshold, accepted)
    assert ranked_first >= 0.90
    # Measured 45 of 49 (91.8%) and 15 of 16; one question less would fail.
    assert answered >= 0.90
    assert declined >= 0.90


@pytest.mark.models
def test_search_returns_the_entry_or_nothing(bakery_relevance):
    knowledge = bakery_relevance[0]
    assert [m.entry.id for m in knowledge.search("how much for a ten inch birthday cake?")][:1] == ["custom-cake-price"]
    assert knowledge.search("are you hiring?") == []


@pytest.mark.models
def test_the_business_says_its_own_name(bakery_relevance):
    knowledge = KnowledgeBase.for_business(config_file=BAKERY, business_name="Lakeside Bakery")
    assert [m.entry.answer for m in knowledge.search("sorry, which business did I call?")][:1] == \
        ["This is Lakeside Bakery."]
    assert len(knowledge) == len(bakery_relevance[0]) + 1


@pytest.mark.models
def test_old_business_facts_still_answer():
    knowledge = KnowledgeBase.from_facts("We are at 1 Example Street; Parking is free behind the building")
    assert [m.entry.id for m in knowledge.search("is there parking?")] == ["fact-2"]
    assert knowledge.search("do you sell coffee?") == []


@pytest.mark.models
def test_near_misses_are_measured(bakery_relevance):
    """Questions right beside an entry that it does not answer (tests/data/bakery_near_misses.csv): the known weak spot
    (docs/quality.md). The floor is today's figure, so a change that reads out more wrong entries fails."""
    knowledge = KnowledgeBase.for_business(config_file=BAKERY, business_name="Lakeside Bakery")
    with (DATA / "bakery_near_misses.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    ids = {entry.id for entry in knowledge.entries}
    assert {row["entry_id"] for row in rows if row["entry_id"]} <= ids
    first = [next(iter(knowledge.search(row["question"])), None) for row in rows]
    answered = sum(match is not None and match.entry.id == row["entry_id"]
                   for match, row in zip(first, rows) if row["entry_id"])
    declined = sum(match is None for match, row in zip(first, rows) if not row["entry_id"])
    answerable = sum(bool(row["entry_id"]) for row in rows)
    print(f"\nnear misses: {declined}/{len(rows) - answerable} declined, {answered}/{answerable} answerable answered")
    assert declined >= 14 and answered >= 10


@pytest.mark.models
def test_entries_read_out_beside_the_question_mostly_come_with_an_offer_of_a_colleague():
    """agent/turn_policy.py reads an entry scored under SURE_MATCH with "If that's not what you asked, ..." and the
    offer of a colleague. Over both sets (fact questions and near misses), measured: 18 of the 31 wrong entries read
    out and 15 of the 55 right ones are under it."""
    from agent.turn_policy import SURE_MATCH

    knowledge = KnowledgeBase.for_business(config_file=BAKERY, business_name="Lakeside Bakery")
    with (DATA / "bakery_near_misses.csv").open(newline="") as file:
        rows = eval_rows() + list(csv.DictReader(file))
    right, wrong = [], []
    for row in rows:
        if matches := knowledge.search(row["question"]):
            (right if matches[0].entry.id == row["entry_id"] else wrong).append(matches[0].score < SURE_MATCH)
    print(f"\nunder SURE_MATCH {SURE_MATCH}: {sum(wrong)}/{len(wrong)} wrong entries read out, "
          f"{sum(right)}/{len(right)} right ones")
    assert sum(wrong) >= 0.5 * len(wrong) and sum(right) <= 0.3 * len(right)
