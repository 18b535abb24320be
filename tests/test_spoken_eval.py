"""The spoken evaluation's scoring (bench/spoken_eval.py) on hand-made calls, and its scenario file."""

import pytest

from bench.report import replace_section
from bench.spoken_eval import (
    SCENARIOS,
    Line,
    Outcome,
    Scenario,
    ScenarioError,
    load_scenarios,
    mentions,
    score_call,
    summary_table,
)
from tools.softphone import CallResult, Turn

pytestmark = pytest.mark.unit

TRANSFER = "+15550199"


def call(*replies: str | None, hangup_by: str = "caller", refer_to: str | None = None) -> CallResult:
    turns = [Turn(source=f"line{i}", speech_ms=1500.0, speech_end_ms=3000.0 + 6000 * i, reply_text=reply,
                  voice_to_voice_ms=None if reply is None else 2000.0) for i, reply in enumerate(replies)]
    return CallResult(ok=True, answered_ms=400.0, greeting_text="Thanks for calling Lakeside Bakery.", turns=turns,
                      hangup_by=hangup_by, refer_to=refer_to)


def failed(scenario: Scenario, result: CallResult) -> list[str]:
    return [check.what for check in score_call(scenario, result, transfer_number=TRANSFER) if not check.met]


SATURDAY = Scenario(name="saturday", lines=(Line(say="What time do you close on Saturday?", expect_any=("6", "six")),))
PRICE = Scenario(name="price", lines=(Line(say="How much is a loaf of sourdough?",
                                           expect_any=("don't know", "colleague", "message"),
                                           expect_none=("$", "dollar")),), no_refer=True)


def test_a_reply_with_a_keyword_passes_and_one_without_fails():
    assert failed(SATURDAY, call("On Saturday we close at 6 PM.")) == []
    assert failed(SATURDAY, call("On Saturdays we close at six.")) == []
    assert failed(SATURDAY, call("We're open Tuesday to Saturday.")) == ["reply 1 mentions one of ['6', 'six']"]


def test_the_table_counts_the_replies_that_ask_the_caller_to_repeat():
    result = call("Sorry, I didn't catch that. Could you say it again?", "On Saturday we close at 6 PM.")
    row = summary_table([Outcome("piper", SATURDAY, result, score_call(SATURDAY, result, transfer_number=TRANSFER),
                                 greeting_ok=True)], ["piper"])[2]
    assert "| 1/2 |" in row, row


def test_numbers_match_whole_and_words_match_where_they_start():
    assert not mentions("We close at 16:00", "6") and not mentions("sixty loaves", "6")
    assert mentions("We close at 6:00.", "6") and mentions("we're CLOSED on Mondays", "close")
    assert mentions("It’s gluten-free", "it's gluten free")
    assert not mentions("someone will call", "one")


def test_an_invented_price_fails_even_when_the_reply_sounds_right():
    honest = call("I don't know that, but I can take a message.")
    invented = call("I don't know exactly, I think it's $7.")
    assert failed(PRICE, honest) == []
    assert failed(PRICE, invented) == ["reply 1 mentions none of ['$', 'dollar']"]
    assert failed(PRICE, call("A loaf is seven dollars.")) == ["reply 1 mentions one of ["
                                                               "\"don't know\", 'colleague', 'message']",
                                                               "reply 1 mentions none of ['$', 'dollar']"]


def test_a_reply_that_never_came_fails_every_check_of_its_line():
    assert len(failed(PRICE, call(None))) == 2
    two_lines = Scenario(name="two", lines=(Line(say="Hi", expect_any=("hello",)),
                                            Line(say="Address?", expect_any=("birch",))))
    assert failed(two_lines, call("Hello there!")) == ["reply 2 mentions one of ['birch']"]


def test_a_bye_where_none_is_due_fails():
    hold = Scenario(name="hold", lines=(Line(say="Hold on a second, please."),), expect_no_bye=True)
    assert failed(hold, call("Sure, take your time.")) == []
    assert failed(hold, call("Goodbye!", hangup_by="agent")) == ["the agent does not hang up"]


def test_a_bye_that_is_due_must_come_after_the_last_line():
    goodbye = Scenario(name="bye", lines=(Line(say="Where are you?"), Line(say="Thanks, bye.")), expect_bye=True)
    assert failed(goodbye, call("At 14 Birch Lane.", "Goodbye!", hangup_by="agent")) == []
    assert failed(goodbye, call("At 14 Birch Lane.", "Goodbye!")) == ["the agent hangs up after the last line"]
    hung_up_early = call("Goodbye!", hangup_by="agent")
    assert failed(goodbye, hung_up_early) == ["the agent hangs up after the last line"]


def test_transfers_are_checked_against_the_number():
    person = Scenario(name="person", lines=(Line(say="Can I speak to a person?"),), expect_refer=True)
    assert failed(person, call("Transferring you now.", refer_to="<tel:+15550199>")) == []
    assert failed(person, call("Transferring you now.", refer_to="<tel:+15550100>")) == ["a REFER to +15550199"]
    assert failed(person, call("Sure.")) == ["a REFER to +15550199"]
    assert failed(PRICE, call("I don't know, let me transfer you.", refer_to="tel:+15550199")) == ["no REFER"]


def test_the_scenario_file_loads_and_covers_enough():
    plan = load_scenarios()
    assert len(plan.scenarios) >= 32
    assert plan.transfer_number == TRANSFER and plan.profile == "tests/data/bakery.toml"
    assert any(s.expect_bye for s in plan.scenarios) and any(s.expect_no_bye for s in plan.scenarios)
    assert any(s.expect_refer for s in plan.scenarios) and any(s.no_refer for s in plan.scenarios)
    assert all(1 <= len(s.lines) <= 3 for s in plan.scenarios)
    assert SCENARIOS.is_file()


def test_a_misspelt_key_is_an_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[call]]\nname = "x"\n[[call.line]]\nsay = "Hi"\nexpect_non = ["$"]\n')
    with pytest.raises(ScenarioError, match="expect_non"):
        load_scenarios(path)


def test_writing_replaces_only_our_section(tmp_path):
    doc = tmp_path / "quality.md"
    replace_section(doc, "bench/spoken_eval.py", "first")
    assert doc.read_text().startswith("# Quality\n")
    doc.write_text(doc.read_text() + "\n## Someone else's section\nkeep me\n")
    replace_section(doc, "bench/spoken_eval.py", "second")
    text = doc.read_text()
    assert "second" in text and "first" not in text and "keep me" in text
