"""The local endpoint's parser for the tool calls Qwen writes as text."""

import json

import pytest

from local_openai.tool_calls import ToolCallParser, parse_tool_calls

pytestmark = pytest.mark.unit
TOOLS = {"end_call", "transfer_to_human", "get_current_time"}


def run(chunks, tools=TOOLS):
    parser = ToolCallParser(tools)
    streamed = "".join(parser.feed(chunk) for chunk in chunks)
    rest, calls = parser.finish()
    return streamed + rest, calls


@pytest.mark.parametrize("output", [
    '<tool_call>\n{"name": "end_call", "arguments": {}}\n</tool_call>',
    '{"name": "end_call", "arguments": {}}',
    '{{"name": "end_call", "arguments": {}}}',
    '  {"name": "end_call", "arguments": "{}"}',
    '```json\n{\n  "name": "end_call",\n  "arguments": {}\n}\n```',
    '<tools>\n{"name": "end_call", "arguments": {}}\n</tools>',
])
def test_each_form_becomes_a_call(output):
    text, calls = run([output])
    assert text.strip() == ""
    assert [c.name for c in calls] == ["end_call"]
    assert json.loads(calls[0].arguments) == {}
    assert calls[0].id.startswith("call_")


def test_call_split_across_many_deltas():
    output = '<tool_call>\n{"name": "transfer_to_human", "arguments": {"reason": "billing"}}\n</tool_call>'
    text, calls = run([output[i:i + 3] for i in range(0, len(output), 3)])
    assert text == ""
    assert calls[0].name == "transfer_to_human"
    assert json.loads(calls[0].arguments) == {"reason": "billing"}


def test_plain_text_streams_immediately():
    parser = ToolCallParser(TOOLS)
    assert parser.feed("Sure, ") == "Sure, "
    assert parser.feed("we open at nine.") == "we open at nine."
    assert parser.finish() == ("", [])


def test_text_before_a_call_is_streamed_and_the_call_parsed():
    chunks = ["Goodbye, have a nice day! ", "<tool", "_call>", '{"name": "end_call", "arguments": {}}', "</tool_call>"]
    text, calls = run(chunks)
    assert text == "Goodbye, have a nice day! "
    assert [c.name for c in calls] == ["end_call"]


def test_a_partial_tag_at_the_end_of_a_delta_is_held_not_spoken():
    parser = ToolCallParser(TOOLS)
    assert parser.feed("Okay. <tool") == "Okay. "
    assert parser.feed("s are fun") == "<tools are fun"


def test_unknown_tool_is_not_emitted_and_json_is_not_spoken():
    text, calls = run(['{"name": "launch_rocket", "arguments": {}}'])
    assert calls == [] and text == ""


def test_two_calls():
    calls = parse_tool_calls('<tool_call>{"name": "get_current_time", "arguments": {}}</tool_call>\n'
                             '<tool_call>{"name": "end_call", "arguments": {}}</tool_call>', TOOLS)
    assert [c.name for c in calls] == ["get_current_time", "end_call"]


def test_without_tools_everything_is_text():
    text, calls = run(['{"name": "end_call"}'], tools=set())
    assert text == '{"name": "end_call"}' and calls == []


def test_a_fenced_answer_that_is_no_call_is_still_spoken():
    text, calls = run(["```", "Hello there", "```"])
    assert calls == [] and text.strip() == "Hello there"


def test_an_unclosed_call_is_repaired_and_invented_arguments_dropped():
    parser = ToolCallParser(TOOLS, parameters={"end_call": set()})
    parser.feed('{"name": "end_call", "arguments": {"type": "object", "value": "Goodbye!"}')
    text, calls = parser.finish()
    assert text == "" and [c.name for c in calls] == ["end_call"]
    assert json.loads(calls[0].arguments) == {}


def test_declared_arguments_are_kept():
    calls = parse_tool_calls('{"name": "transfer_to_human", "arguments": {"reason": "billing", "x": 1}}', TOOLS,
                             parameters={"transfer_to_human": {"reason"}})
    assert json.loads(calls[0].arguments) == {"reason": "billing"}


def test_a_call_is_complete_only_once_its_json_closes():
    parser = ToolCallParser(TOOLS)
    parser.feed("Sure. ")
    assert not parser.has_complete_call()
    parser.feed('<tool_call>\n{"name": "end_call", "arguments": {')
    assert not parser.has_complete_call()
    parser.feed("}}")
    assert parser.has_complete_call()


def test_a_closed_call_to_an_unknown_tool_is_not_complete():
    parser = ToolCallParser(TOOLS)
    parser.feed('{"name": "book_flight", "arguments": {}}')
    assert not parser.has_complete_call()
