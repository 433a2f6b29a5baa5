"""Rendering: placeholders filled with typed values, errors that name the variable."""

from __future__ import annotations

from typing import Any

import pytest

from llmplane.errors import InvalidRequestError
from llmplane.prompts import CompiledTemplate, PromptContent, parse_cli_value
from llmplane.prompts.template import parse_variables

_VARIABLES = {
    "customer": {"type": "string", "description": "Who writes"},
    "count": {"type": "integer", "default": 3},
    "score": {"type": "number", "required": False},
    "urgent": {"type": "boolean", "required": False},
    "order": {"type": "json", "required": False},
}


def _compile(template: Any, variables: dict[str, Any] | None = None) -> CompiledTemplate:
    return CompiledTemplate.build(template, parse_variables(variables or _VARIABLES))


def test_chat_messages_are_rendered_with_typed_values() -> None:
    template = _compile(
        [
            {"role": "system", "content": "Answer {{count}} ideas. Urgent: {{ urgent }}."},
            {"role": "user", "content": "{{ customer }} asks about {{order}} ({{ score }})"},
        ]
    )
    messages = template.render(
        {"customer": "Ada", "urgent": True, "order": {"id": 7, "items": ["a"]}, "score": 0.5}
    )
    assert messages == [
        {"role": "system", "content": "Answer 3 ideas. Urgent: true."},
        {"role": "user", "content": 'Ada asks about {"id":7,"items":["a"]} (0.5)'},
    ]


def test_a_string_template_is_one_user_message_and_values_are_not_re_rendered() -> None:
    template = _compile("Hello {{ customer }}")
    # A value that looks like a placeholder stays text: rendering is one pass, no code.
    assert template.render({"customer": "{{ count }} {% import os %}"}) == [
        {"role": "user", "content": "Hello {{ count }} {% import os %}"}
    ]


def test_escaped_and_single_braces_are_literal() -> None:
    template = _compile('JSON like {"a": 1} and \\{{ customer }} stays; {{ customer }} does not')
    assert template.render({"customer": "Bo"})[0]["content"] == (
        'JSON like {"a": 1} and {{ customer }} stays; Bo does not'
    )


@pytest.mark.parametrize(
    ("given", "param", "code"),
    [
        ({}, "prompt.variables.customer", "missing_variable"),
        ({"customer": 5}, "prompt.variables.customer", "invalid_variable"),
        ({"customer": "a", "count": "3"}, "prompt.variables.count", "invalid_variable"),
        ({"customer": "a", "count": True}, "prompt.variables.count", "invalid_variable"),
        ({"customer": "a", "count": 2.5}, "prompt.variables.count", "invalid_variable"),
        ({"customer": "a", "urgent": "yes"}, "prompt.variables.urgent", "invalid_variable"),
        ({"customer": "a", "custmer": "b"}, "prompt.variables.custmer", "unknown_variable"),
    ],
)
def test_bad_variables_are_refused_naming_the_variable(
    given: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        _compile("{{ customer }} {{ count }} {{ urgent }}").render(given)
    assert refused.value.param == param and refused.value.code == code
    assert param.rsplit(".", 1)[1] in refused.value.message


@pytest.mark.parametrize(
    ("template", "param"),
    [
        ("Hi {{ nobody }}", "variables.nobody"),
        ("Hi {{ customer", "template"),
        ("Hi {{ customer.name }}", "template"),
        ([{"role": "robot", "content": "x"}], "template[0]"),
        ([{"role": "user", "content": "{{ 1 }}"}], "template[0]"),
        ([], "template"),
    ],
)
def test_bad_templates_are_refused_when_the_version_is_created(template: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        PromptContent.parse({"template": template, "variables": _VARIABLES})
    assert refused.value.param == param


def test_content_checks_params_and_fingerprints_equal_content_equally() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        PromptContent.parse({"template": "x", "params": {"api_base": "http://evil"}})
    assert refused.value.param == "params.api_base"
    with pytest.raises(InvalidRequestError) as refused:
        PromptContent.parse(
            {"template": "{{ n }}", "variables": {"n": {"type": "integer", "default": "x"}}}
        )
    assert refused.value.param == "variables.n"
    one = PromptContent.parse({"template": "x", "params": {"temperature": 0.2, "seed": 1}})
    same = PromptContent.parse({"template": "x", "params": {"seed": 1, "temperature": 0.2}})
    other = PromptContent.parse({"template": "x", "params": {"temperature": 0.3, "seed": 1}})
    assert one.fingerprint() == same.fingerprint() != other.fingerprint()


def test_cli_values_are_parsed_by_their_declared_type() -> None:
    specs = parse_variables(_VARIABLES)
    assert parse_cli_value(specs["count"], "4") == 4
    assert parse_cli_value(specs["score"], "0.25") == 0.25
    assert parse_cli_value(specs["urgent"], "false") is False
    assert parse_cli_value(specs["order"], '{"id": 1}') == {"id": 1}
    with pytest.raises(InvalidRequestError) as refused:
        parse_cli_value(specs["count"], "four")
    assert refused.value.param == "prompt.variables.count"
