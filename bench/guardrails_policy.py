"""Added latency of a guardrail policy on a 1,000-token chat prompt, measured in process.

Usage: ``PYTHONPATH=src .venv/bin/python bench/guardrails_policy.py [--requests 2000]
[--terms 10] [--policy blocklist|default]``

``--policy default`` measures the documented default policy instead (injection blocks and
secrets are redacted on input, secrets redacted on output); ``--policy default+pii`` adds
the ``pii`` detector's redaction on input.

The policy is what main offers without the PII extra: a ``blocklist`` of ``--terms`` terms
that blocks, and a ``blocklist`` of 8 PII- and secret-shaped regular expressions (email,
phone, card, IBAN, AWS key id, JWT, bearer token, private-key header) that redacts, on
input; the same pattern rule on output. Each sample times, around the gateway's own
calls, one request's:

- ``input``: :func:`guard_request` (the texts taken from the chat body, the rules run
  in the engine's threads with the policy's time budget, the rewrites put back);
- ``output (JSON)``: :func:`guard_reply` on a 1,000-token answer;
- ``output (stream)``: every :meth:`ChatStreamGuard.feed` of the same answer in 4-character
  chunks, added up (the window check runs every ``stream_window_chars``).

Samples run one after another on one event loop (no concurrency: this is the latency a
request adds, not throughput). The prompt holds two emails and a card number, so the
redaction path is measured, not only the scan.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import orjson

from llmplane.config.guardrails import GuardrailsConfig
from llmplane.gateway.guarded import guard_reply, guard_request
from llmplane.gateway.guarded_streams import ChatStreamGuard
from llmplane.gateway.providers.base import Endpoint, UpstreamReply
from llmplane.gateway.token_counters import counter_for
from llmplane.guardrails.engine import GuardrailEngine

SOURCE = Path(__file__).resolve().parents[1] / "README.md"
PATTERNS = [
    r"[\w.+-]+@[\w-]+\.[\w.-]+",
    r"\+?\d[\d ()-]{8,}\d",
    r"\b(?:\d[ -]?){13,16}\b",
    r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\beyJ[\w-]+\.[\w-]+\.[\w-]+",
    r"(?i)bearer\s+[\w.-]{20,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
]


# The default policy of docs/guardrails.md ("A default policy").
DEFAULT_POLICY: dict[str, object] = {
    "input": [
        {"detector": "injection", "action": "block"},
        {"detector": "secrets", "action": "redact"},
    ],
    "output": [{"detector": "secrets", "action": "redact"}],
}


def _text(tokens: int) -> str:
    """English text of about ``tokens`` o200k tokens (the README), with some PII in it."""
    counter = counter_for("openai", "gpt-4o")
    text = SOURCE.read_text(encoding="utf-8") * 5
    low, high = 0, len(text)
    while low < high:
        middle = (low + high) // 2
        if counter.count(text[:middle]) < tokens:
            low = middle + 1
        else:
            high = middle
    body = text[:low]
    third = len(body) // 3
    return (
        body[:third]
        + " mail jane.doe@example.com "
        + body[third : 2 * third]
        + " card 4111 1111 1111 1111, cc bob@example.org "
        + body[2 * third :]
    )


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


async def _measure(engine: GuardrailEngine, text: str, requests: int) -> dict[str, list[float]]:
    reply = UpstreamReply(
        orjson.dumps(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        ),
        None,
    )
    chunks = [
        b"data: "
        + orjson.dumps(
            {"id": "c", "choices": [{"index": 0, "delta": {"content": text[i : i + 4]}}]}
        )
        + b"\n\n"
        for i in range(0, len(text), 4)
    ]
    times: dict[str, list[float]] = {"input": [], "output (JSON)": [], "output (stream)": []}
    for _ in range(requests):
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        guard = engine.guard("bench", "team-1")
        started = time.perf_counter()
        await guard_request(Endpoint.CHAT, guard, body)
        times["input"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await guard_reply(Endpoint.CHAT, guard, reply)
        times["output (JSON)"].append(time.perf_counter() - started)
        stream = ChatStreamGuard(engine.guard("bench", "team-1"))
        spent = 0.0
        for chunk in chunks:
            started = time.perf_counter()
            await stream.feed(chunk)
            spent += time.perf_counter() - started
        started = time.perf_counter()
        await stream.end()
        times["output (stream)"].append(spent + time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--terms", type=int, default=10)
    parser.add_argument(
        "--text",
        choices=["technical", "prose"],
        default="technical",
        help="technical: the README (numbers, code, tables); prose: English sentences",
    )
    parser.add_argument(
        "--policy",
        choices=["blocklist", "default", "default+pii"],
        default="blocklist",
        help="blocklist: terms and PII-shaped patterns (no extras); default: the "
        "documented default policy (injection blocks, secrets redacted on input and output); "
        "default+pii: and PII redacted on input (needs llmplane[pii])",
    )
    args = parser.parse_args()
    terms = [f"codename-{i:02d}" for i in range(args.terms - 1)] + ["project falcon"]
    patterns = {"detector": "blocklist", "options": {"patterns": PATTERNS}, "action": "redact"}
    policy: dict[str, object] = {
        "input": [
            {"detector": "blocklist", "options": {"terms": terms}, "action": "block"},
            patterns,
        ],
        "output": [patterns],
    }
    if args.policy == "default":
        policy = DEFAULT_POLICY
    elif args.policy == "default+pii":
        policy = {
            **DEFAULT_POLICY,
            "input": [
                {"detector": "injection", "action": "block"},
                {"detector": "pii", "action": "redact"},  # pii includes the secret types
            ],
        }
    config = GuardrailsConfig.model_validate({"policies": {"bench": policy}, "default": "bench"})
    engine = GuardrailEngine.from_config(config)
    if args.text == "prose":
        # The same English prose with five PII items as bench/guardrails_detectors.py.
        from guardrails_detectors import _texts

        text = _texts(args.tokens)["prose + PII"]
    else:
        text = _text(args.tokens)
    sys.setswitchinterval(0.0005)  # as the gateway process runs (llmplane.gateway.server)
    try:
        asyncio.run(_measure(engine, text, 50))  # warm-up: threads started, regexes cached
        times = asyncio.run(_measure(engine, text, args.requests))
    finally:
        engine.close()
    print(
        f"{args.tokens}-token {args.text} prompt ({len(text)} characters), policy {args.policy}"
        + (f", {args.terms} blocked terms" if args.policy == "blocklist" else "")
        + f", {args.requests} requests"
    )
    print("| stage | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    for stage, samples in times.items():
        p50, p99, worst = _percentiles(samples)
        print(f"| {stage} | {p50:.3f} | {p99:.3f} | {worst:.3f} |")


if __name__ == "__main__":
    main()
