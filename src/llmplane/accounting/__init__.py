"""Keys, the usage ledger, prices and spend: plain services that the HTTP layer and CLI call."""

from llmplane.accounting.keys import KeyRecord, KeyService, Principal
from llmplane.accounting.ledger import UsageLedger, UsageRecord
from llmplane.accounting.pricing import Rates, resolve_rates

__all__ = [
    "KeyRecord",
    "KeyService",
    "Principal",
    "Rates",
    "UsageLedger",
    "UsageRecord",
    "resolve_rates",
]
