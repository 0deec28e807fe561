"""``Silence Requested`` and ``Unsilence Requested``: record, lift or refuse, and say so on the alert topic.

A silence only ever stops pages, and only until its expiry (``pipeline.alerts.silence_max`` at most), but it
is still a switch someone could flip to hide a failure; so every accepted silence is announced
(``SILENCE SET``, severity info: who, why, what it holds, until when), every lift too (``SILENCE LIFTED``),
and every refused request gets a warning naming the fix (``SILENCE REFUSED``). The announcement is owed in
the write that records (or lifts) the silence, so a failed publish is sent by the redelivery, once.

The rules for what a silence holds and which requests are refused: ``backup_contracts.silences``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from backup_contracts import silences as rules
from backup_contracts.events import SilenceRequested, UnsilenceRequested
from backup_contracts.fleet import Fleet
from backup_contracts.formatting import ascii_line, format_age, format_time
from backup_contracts.redaction import redact_value
from backup_functions.alerts import SUBJECT_MAX, Alert, severity_of
from backup_functions.clock import Clock
from backup_functions.ledger import Ledger, SilenceItem
from backup_functions.ports import Courier, Notifier, alert_entry

log = logging.getLogger(__name__)

SILENCE = "silence"  # alert kind of SILENCE SET / SILENCE LIFTED (info)
SILENCE_REFUSED = "silence-refused"  # a request the pipeline did not record (warning)
Outcome = Literal["recorded", "duplicate", "lifted", "refused"]


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    silence_id: str
    detail: str = ""


def _notice(
    pipeline: str,
    *,
    kind: str,
    phase: Literal["open", "resolved"],
    headline: str,
    what: str,
    lines: list[str],
    now: datetime,
    **facts: object,
) -> Alert:
    severity = severity_of(kind, "open")
    body = [f"{headline}: {what}", "", *lines, "", "Next step:", "    backupctl silences", ""]
    return Alert(
        kind=kind,
        phase=phase,
        subject=ascii_line(f"[{pipeline}] {headline}: {what}", SUBJECT_MAX),
        body="\n".join(body) + f"Alert time: {format_time(now)} - pipeline {pipeline}\n",
        facts=redact_value(
            {"pipeline": pipeline, "kind": kind, "phase": phase, "severity": severity, "at": now.isoformat(), **facts}
        ),
    )


def _globs(target: str | None, agent: str | None) -> str:
    return ", ".join(f"{kind} {glob}" for kind, glob in (("target", target), ("agent", agent)) if glob)


def set_notice(pipeline: str, silence: SilenceRequested, now: datetime) -> Alert:
    starts = rules.effective_start(silence, now)
    lines = [
        f"Holds:       pages about {_globs(silence.target, silence.agent)} (still recorded and shown)",
        f"From:        {format_time(starts)}",
        f"Until:       {format_time(silence.expires_at)} ({format_age(silence.expires_at - starts)})",
        f"By:          {silence.requested_by}",
        f"Reason:      {silence.reason}",
        "",
        "What is still broken when it ends pages once then. End it sooner with:",
        f"    backupctl unsilence {silence.silence_id} --reason '...'",
    ]
    return _notice(
        pipeline,
        kind=SILENCE,
        phase="open",
        headline="SILENCE SET",
        what=f"{silence.silence_id} ({_globs(silence.target, silence.agent)})",
        lines=lines,
        now=now,
        silence_id=silence.silence_id,
        target_glob=silence.target,
        agent_glob=silence.agent,
        starts_at=starts.isoformat(),
        expires_at=silence.expires_at.isoformat(),
        requested_by=silence.requested_by,
        reason=silence.reason,
    )


def lifted_notice(pipeline: str, silence: SilenceItem, by: str, reason: str | None, now: datetime) -> Alert:
    lines = [
        f"Held:        pages about {_globs(silence.target, silence.agent)} since {format_time(silence.starts_at)}",
        f"Lifted by:   {by}" + (f" ({reason})" if reason else ""),
        "What it still holds pages at the watchdog's next tick.",
    ]
    return _notice(
        pipeline,
        kind=SILENCE,
        phase="resolved",
        headline="SILENCE LIFTED",
        what=silence.silence_id,
        lines=lines,
        now=now,
        silence_id=silence.silence_id,
        lifted_by=by,
    )


def refused_notice(pipeline: str, silence_id: str, requested_by: str, problems: list[str], now: datetime) -> Alert:
    lines = [f"Requested by: {requested_by}", "Refused because:", *[f"  - {problem}" for problem in problems]]
    return _notice(
        pipeline,
        kind=SILENCE_REFUSED,
        phase="open",
        headline="SILENCE REFUSED",
        what=silence_id,
        lines=lines,
        now=now,
        silence_id=silence_id,
        requested_by=requested_by,
        problems=problems,
    )


class SilenceRequests:
    """Answers the silence events from the bus (the watchdog function's queue)."""

    def __init__(self, fleet: Fleet, ledger: Ledger, notifier: Notifier, *, clock: Clock) -> None:
        self._fleet = fleet
        self._silences = ledger.silences
        self._notifier = notifier
        self._clock = clock
        self._pipeline = fleet.pipeline.name

    def handle(self, request: SilenceRequested | UnsilenceRequested) -> Answer:
        if isinstance(request, SilenceRequested):
            return self.silence(request)
        return self.unsilence(request)

    def silence(self, request: SilenceRequested) -> Answer:
        now = self._clock.now()
        pairs = [(agent.name, target.name) for agent, target in self._fleet.targets()]
        longest = self._fleet.pipeline.alerts.silence_max_delta
        problems = rules.problems(request, now=now, longest=longest, targets=pairs)
        same_id = self._silences.find(request.silence_id, now)
        if same_id is not None and not same_id.same_request(request):
            problems.append(
                f"silence id {request.silence_id} is already in use by {same_id.describe()}. Fix: use a new id"
                " (backupctl silence makes one)"
            )
        if problems:
            return self._refuse(request.silence_id, request.requested_by, problems, now)
        notice = set_notice(self._pipeline, request, now)
        owed = {"alert": alert_entry(notice, id=f"silence:{request.silence_id}", at=now)}
        recorded, created = self._silences.record(request, now=now, owed=owed)
        self._settle(recorded)
        log.info("silence %s", "recorded" if created else "already recorded", extra={"silence": recorded.silence_id})
        return Answer("recorded" if created else "duplicate", request.silence_id)

    def unsilence(self, request: UnsilenceRequested) -> Answer:
        now = self._clock.now()
        silence = self._silences.find(request.silence_id, now)
        if silence is None or silence.ended_at is not None:
            problem = (
                f"no silence {request.silence_id} is in force (it expired, was lifted, or never existed)."
                " Fix: backupctl silences lists the ones in force"
            )
            return self._refuse(request.silence_id, request.requested_by, [problem], now)
        if silence.lifted_at is not None:
            self._settle(silence)  # a redelivery: send what the lift still owes
            return Answer("duplicate", request.silence_id)
        notice = lifted_notice(self._pipeline, silence, request.requested_by, request.reason, now)
        owed = {"alert": alert_entry(notice, id=f"silence:{request.silence_id}:lifted", at=now)}
        if self._silences.lift(silence, by=request.requested_by, reason=request.reason, now=now, owed=owed):
            self._settle(silence.model_copy(update={"owed": owed}))
        return Answer("lifted", request.silence_id)

    def _refuse(self, silence_id: str, requested_by: str, problems: list[str], now: datetime) -> Answer:
        log.warning("silence request refused", extra={"silence": silence_id, "problems": problems})
        self._notifier.notify(refused_notice(self._pipeline, silence_id, requested_by, problems, now))
        return Answer("refused", silence_id, "; ".join(problems))

    def _settle(self, silence: SilenceItem) -> None:
        Courier(notifier=self._notifier).settle(
            silence.owed, lambda name, entry, last: self._silences.settle(silence, name, entry)
        )
