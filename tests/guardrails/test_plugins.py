"""Platform plugins: detector modules imported by name, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplane.guardrails.registry import PluginError, build_detector, load_plugins


def test_a_plugin_module_is_imported_once_and_its_detectors_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lp_counting_guards.py").write_text(
        "from llmplane.guardrails.base import Verdict\n"
        "from llmplane.guardrails.registry import register_detector\n"
        "IMPORTS = globals().get('IMPORTS', 0) + 1\n\n"
        "@register_detector('lp_refunds')\n"
        "class Refunds:\n"
        "    name = 'lp_refunds'\n"
        "    def __init__(self, word='refund'):\n"
        "        self.word = word\n"
        "    def check(self, text, context=None):\n"
        "        return Verdict(self.name, self.word in text)\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugins(["lp_counting_guards"]) == {"lp_counting_guards": ["lp_refunds"]}
    assert load_plugins(["lp_counting_guards"]) == {"lp_counting_guards": ["lp_refunds"]}
    import lp_counting_guards  # type: ignore[import-not-found]

    assert lp_counting_guards.IMPORTS == 1
    assert build_detector("lp_refunds", {"word": "credit"}).check("a credit note").flagged


@pytest.mark.parametrize(
    ("module", "error"),
    [
        ("lp_no_such_module", "'lp_no_such_module' could not be imported: ModuleNotFoundError"),
        ("../etc/passwd", "is not a module name"),
        ("", "is not a module name"),
    ],
)
def test_a_plugin_that_cannot_load_is_named(module: str, error: str) -> None:
    with pytest.raises(PluginError, match=error):
        load_plugins([module])
    with pytest.raises(TypeError):
        load_plugins("lp_no_such_module")  # a string, not a list of names


def test_a_plugin_cannot_take_a_built_in_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lp_greedy_guards.py").write_text(
        "from llmplane.guardrails.registry import register_detector\n"
        "register_detector('pii')(object)\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="'lp_greedy_guards' could not be imported: ValueError"):
        load_plugins(["lp_greedy_guards"])
