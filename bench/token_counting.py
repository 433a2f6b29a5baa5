"""CPU per request of counting a chat prompt for reservation, at 100, 1,000 and 10,000 tokens.

Usage: ``PYTHONPATH=src .venv/bin/python bench/token_counting.py [--repeat 5]``

For each prompt size it times, per call (best of ``--repeat`` rounds):

- ``count_prompt``: what the gateway does per attempt (message overhead, exact count up to
  ``EXACT_COUNT_CHARS``, a byte bound past it), for o200k (gpt-4o), cl100k (gpt-4) and the
  estimate (an unknown model: cl100k x 1.3);
- ``full count``: the same prompt counted exactly to the end, for comparison;
- ``bytes``: the prompt's UTF-8 bytes, what the gateway reserved before.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path

from llmplane.gateway.token_counters import counter_for
from llmplane.gateway.tokens import count_prompt

SOURCE = Path(__file__).resolve().parents[1] / "README.md"


def _prompt(tokens: int) -> str:
    """English text of about ``tokens`` o200k tokens (the project's README, repeated)."""
    counter = counter_for("openai", "gpt-4o")
    text = SOURCE.read_text(encoding="utf-8") * 20
    low, high = 0, len(text)
    while low < high:
        middle = (low + high) // 2
        if counter.count(text[:middle]) < tokens:
            low = middle + 1
        else:
            high = middle
    return text[:low]


def _per_call_us(call: Callable[[], object], repeat: int, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    counters = {
        "o200k (gpt-4o)": counter_for("openai", "gpt-4o"),
        "cl100k (gpt-4)": counter_for("openai", "gpt-4"),
        "estimate (unknown)": counter_for("openai", "my-llama"),
    }
    print("| prompt | counter | count_prompt µs | reserved | full count µs | exact | bytes |")
    print("|---|---|---|---|---|---|---|")
    for size in (100, 1_000, 10_000):
        text = _prompt(size)
        body = {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": text},
            ]
        }
        number = max(20, 20_000 // size)
        for name, counter in counters.items():
            reserved, _ = count_prompt(body, counter)
            exact, _ = count_prompt(body, counter, None)
            fast = _per_call_us(partial(count_prompt, body, counter), args.repeat, number)
            full = _per_call_us(partial(count_prompt, body, counter, None), args.repeat, number)
            print(
                f"| {size:,} | {name} | {fast:.1f} | {reserved:,} | {full:.1f} | {exact:,} "
                f"| {len(text.encode()):,} |"
            )


if __name__ == "__main__":
    main()
