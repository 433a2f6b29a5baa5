"""Rewriting findings: redact, mask, hash, and reversible pseudonymisation."""

from __future__ import annotations

from llmplane.guardrails.actions import Pseudonymizer, rewrite, tenant_hash_key
from llmplane.guardrails.base import Finding

TEXT = "card 4111 1111 1111 1111, mail jane@example.com"
CARD = Finding("CREDIT_CARD", 5, 24, 1.0)
MAIL = Finding("EMAIL_ADDRESS", 31, 47, 1.0)


def test_redact_mask_and_hash() -> None:
    assert rewrite(TEXT, [MAIL, CARD], "redact") == "card <CREDIT_CARD>, mail <EMAIL_ADDRESS>"
    assert rewrite(TEXT, [CARD, MAIL], "mask") == "card **** **** **** 1111, mail ****@*******.***"
    key_a = tenant_hash_key(b"platform secret", "team_a")
    hashed = rewrite(TEXT, [MAIL], "hash", hash_key=key_a)
    assert hashed.startswith(TEXT[:31] + "<EMAIL_ADDRESS:") and "jane" not in hashed
    # Stable within a tenant, different across tenants.
    assert rewrite(TEXT, [MAIL], "hash", hash_key=key_a) == hashed
    key_b = tenant_hash_key(b"platform secret", "team_b")
    assert rewrite(TEXT, [MAIL], "hash", hash_key=key_b) != hashed


def test_overlapping_findings_keep_the_more_certain() -> None:
    weak = Finding("PHONE_NUMBER", 5, 14, 0.4)
    assert rewrite(TEXT, [weak, CARD], "redact").startswith("card <CREDIT_CARD>,")


def test_pseudonyms_round_trip_and_repeat_values_share_one() -> None:
    pseudo = Pseudonymizer()
    text = "jane@example.com wrote to bob@example.com and jane@example.com"
    found = [
        Finding("EMAIL_ADDRESS", 0, 16, 1.0),
        Finding("EMAIL_ADDRESS", 26, 41, 1.0),
        Finding("EMAIL_ADDRESS", 46, 62, 1.0),
    ]
    sent = pseudo.replace(text, found)
    assert sent == "<EMAIL_ADDRESS_1> wrote to <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_1>"
    answer = "Reply to <EMAIL_ADDRESS_2>, cc <EMAIL_ADDRESS_1>; not <EMAIL_ADDRESS_9>."
    assert pseudo.restore(answer) == (
        "Reply to bob@example.com, cc jane@example.com; not <EMAIL_ADDRESS_9>."
    )


def test_a_streamed_answer_is_restored_across_split_placeholders() -> None:
    pseudo = Pseudonymizer()
    pseudo.replace("mail jane@example.com", [Finding("EMAIL_ADDRESS", 5, 21, 1.0)])
    answer = "Write to <EMAIL_ADDRESS_1> today, a < b."
    for size in range(1, len(answer) + 1):
        restorer = pseudo.restorer()
        pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
        out = "".join(restorer.feed(piece) for piece in pieces) + restorer.flush()
        assert out == "Write to jane@example.com today, a < b.", size


def test_rule_ids_as_types_are_restored_too() -> None:
    pseudo = Pseudonymizer()
    sent = pseudo.replace("ask about falcon", [Finding("blocklist.term[0]", 10, 16, 1.0)])
    assert sent == "ask about <blocklist.term[0]_1>"
    assert pseudo.restore("Re <blocklist.term[0]_1>: no") == "Re falcon: no"
    restorer = pseudo.restorer()
    pieces = ["Re <block", "list.term[0", "]_1>: no"]
    assert "".join(map(restorer.feed, pieces)) + restorer.flush() == "Re falcon: no"
