"""Offline token counters: exact counts, family selection, the tokenizer setting, images."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmplane.config.platform import parse_platform_config
from llmplane.errors import ConfigError
from llmplane.gateway.router import ModelRouter
from llmplane.gateway.token_counters import counter_for
from llmplane.gateway.tokens import EXACT_COUNT_CHARS, count_prompt, request_prompt_tokens


# Reference counts from OpenAI's cookbook ("How to count tokens with tiktoken"), which
# prints these strings' tokens under both encodings.
@pytest.mark.parametrize(
    ("text", "o200k", "cl100k"),
    [
        ("hello world", 2, 2),
        ("tiktoken is great!", 6, 6),
        ("antidisestablishmentarianism", 6, 6),
        ("お誕生日おめでとう", 8, 9),
    ],
)
def test_bundled_encodings_count_like_openai(text: str, o200k: int, cl100k: int) -> None:
    assert counter_for("openai", "gpt-4o").count(text) == o200k
    assert counter_for("openai", "gpt-4").count(text) == cl100k


@pytest.mark.parametrize(
    ("provider", "model", "name", "exact"),
    [
        ("openai", "gpt-4o-mini", "o200k_base", True),
        ("openai", "gpt-4.1-nano-2025-04-14", "o200k_base", True),
        ("openai", "gpt-5", "o200k_base", True),
        ("openai", "o3-mini", "o200k_base", True),
        ("openai", "o4-mini", "o200k_base", True),
        ("openai", "ft:gpt-4o-mini:acme::abc123", "o200k_base", True),
        ("azure", "gpt-35-turbo", "cl100k_base", True),
        ("openai", "gpt-4-turbo", "cl100k_base", True),
        ("openai", "gpt-3.5-turbo", "cl100k_base", True),
        ("openai", "text-embedding-3-small", "cl100k_base", True),
        ("openai", "text-embedding-ada-002", "cl100k_base", True),
        ("openai", "claude-sonnet-4-5", "estimate:anthropic", False),
        ("openai", "anthropic.claude-3-haiku-20240307-v1:0", "estimate:anthropic", False),
        ("openai", "gemini-2.5-flash", "estimate:gemini", False),
        ("openai", "mistral-large-latest", "estimate:mistral", False),
        ("openai", "command-r-plus", "estimate:cohere", False),
        ("openai", "meta.llama3-70b-instruct-v1:0", "estimate:bedrock", False),
        ("openai", "my-finetuned-llama", "estimate:unknown", False),
        ("mock", "mock", "mock", True),
    ],
)
def test_family_by_model_name(provider: str, model: str, name: str, exact: bool) -> None:
    counter = counter_for(provider, model)
    assert (counter.name, counter.exact) == (name, exact)


def test_estimates_lean_high_but_never_exceed_the_bytes() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    exact = counter_for("openai", "gpt-4").count(text)
    claude = counter_for("openai", "claude-opus-4").count(text)
    assert exact < claude <= len(text.encode())
    assert counter_for("openai", "claude-opus-4").count("a b") == 3  # ceil(2 * 1.5), 3 bytes


def _router(deployment: dict[str, object], **model: object) -> ModelRouter:
    config = parse_platform_config(
        {"models": [{"name": "m", "deployments": [deployment], **model}]}, file="llmplane.yaml"
    )
    return ModelRouter(config)


SELF_HOSTED = {"provider": "openai", "api_base": "http://127.0.0.1:8000/v1", "model": "llama"}


def test_tokenizer_setting_names_a_bundled_encoding() -> None:
    router = _router({**SELF_HOSTED, "tokenizer": "cl100k_base"})
    counter = router.deployments("m")[0].counter
    assert (counter.name, counter.exact) == ("cl100k_base", True)
    assert counter.count("お誕生日おめでとう") == 9
    # On the model, for every deployment that does not set its own.
    model_wide = _router(SELF_HOSTED, tokenizer="o200k_base").deployments("m")[0].counter
    assert model_wide.name == "o200k_base"


def _word_level_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "llama": 3}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    file = path / "tokenizer.json"
    tokenizer.save(str(file))
    return file


def test_tokenizer_setting_loads_a_hugging_face_tokenizer_json(tmp_path: Path) -> None:
    file = _word_level_tokenizer(tmp_path)
    counter = _router({**SELF_HOSTED, "tokenizer": str(file)}).deployments("m")[0].counter
    assert counter.exact and counter.name == "tokenizer.json:tokenizer.json"
    # Whitespace pre-tokenizer: words and punctuation; unknown words are one [UNK] each.
    assert counter.count("hello world, llama!") == 5
    body = {"messages": [{"role": "user", "content": "hello world"}]}
    assert request_prompt_tokens(body, counter) == 3 + 3 + 1 + 2


def test_a_missing_tokenizer_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _router({**SELF_HOSTED, "tokenizer": str(tmp_path / "nope.json")})
    assert caught.value.key_path == "models[0].deployments[0].tokenizer"
    assert "o200k_base, cl100k_base" in caught.value.reason


def test_a_broken_tokenizer_file_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{}")
    with pytest.raises(ConfigError) as caught:
        _router({**SELF_HOSTED, "tokenizer": str(broken)})
    assert caught.value.key_path == "m[0].tokenizer"
    assert "cannot load the tokenizer" in caught.value.reason


def test_chat_overhead_follows_openais_counting() -> None:
    counter = counter_for("openai", "gpt-4o")
    one = {"messages": [{"role": "user", "content": "hello world"}]}
    assert count_prompt(one, counter) == (3 + 3 + 1 + 2, False)  # priming, wrapper, role, text
    named = {"messages": [{"role": "user", "name": "bob", "content": "hello world"}]}
    assert count_prompt(named, counter)[0] == 9 + counter.count("bob") + 1


def test_tools_and_schemas_are_counted() -> None:
    counter = counter_for("openai", "gpt-4o")
    body: dict[str, object] = {"messages": [{"role": "user", "content": "weather?"}]}
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    plain = count_prompt(body, counter)[0]
    with_tools = count_prompt({**body, "tools": tools}, counter)[0]
    assert with_tools - plain == 12 + counter.count(json.dumps(tools, separators=(",", ":")))


@pytest.mark.parametrize(
    ("model", "detail", "tokens"),
    [
        ("gpt-4o", "low", 85),
        ("gpt-4o", "high", 1_445),  # 768x2048: 8 tiles
        ("gpt-4o", None, 1_445),
        ("gpt-4o-mini", "low", 2_833),
        ("gpt-4o-mini", "auto", 48_169),
        ("gpt-4.1-nano", "low", 3_779),  # 1,536 patches x 2.46
        ("claude-sonnet-4", "high", 1_600),
    ],
)
def test_images_reserve_their_worst_case(model: str, detail: str | None, tokens: int) -> None:
    counter = counter_for("openai", model)
    image: dict[str, str] = {"url": "https://example.com/cat.png"}
    if detail is not None:
        image["detail"] = detail
    text = {"type": "text", "text": "what is this?"}
    body = {"messages": [{"role": "user", "content": [text]}]}
    with_image = {
        "messages": [{"role": "user", "content": [text, {"type": "image_url", "image_url": image}]}]
    }
    assert count_prompt(with_image, counter)[0] - count_prompt(body, counter)[0] == tokens


def test_long_prompts_past_the_threshold_are_bounded_by_bytes() -> None:
    counter = counter_for("openai", "gpt-4o")
    head = "word " * (EXACT_COUNT_CHARS // 5)
    tail = "more text " * 1_000
    body = {"messages": [{"role": "user", "content": head}, {"role": "user", "content": tail}]}
    reserved, bounded = count_prompt(body, counter)
    full, fully_counted_bounded = count_prompt(body, counter, None)
    assert bounded and not fully_counted_bounded
    # The first role and the head use up the allowance; the rest is bounded by its bytes.
    assert len("user" + head) == EXACT_COUNT_CHARS
    assert reserved == 3 + 2 * 3 + 1 + counter.count(head) + len(b"user") + len(tail.encode())
    assert full < reserved  # the bound over-reserves, never under


def test_one_long_message_is_counted_up_to_the_threshold() -> None:
    counter = counter_for("openai", "gpt-4o")
    text = " ".join(["hello world"] * 4_000)  # 47,999 characters, 8,000 tokens
    body = {"messages": [{"role": "user", "content": text}]}
    reserved, bounded = count_prompt(body, counter)
    full, _ = count_prompt(body, counter, None)
    assert bounded and full == 3 + 3 + 1 + 8_000
    cut = text.rfind(" ", 0, EXACT_COUNT_CHARS - len("user"))
    assert reserved == 3 + 3 + 1 + counter.count(text[:cut]) + len(text) - cut
    assert full < reserved < len(text)


def test_embeddings_count_text_and_token_ids() -> None:
    counter = counter_for("openai", "text-embedding-3-small")
    assert count_prompt({"input": "hello world"}, counter)[0] == 2
    assert count_prompt({"input": ["hello world", "tiktoken is great!"]}, counter)[0] == 8
    assert count_prompt({"input": [[1, 2, 3], [4, 5]]}, counter)[0] == 5
    assert count_prompt({"input": [1, 2, 3]}, counter)[0] == 3


def test_nothing_reaches_the_network_at_import_start_or_count() -> None:
    script = textwrap.dedent(
        """
        import socket, sys

        def refuse(*args, **kwargs):
            raise RuntimeError("network access")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from llmplane.gateway.app import build_services  # noqa: F401
        from llmplane.gateway.token_counters import counter_for

        for model in ("gpt-4o", "gpt-4", "claude-3-5-sonnet", "gemini-2.0-flash", "x"):
            assert counter_for("openai", model).count("hello world") >= 2
        assert "tiktoken" not in sys.modules, "tiktoken downloads its files on first use"
        assert "bpe_openai" not in sys.modules, "its wrapper costs ~64 MiB at import"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_responses_and_messages_bodies_are_counted_too() -> None:
    """/v1/responses (instructions, input items) and /v1/messages (system, content blocks)
    reserve their prompts like chat does."""
    counter = counter_for("openai", "gpt-4o")
    words = counter.count("hello world")
    assert words == 2
    plain = {"model": "m", "input": "hello world", "instructions": "hello world"}
    assert count_prompt(plain, counter) == (2 * words, False)
    item = {"role": "user", "content": [{"type": "input_text", "text": "hello world"}]}
    items, _ = count_prompt({"model": "m", "input": [item]}, counter)
    assert items >= words + 3  # the item's text plus a message's overhead
    text = {"type": "text", "text": "hello world"}
    call = {"type": "tool_use", "id": "t1", "name": "f", "input": {"city": "hello world"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "hello world"}
    image = {"type": "image", "source": {"type": "url", "url": "https://x.example/a.png"}}
    messages = {
        "model": "m",
        "max_tokens": 10,
        "system": [text],
        "messages": [
            {"role": "user", "content": [text]},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result, image]},
        ],
    }
    total, _ = count_prompt(messages, counter)
    bare, _ = count_prompt({**messages, "messages": [{"role": "user", "content": [text]}]}, counter)
    assert bare >= 2 * words  # the system prompt counts
    assert total >= bare + words + counter.images.high  # tool result and image count too


def test_an_encoding_is_built_only_when_first_needed() -> None:
    """o200k holds ~66 MiB: a gateway whose calls are never counted never builds it."""
    script = textwrap.dedent(
        """
        from llmplane.gateway import token_counters
        counter = token_counters.counter_for("openai", "gpt-4o")
        lazy = token_counters._ENCODINGS["o200k_base"]
        assert lazy._count is None, "built at config load"
        assert counter.count("hello world") == 2
        assert lazy._count is not None
        print("lazy")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "lazy" in result.stdout
