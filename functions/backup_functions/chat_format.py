"""Alerts as AWS Chatbot (Amazon Q Developer in chat applications) custom notifications.

Chatbot renders only messages it knows: CloudWatch alarms and other AWS events, and *custom notifications*
— a JSON document with ``version: "1.0"`` and ``source: "custom"`` (docs.aws.amazon.com/chatbot/latest/
adminguide/custom-notifs.html). The pipeline's alerts are plain text for e-mail and webhooks, so a fleet
with chat channels gets a second topic, the chat topic, and every alert is published there as well in this
format (``ports.SnsNotifier``): the title is the subject, the description the body as a code block (its
columns stay aligned), the next steps the backupctl commands, and ``threadId`` the incident, so its
reminders and its all-clear land in one thread.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from backup_contracts.formatting import one_line
from backup_contracts.redaction import redact

if TYPE_CHECKING:
    from backup_functions.alerts import Alert

DESCRIPTION_MAX = 3500  # well inside Slack's and Teams' message limits, with room for the title and steps
TITLE_MAX = 250
STEP_MAX = 200
STEPS_MAX = 5
CUT = "\n... (cut; the e-mail has it whole)"
SEVERITY_MARK = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_green_circle:"}


def thread_id(alert: Alert) -> str:
    """One thread per incident: its kind and what it is about (open, reminders and resolved alike)."""
    about = alert.facts.get("target") or alert.facts.get("agent") or alert.facts.get("silence_id") or "pipeline"
    return one_line(f"{alert.facts.get('pipeline', '')}:{alert.kind}:{about}", 128)


def _code_block(body: str) -> str:
    fence = "```"
    text = redact(body).rstrip().replace(fence, "'''")
    room = DESCRIPTION_MAX - 2 * (len(fence) + 1)  # the fences and their newlines
    if len(text) > room:
        text = text[: room - len(CUT)].rstrip() + CUT
    return f"{fence}\n{text}\n{fence}"


def chat_notification(alert: Alert, *, dedup_id: str | None = None) -> str:
    """The alert as a custom-notification JSON message (what is published to the chat topic)."""
    severity = alert.severity
    steps = [one_line(str(step), STEP_MAX) for step in alert.facts.get("next_steps") or ()][:STEPS_MAX]
    context = {
        name: one_line(str(alert.facts[name]), 256)
        for name in ("severity", "kind", "phase", "target", "agent", "pipeline")
        if alert.facts.get(name) is not None
    }
    context.setdefault("severity", severity)
    document: dict[str, Any] = {
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": one_line(f"{SEVERITY_MARK.get(severity, '')} {alert.subject}".strip(), TITLE_MAX),
            "description": _code_block(alert.body),
            "nextSteps": steps,
            "keywords": [value for value in (severity, alert.kind, alert.phase) if value],
        },
        "metadata": {
            "threadId": thread_id(alert),
            "summary": one_line(alert.subject, TITLE_MAX),
            "eventType": alert.kind,
            "additionalContext": context,
        },
    }
    if dedup_id:
        document["id"] = one_line(dedup_id, 128)
    return json.dumps(document, sort_keys=True)
