"""Token usage as upstreams report it: chat's names and the Responses API's."""

from __future__ import annotations

from llmplane.gateway.providers.base import Usage
from llmplane.gateway.tokens import extract_usage


def test_chat_usage_with_cached_prompt_tokens() -> None:
    usage = Usage.from_openai(
        {"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 6}}
    )
    assert usage == Usage(10, 4, 6)


def test_responses_usage_with_cached_input_tokens() -> None:
    body = (
        b'{"id":"resp_1","object":"response","output":[],"usage":{"input_tokens":12,'
        b'"input_tokens_details":{"cached_tokens":8},"output_tokens":5,'
        b'"output_tokens_details":{"reasoning_tokens":3},"total_tokens":17}}'
    )
    assert extract_usage(body) == Usage(12, 5, 8)


def test_malformed_usage_is_none() -> None:
    assert Usage.from_openai({"input_tokens": "many"}) is None
    assert Usage.from_openai({"total_tokens": 3}) is None
    assert Usage.from_openai(None) is None
