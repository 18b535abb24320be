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
