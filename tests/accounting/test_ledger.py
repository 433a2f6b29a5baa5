"""The usage ledger: batched, exact, drained on close, and patient with a failing store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from llmplane.accounting.ledger import UsageLedger, UsageRecord
from llmplane.accounting.spend import spend_summary
from llmplane.store import create_engine, migrate
from llmplane.store.tables import usage_ledger
from tests.helpers import usage_row


def _row(i: int, key: str = "key_a", model: str = "mock", cost: int = 1500) -> UsageRecord:
    row: UsageRecord = usage_row(f"req_{i}", cost, model=model, key_id=key)
    return row


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(usage_ledger)).scalar_one())


async def test_rows_are_written_in_batches_and_drained_on_close(engine: Engine) -> None:
    ledger = UsageLedger(engine, batch_size=100, flush_interval_s=0.05)
    ledger.start()
    for i in range(1050):
        ledger.record(_row(i))
    await ledger.close()
    assert _count(engine) == 1050


async def test_overflow_keeps_rows_when_the_queue_is_full(engine: Engine) -> None:
    ledger = UsageLedger(engine, queue_size=100, batch_size=50, overflow_limit=1000)
    for i in range(600):  # the writer is not running yet: 100 queued, 500 overflow
        ledger.record(_row(i))
    assert ledger.depth == 600 and ledger.dropped == 0
    ledger.start()
    await ledger.flush()
    assert _count(engine) == 600
    await ledger.close()


async def test_rows_beyond_the_overflow_limit_are_counted_as_dropped(engine: Engine) -> None:
    ledger = UsageLedger(engine, queue_size=100, overflow_limit=10)
    for i in range(120):
        ledger.record(_row(i))
    assert ledger.dropped == 10
    ledger.start()
    await ledger.close()
    assert _count(engine) == 110


async def test_a_failing_store_delays_rows_but_loses_none(tmp_path: Path) -> None:
    store = create_engine(f"sqlite:///{tmp_path / 'late.db'}")  # no tables yet: writes fail
    ledger = UsageLedger(store, flush_interval_s=0.01)
    ledger.start()
    for i in range(20):
        ledger.record(_row(i))
    await asyncio.sleep(0.3)
    migrate(store)  # the store comes back
    await asyncio.wait_for(ledger.flush(), 10)
    assert _count(store) == 20
    await ledger.close()


async def test_spend_summary_sums_exactly(engine: Engine) -> None:
    ledger = UsageLedger(engine)
    ledger.start()
    for i in range(30):
        ledger.record(
            _row(
                i,
                key="key_a" if i % 3 else "key_b",
                model="mock" if i % 2 else "sim",
                cost=1_000_000_001,
            )
        )
    await ledger.close()
    summary = spend_summary(engine)
    assert summary["total"] == {
        "requests": 30,
        "prompt_tokens": 300,
        "completion_tokens": 150,
        "cost_usd": 30.00000003,
    }
    assert {r["key_id"]: r["requests"] for r in summary["by_key"]} == {"key_a": 20, "key_b": 10}
    assert {r["model"]: r["requests"] for r in summary["by_model"]} == {"mock": 15, "sim": 15}
    later = spend_summary(engine, since=datetime.now(UTC))
    assert later["total"]["requests"] == 0


async def test_a_row_the_store_refuses_does_not_block_the_others(engine: Engine) -> None:
    ledger = UsageLedger(engine, flush_interval_s=0.01)
    ledger.start()
    ledger.record(_row(1))
    poison = _row(2)
    poison.prompt_tokens = None  # NOT NULL in the schema
    ledger.record(poison)
    ledger.record(_row(3))
    await asyncio.wait_for(ledger.close(), 10)
    assert _count(engine) == 2
    assert ledger.rejected == 1


async def test_spend_by_each_dimension(engine: Engine) -> None:
    from llmplane.accounting.spend import SPEND_DIMENSIONS, spend_by

    ledger = UsageLedger(engine)
    ledger.start()
    for i in range(6):
        row = _row(i, key="key_a" if i < 4 else "key_b", model="mock", cost=100)
        row.team_id, row.service_id, row.user_id = "team_1", f"svc_{i % 2}", "alice"
        ledger.record(row)
    await ledger.close()
    by_key = spend_by(engine, "key")
    assert [(r["key"], r["requests"], r["cost_usd"]) for r in by_key] == [
        ("key_a", 4, 400e-9),
        ("key_b", 2, 200e-9),
    ]
    assert [r["requests"] for r in spend_by(engine, "service")] == [3, 3]
    assert spend_by(engine, "team")[0]["team"] == "team_1"
    assert spend_by(engine, "user")[0]["user"] == "alice"
    day = spend_by(engine, "day")
    assert len(day) == 1 and day[0]["day"] == datetime.now(UTC).date().isoformat()
    for dimension in SPEND_DIMENSIONS:  # every call once (tags: once per tag, tested apart)
        if dimension != "tag":
            assert sum(r["requests"] for r in spend_by(engine, dimension)) == 6


async def test_monthly_report_compares_with_the_month_before(engine: Engine) -> None:
    from llmplane.accounting.spend import monthly_report, report_csv

    ledger = UsageLedger(engine)
    ledger.start()
    for i, (when, cost) in enumerate(
        [
            (datetime(2026, 10, 15, tzinfo=UTC), 1_000_000_000),
            (datetime(2026, 11, 3, tzinfo=UTC), 1_500_000_000),
            (datetime(2026, 11, 20, tzinfo=UTC), 1_500_000_000),
            (datetime(2026, 12, 1, tzinfo=UTC), 9_000_000_000),
        ]
    ):
        row = _row(i, cost=cost)
        row.created_at, row.team_id, row.service_id = when, "team_1", "svc_1"
        ledger.record(row)
    await ledger.close()
    report = monthly_report(engine, "2026-11")
    assert report["previous_month"] == "2026-10"
    assert report["total_cost_usd"] == 3.0 and report["previous_total_cost_usd"] == 1.0
    assert report["change_pct"] == 200.0
    (line,) = report["by_team_service"]
    assert (line["team"], line["service"], line["requests"]) == ("team_1", "svc_1", 2)
    (model,) = report["by_model"]
    # 15 tokens per call: $3 for 30 tokens = $100,000 per million; October $1 for 15 tokens
    assert model["cost_per_mtok_usd"] == 100_000.0
    assert model["previous_cost_per_mtok_usd"] == round(1_000_000 / 15, 6)
    assert model["change_pct"] == 50.0
    csv_text = report_csv(report)
    assert csv_text.splitlines()[0].startswith("section,team,service,model")
    assert len(csv_text.splitlines()) == 3


async def test_spend_by_tag(engine: Engine) -> None:
    from llmplane.accounting.spend import spend_by

    ledger = UsageLedger(engine)
    ledger.start()
    for i, tags in enumerate(
        [{"feature": "search", "env": "prod"}, {"feature": "search"}, {"feature": "chat"}, None]
    ):
        row = _row(i, cost=100)
        row.tags = tags
        ledger.record(row)
    await ledger.close()
    by_tag = {r["tag"]: r["requests"] for r in spend_by(engine, "tag")}
    assert by_tag == {"feature=search": 2, "env=prod": 1, "feature=chat": 1}


async def test_guardrail_verdicts_are_kept_with_the_row(engine: Engine) -> None:
    verdicts = {
        "policy": "strict",
        "checks": [
            {"rule": "input[0]", "detector": "pii", "outcome": "flagged", "action": "redact"}
        ],
        "blocked": "output[0]",
    }
    ledger = UsageLedger(engine)
    ledger.start()
    flagged, plain = _row(1), _row(2)
    flagged.guardrails = verdicts
    ledger.record(flagged)
    ledger.record(plain)
    await ledger.close()
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(usage_ledger.c.request_id, usage_ledger.c.guardrails).order_by(
                    usage_ledger.c.request_id
                )
            ).all()
        )
    assert stored == {"req_1": verdicts, "req_2": None}
