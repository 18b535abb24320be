"""The benchmark reads the agent's per-turn metrics from its log, in both the JSON and the plain log format."""

import json

import pytest

from bench.stack_metrics import AgentLog, stage_p50s

pytestmark = pytest.mark.unit


def test_turn_metrics_are_read_from_new_log_lines_only(tmp_path):
    log = tmp_path / "agent.log"
    log.write_text('{"message": "turn metrics {\\"role\\": \\"assistant\\", \\"e2e_latency\\": 9.0}"}\n')
    reader = AgentLog(log)
    turns = [{"role": "assistant", "e2e_latency": 1.5, "llm_node_ttft": 0.5},
             {"role": "assistant", "e2e_latency": 2.5, "llm_node_ttft": 0.7}]
    with open(log, "a") as out:
        out.write(json.dumps({"message": f"turn metrics {json.dumps(turns[0])}", "level": "INFO"}) + "\n")
        out.write(f"2026-11-25 INFO agent turn metrics {json.dumps(turns[1])}\n")
        out.write('{"message": "registered worker"}\n')
    assert reader.new_turn_metrics() == turns
    assert reader.new_turn_metrics() == []
    p50 = stage_p50s(turns)
    assert p50["e2e_latency"] == 2000 and p50["llm_node_ttft"] == 600 and p50["tts_node_ttfb"] is None


def test_the_lines_share_is_told_apart_per_call_by_the_room(tmp_path):
    """Two calls at once: each caller's turn is matched with the agent's metrics from its own room only."""
    from types import SimpleNamespace

    from bench.stack_metrics import line_delays

    def call(speech_end_s, reply_s):
        turn = SimpleNamespace(speech_end_ms=speech_end_s * 1000, reply_start_ms=reply_s * 1000)
        return SimpleNamespace(started_at=0.0, turns=[turn])

    # Both callers stop speaking at 10 s; the agent hears caller 02 at 10.1 and 12 at 10.3, and answers them at
    # 11.0 and 11.2; the callers hear the replies at 11.2 and 11.6.
    metrics = [
        {"room": "call-_+•••••••02_abc", "transcription_delay": 0.5, "stopped_speaking_at": 10.1},
        {"room": "call-_+•••••••12_def", "transcription_delay": 0.5, "stopped_speaking_at": 10.3},
        {"room": "call-_+•••••••02_abc", "e2e_latency": 0.9, "started_speaking_at": 11.0},
        {"room": "call-_+•••••••12_def", "e2e_latency": 0.9, "started_speaking_at": 11.2},
    ]
    shares = line_delays([call(10, 11.2), call(10, 11.6)], metrics, 0.0, ["+15550202", "+15550212"])
    assert shares["in"] == pytest.approx(200) and shares["out"] == pytest.approx(300)
    # Told apart by time alone, each caller would take the nearest metrics, whoever's they were.
    assert line_delays([call(10, 11.2), call(10, 11.6)], metrics, 0.0)["in"] == pytest.approx(100)
