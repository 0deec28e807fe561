"""Alerts the on-call engineer receives: what each says (plain Python; sent through ``ports.Notifier``).

One builder per incident kind, used by the audit function (failed, unverified: alerted at once)
and by the watchdog (rpo, start, end, heartbeat: alerted at its tick). Every builder takes the
same ``Situation`` and a phase (open / reminder / resolved) and returns an ``Alert``:

- ``subject``: ASCII, at most 100 characters (SNS limits), saying pipeline, what happened,
  target and host;
- ``body``: since when, last good backup and its age, the error / stderr tail (redacted), the
  next step as backupctl commands;
- ``facts``: the same as JSON for machines, published as the ``alert`` message attribute (plus
  ``severity``/``kind``/``phase``/``target``/``agent`` string attributes usable in SNS filter policies,
  the ones a fleet destination's ``filter`` names: ``backup_contracts.fleet_alerts.FILTER_ATTRIBUTES``).

The kinds and their severities live in ``backup_functions.alert_kinds`` (re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from backup_contracts.formatting import ascii_line, fit_bytes, format_age, format_bytes, format_time, one_line
from backup_contracts.redaction import redact
from backup_functions.alert_facts import ERROR_MAX, STDERR_IN_JSON_MAX, alert_facts  # noqa: F401
from backup_functions.alert_kinds import (  # noqa: F401 - re-exported: callers name kinds as alerts.<KIND>
    AFFECTED_IN_BODY_MAX,
    AGENT_JOBS,
    AGENT_SILENT,
    CANARY,
    CAUSE_KINDS,
    DISPATCHER,
    FAILED,
    NOT_STARTED,
    OFFSITE,
    PIPELINE_AGENTS,
    REMOVED,
    RPO,
    SEVERITY,
    STUCK,
    UNVERIFIED,
    VAULT,
    severity_of,
)
from backup_functions.wal_alerts import WAL_BUILDERS

SUBJECT_MAX = 100
# SNS takes at most 256 KiB per message, the body and the message attributes together: the body gets
# 200 KiB, the ``alert`` facts 48 KiB, each other attribute a line (``Alert.sns_body``, ``message_attributes``)
SNS_BODY_MAX = 200 * 1024
SNS_FACTS_MAX = 48 * 1024
ATTRIBUTE_MAX = 256
STDERR_IN_BODY_MAX = 4096
STDERR_LINE_MAX = 1024

Phase = Literal["open", "reminder", "resolved"]


@dataclass(frozen=True)
class Situation:
    """What an alert is about. ``since`` is when the problem began; ``now`` the alert time."""

    pipeline: str
    agent: str
    since: datetime
    now: datetime
    target: str | None = None
    last_good_at: datetime | None = None
    last_good_run_id: str | None = None
    last_good_bytes: int | None = None
    rpo: timedelta | None = None
    job_id: str | None = None
    run_id: str | None = None
    deadline: datetime | None = None
    stage: str | None = None
    exit_code: int | None = None
    error: str | None = None
    stderr_tail: str | None = None
    problems: tuple[str, ...] = ()
    notify_count: int = 0  # how many notifications went out before this one (reminders)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    kind: str
    phase: Phase
    subject: str
    body: str
    facts: dict[str, Any]

    def sns_body(self) -> str:
        """The body as SNS takes it: whole, or cut (saying so) where it would not fit."""
        return fit_bytes(self.body, SNS_BODY_MAX)

    def facts_json(self) -> str:
        """The facts as JSON within ``SNS_FACTS_MAX``: whole when they fit, else only their short scalar facts
        and ``"truncated": true`` (always JSON a machine can read, never a cut string)."""
        text = json.dumps(self.facts, sort_keys=True, default=str)
        if len(text.encode("utf-8")) <= SNS_FACTS_MAX:
            return text
        short = {
            name: value
            for name, value in self.facts.items()
            if isinstance(value, int | float | bool) or (isinstance(value, str) and len(value) <= ATTRIBUTE_MAX)
        }
        text = json.dumps({**short, "truncated": True}, sort_keys=True, default=str)
        if len(text.encode("utf-8")) <= SNS_FACTS_MAX:
            return text
        return json.dumps({"kind": self.kind, "phase": self.phase, "truncated": True}, sort_keys=True)

    @property
    def severity(self) -> str:
        return str(self.facts.get("severity") or severity_of(self.kind, self.phase))

    def message_attributes(self) -> dict[str, dict[str, str]]:
        attributes = {
            "alert": self.facts_json(),
            "severity": self.severity,
            "kind": self.kind,
            "phase": self.phase,
            "target": self.facts.get("target"),
            "agent": self.facts.get("agent"),
        }
        values = {
            name: str(value) if name == "alert" else one_line(str(value), ATTRIBUTE_MAX)
            for name, value in attributes.items()
            if value is not None
        }
        return {name: {"DataType": "String", "StringValue": value} for name, value in values.items() if value}


# --------------------------------------------------------------------------- building blocks


def _who(s: Situation) -> str:
    if s.extra.get("who"):
        return str(s.extra["who"])
    return f"{s.target} on {s.agent}" if s.target else f"agent {s.agent}"


def _subject(s: Situation, phase: Phase, headline: str, what: str) -> str:
    label = {"open": headline, "reminder": f"STILL {headline}", "resolved": "RESOLVED"}[phase]
    text = f"[{s.pipeline}] {label}: {_who(s)} - {what}"
    return ascii_line(text, SUBJECT_MAX)


def _last_good_line(s: Situation) -> str:
    if s.last_good_at is None:
        return "never (no verified backup recorded)"
    parts = [f"{format_time(s.last_good_at)} ({format_age(s.now - s.last_good_at)} ago)"]
    if s.last_good_run_id:
        parts.append(f"run {s.last_good_run_id}")
    if s.last_good_bytes is not None:
        parts.append(format_bytes(s.last_good_bytes))
    return ", ".join(parts)


def _next_steps(s: Situation, kind: str, phase: Phase) -> list[str]:
    if phase == "resolved":
        return [f"backupctl history {s.target}" if s.target else "backupctl status"]
    if kind in (PIPELINE_AGENTS, DISPATCHER):
        return ["backupctl status", "check the pipeline's functions and schedules (CloudWatch: dispatcher, watchdog)"]
    if kind == VAULT:
        return [
            "backupctl status (OFF-SITE)",
            "check the backup bucket's replication rule, its role's KMS rights and"
            " the vault's bucket policy (docs/oncall.md#off-site-copy-missing)",
        ]
    if kind == AGENT_JOBS:
        return [
            "backupctl status",
            f"on host {s.agent}: journalctl -u backup-agent --since -1h (queue access, job errors)",
        ]
    if kind == AGENT_SILENT:
        return [
            "backupctl status",
            f"on host {s.agent}: systemctl status backup-agent; journalctl -u backup-agent --since -1h",
        ]
    steps = [f"backupctl history {s.target}"]
    if kind == UNVERIFIED:
        steps.append("check the object in S3 (size, checksum, encryption) against the run in the history")
    if kind == OFFSITE:
        steps.append(
            "backupctl status (OFF-SITE); check the bucket's replication metrics and the vault (docs/oncall.md)"
        )
        return steps
    if kind in (NOT_STARTED, STUCK):
        steps.append(f"on host {s.agent}: systemctl status backup-agent; journalctl -u backup-agent --since -3h")
    steps.append(f"backupctl backup-now {s.target} --reason 'retry after fixing the cause'")
    return steps


def _build(s: Situation, kind: str, phase: Phase, *, headline: str, what: str, lines: list[str]) -> Alert:
    steps = _next_steps(s, kind, phase)
    if phase == "resolved":
        title = f"RESOLVED after {format_age(s.now - s.since)}: {what} ({_who(s)})"
    elif phase == "reminder":
        title = f"Still open (reminder {s.notify_count}): {headline.lower()} - {what} ({_who(s)})"
    else:
        title = f"{headline}: {what} ({_who(s)})"
    body = [title, ""]
    body.append(f"Since:       {format_time(s.since)} ({format_age(s.now - s.since)} ago)")
    if s.target:
        body.append(f"Last good:   {_last_good_line(s)}")
    if s.rpo is not None:
        body.append(f"RPO:         {format_age(s.rpo)}")
    body.extend(lines)
    if s.extra.get("note"):
        body.append(f"Note:        {s.extra['note']}")
    if s.job_id or s.run_id:
        body.append(f"Job / run:   {s.job_id or '-'} / {s.run_id or '-'}")
    if phase != "resolved" and s.error:
        body.append(f"Error:       {redact(ascii_line(s.error, ERROR_MAX))}")
    if phase != "resolved" and s.problems:
        body.append("Problems:")
        body.extend(f"  - {one_line(redact(p), ERROR_MAX)}" for p in s.problems)
    if phase != "resolved" and s.stderr_tail:
        tail = redact(s.stderr_tail)[-STDERR_IN_BODY_MAX:]
        lines = [f"    {one_line(line, STDERR_LINE_MAX)}" for line in tail.splitlines()]
        body.extend(["", "Error output (last lines, redacted):", *lines])
    body.extend(["", "Next step:", *[f"    {step}" for step in steps]])
    body.extend(["", f"Alert time: {format_time(s.now)} - pipeline {s.pipeline}"])
    again = (
        "recovered" if kind in CAUSE_KINDS else "off-site copy verified" if kind == OFFSITE else "backups good again"
    )
    subject_what = again if phase == "resolved" else what
    return Alert(
        kind=kind,
        phase=phase,
        subject=_subject(s, phase, headline, subject_what),
        body="\n".join(body) + "\n",
        facts=alert_facts(s, kind, phase, what, steps),
    )


# --------------------------------------------------------------------------- one builder per kind


def backup_failed(s: Situation, phase: Phase = "open") -> Alert:
    stage = f"{s.stage} failed" if s.stage else "backup failed"
    what = f"{stage} (exit {s.exit_code})" if s.exit_code is not None else stage
    return _build(s, FAILED, phase, headline="BACKUP FAILED", what=what, lines=[])


def backup_unverified(s: Situation, phase: Phase = "open") -> Alert:
    what = "backup object does not match its run" + (f": {s.problems[0]}" if s.problems else "")
    return _build(s, UNVERIFIED, phase, headline="BACKUP NOT VERIFIED", what=what, lines=[])


def rpo_breached(s: Situation, phase: Phase = "open") -> Alert:
    lines = []
    if s.rpo is not None and s.last_good_at is not None:
        lines.append(f"Breached by: {format_age(s.now - (s.last_good_at + s.rpo))}")
    return _build(s, RPO, phase, headline="BACKUP MISSING", what="no good backup within RPO", lines=lines)


def offsite_missing(s: Situation, phase: Phase = "open") -> Alert:
    what = "no verified off-site copy within the lag"
    return _build(s, OFFSITE, phase, headline="OFF-SITE COPY MISSING", what=what, lines=[])


def never_started(s: Situation, phase: Phase = "open") -> Alert:
    lines = [f"Start due:   {format_time(s.deadline)}"] if s.deadline else []
    return _build(
        s, NOT_STARTED, phase, headline="BACKUP NOT STARTED", what="dispatched job never started", lines=lines
    )


def run_stuck(s: Situation, phase: Phase = "open") -> Alert:
    lines = [f"Deadline:    {format_time(s.deadline)}"] if s.deadline else []
    return _build(s, STUCK, phase, headline="BACKUP STUCK", what="run started but never ended", lines=lines)


def _names(names: Any) -> str:
    listed = [str(n) for n in names or ()]
    shown = ", ".join(listed[:AFFECTED_IN_BODY_MAX])
    return shown + (f" and {len(listed) - AFFECTED_IN_BODY_MAX} more" if len(listed) > AFFECTED_IN_BODY_MAX else "")


def _countdown(s: Situation, row: dict[str, Any]) -> str:
    deadline = datetime.fromisoformat(row["rpo_deadline"]) if row.get("rpo_deadline") else None
    if deadline is None:
        rpo = "no RPO deadline yet"
    elif deadline <= s.now:
        rpo = f"RPO breached {format_age(s.now - deadline)} ago"
    else:
        rpo = f"RPO breached in {format_age(deadline - s.now)}"
    good = datetime.fromisoformat(row["last_good_at"]) if row.get("last_good_at") else None
    last = f"last good {format_age(s.now - good)} ago" if good else "no good backup yet"
    return f"  - {row['target']}: {rpo} ({last})"


def _cause_lines(s: Situation, phase: Phase) -> list[str]:
    """What a cause incident explains: the targets it affects with their RPO countdowns; on recovery,
    which caught up and which are still behind (those page on their own from now on)."""
    lines = []
    if s.extra.get("agents"):
        lines.append(f"Agents:      {_names(s.extra['agents'])}")
    if phase == "resolved":
        lines.append(f"Caught up:   {_names(s.extra.get('caught_up')) or 'none'}")
        behind = s.extra.get("still_behind")
        lines.append(f"Still behind (paged on their own): {_names(behind)}" if behind else "Still behind: none")
        return lines
    affected = list(s.extra.get("affected") or ())
    if affected:
        lines.append(f"Affected targets ({len(affected)}; their own alerts are held while this lasts):")
        lines.extend(_countdown(s, row) for row in affected[:AFFECTED_IN_BODY_MAX])
        if len(affected) > AFFECTED_IN_BODY_MAX:
            lines.append(f"  ... and {len(affected) - AFFECTED_IN_BODY_MAX} more (backupctl status)")
    return lines


def agent_silent(s: Situation, phase: Phase = "open") -> Alert:
    what = "never sent a heartbeat" if s.extra.get("never_heartbeat") else "no heartbeat from the agent"
    return _build(s, AGENT_SILENT, phase, headline="AGENT SILENT", what=what, lines=_cause_lines(s, phase))


def agent_not_taking_jobs(s: Situation, phase: Phase = "open") -> Alert:
    what = "heartbeats, but its jobs never start"
    return _build(s, AGENT_JOBS, phase, headline="AGENT NOT TAKING JOBS", what=what, lines=_cause_lines(s, phase))


def most_agents_silent(s: Situation, phase: Phase = "open") -> Alert:
    what = "most agents silent at once"
    return _build(s, PIPELINE_AGENTS, phase, headline="PIPELINE DOWN", what=what, lines=_cause_lines(s, phase))


def dispatcher_stalled(s: Situation, phase: Phase = "open") -> Alert:
    what = "no job dispatched for any target"
    lines = []
    if s.extra.get("last_tick_at"):
        last = datetime.fromisoformat(s.extra["last_tick_at"])
        lines.append(f"Last tick:   {format_time(last)} ({format_age(s.now - last)} ago)")
    return _build(
        s, DISPATCHER, phase, headline="DISPATCHER NOT RUNNING", what=what, lines=lines + _cause_lines(s, phase)
    )


def replication_stalled(s: Situation, phase: Phase = "open") -> Alert:
    what = "off-site copies of several targets late at once"
    return _build(s, VAULT, phase, headline="OFF-SITE REPLICATION STALLED", what=what, lines=_cause_lines(s, phase))


def removed_from_fleet(s: Situation, phase: Phase = "resolved") -> Alert:
    """The one final notice of a target (or an agent and its targets) no longer in the fleet file."""
    targets = list(s.extra.get("removed_targets") or ())
    closed = list(s.extra.get("closed") or ())
    steps = ["nothing: its backups stay in the bucket under their retention", "backupctl status"]
    body = [
        f"REMOVED FROM THE FLEET: {_who(s)} - its open incidents are closed and it is no longer watched",
        "",
        f"Targets:     {_names(targets) or '-'}",
        f"Closed:      {_names(closed) or '-'}",
        f"Open since:  {format_time(s.since)} ({format_age(s.now - s.since)} ago)",
        "Backups:     kept under retention (nothing is deleted)",
        "",
        "Next step:",
        *[f"    {step}" for step in steps],
        "",
        f"Alert time: {format_time(s.now)} - pipeline {s.pipeline}",
    ]
    return Alert(
        kind=REMOVED,
        phase="resolved",
        subject=ascii_line(f"[{s.pipeline}] REMOVED FROM THE FLEET: {_who(s)} - incidents closed", SUBJECT_MAX),
        body="\n".join(body) + "\n",
        facts=alert_facts(s, REMOVED, "resolved", "removed from the fleet", steps),
    )


BUILDERS: dict[str, Callable[[Situation, Phase], Alert]] = {
    FAILED: backup_failed,
    UNVERIFIED: backup_unverified,
    RPO: rpo_breached,
    OFFSITE: offsite_missing,
    NOT_STARTED: never_started,
    STUCK: run_stuck,
    AGENT_SILENT: agent_silent,
    AGENT_JOBS: agent_not_taking_jobs,
    PIPELINE_AGENTS: most_agents_silent,
    DISPATCHER: dispatcher_stalled,
    VAULT: replication_stalled,
    REMOVED: removed_from_fleet,
    **WAL_BUILDERS,
}


def build(kind: str, situation: Situation, phase: Phase = "open") -> Alert:
    """The alert for an incident kind (see BUILDERS); KeyError names unknown kinds."""
    try:
        builder = BUILDERS[kind]
    except KeyError:
        raise KeyError(f"no alert builder for incident kind {kind!r}; known: {sorted(BUILDERS)}") from None
    return builder(situation, phase)
