"""The incident log and the change log: which prompt, model, deployment or config change
each incident came from, so that the incident rate of changes can be counted."""

from llmplane.incidents.changes import CHANGE_KINDS, Change, list_changes, record_change
from llmplane.incidents.config_changes import record_config_changes
from llmplane.incidents.incidents import (
    SEVERITIES,
    Cause,
    Incident,
    close_incident,
    list_incidents,
    open_incident,
    parse_cause,
)
from llmplane.incidents.rates import incident_report

__all__ = [
    "CHANGE_KINDS",
    "SEVERITIES",
    "Cause",
    "Change",
    "Incident",
    "close_incident",
    "incident_report",
    "list_changes",
    "list_incidents",
    "open_incident",
    "parse_cause",
    "record_change",
    "record_config_changes",
]
