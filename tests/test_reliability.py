"""The reliability suite's fast subset (bench/reliability.py, small counts) on the shared test stack: the same
scenario functions `make reliability` runs in full and writes to docs/reliability.md. Each test fails when its
scenario's expectation breaks; the scenarios restore the stack (restarted components are healthy again) so the tests
after them find it as it was.

The burst and endpoint-killed scenarios are not run here: tests/test_call_agent.py places the same calls in `make
test` (a burst of 2 x capacity + 1 once, with the busy message transcribed; the endpoint killed once, with the apology
transcribed and the transfer checked) with the same helpers (bench.reliability's wait_until_no_calls, kill_endpoint,
agent_publishes_audio); how the burst's callers are judged is unit-tested in tests/test_reliability_verdicts.py."""

from __future__ import annotations

import pytest

from bench import reliability
from bench.sip_probe import UNEXPECTED, load_corpus
from tests.support.carrier import in_test_namespace

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not in_test_namespace(), reason="needs the test namespace: run through scripts/netns.sh"),
]
FAST_SEQUENTIAL_CALLS = 5


@pytest.fixture(scope="module")
def suite(agent_stack) -> reliability.Suite:
    suite = reliability.Suite(agent_stack.settings, sequential_calls=FAST_SEQUENTIAL_CALLS)
    print(suite.warm_up())
    return suite


def run(suite: reliability.Suite, name: str) -> reliability.Outcome:
    reliability.wait_until_no_calls(suite.settings)
    outcome = reliability.SCENARIOS[name].run(suite)
    print(f"{name}: {outcome.happened}\n{outcome.figures}")
    return outcome


def test_the_registry_keeps_the_report_order():
    names = list(reliability.SCENARIOS)
    assert names.index("sequential-calls") < names.index("burst") < names.index("agent-killed") \
        < names.index("endpoint-killed") < names.index("livekit-server-restart")


def test_the_sip_corpus_is_complete_and_says_what_rfc_3261_expects():
    corpus = load_corpus()
    assert len(corpus) >= 20
    for entry in corpus:
        assert entry.what and "RFC" in entry.rfc, entry.name
        assert len(entry.expect) == len(entry.messages), entry.name


def test_sequential_calls_are_all_greeted(suite):
    outcome = run(suite, "sequential-calls")
    assert outcome.figures["failed"] == "0", outcome.happened


def test_endpoint_abuse_gets_the_right_status_each_and_no_crash(suite):
    outcome = run(suite, "endpoint-abuse")
    assert outcome.ok, "\n".join(outcome.details)


def test_after_a_livekit_server_restart_the_agent_registers_and_the_next_call_is_answered(suite):
    outcome = run(suite, "livekit-server-restart")
    assert outcome.ok, outcome.happened


def test_after_a_redis_restart_the_trunk_and_rule_remain_and_the_next_call_is_answered(suite):
    outcome = run(suite, "redis-restart")
    assert outcome.figures["trunks / rules kept"] == "yes", outcome.happened
    assert outcome.ok, outcome.happened


def test_malformed_sip_leaves_livekit_sip_up_and_a_normal_call_works(suite):
    outcome = run(suite, "malformed-sip")
    assert "same pid" in outcome.happened, outcome.happened
    unexpected = [line for line in outcome.details if line.rstrip().endswith(f"| {UNEXPECTED} |")]
    assert not unexpected, "\n".join(unexpected)
    assert outcome.figures["normal call greeted after"] != "-", outcome.happened
    assert outcome.ok, outcome.happened


def test_a_caller_whose_agent_is_killed_is_released_and_the_next_call_answered(suite):
    outcome = run(suite, "agent-killed")
    assert outcome.figures["next call greeted after kill"] != "-", outcome.happened
    assert outcome.figures["calls until greeted"] == "1", outcome.happened  # it rang while no worker was registered
    assert outcome.ok, outcome.happened
