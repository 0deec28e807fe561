"""The evidence report's facts for a period (``report_ledger`` reads them from the ledger).

Per target: its runs in the period (good, failed, unverified, running, missing — a scheduled job that
never started or never ended), RPO attainment, its drills in the period and RTO attainment, the last drill,
and the size of each good backup. ``Report.as_json()`` is the machine-readable twin; the HTML page is
rendered from that same dictionary, so both show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from backup_functions.ledger import TargetState as LedgerTargetState
from backupctl.attainment import DrillOutcome, Interval, RpoAttainment, RtoAttainment

REPORT_FORMAT = "backup-pipeline/evidence-report/1"
ERROR_MAX = 300

# Kinds of mark on a target's timeline
GOOD = "good"
FAILED_MARK = "failed"
UNVERIFIED_MARK = "unverified"
RUNNING = "running"
MISSING = "missing"
SILENCED = "silenced"
MARK_KINDS = (GOOD, FAILED_MARK, UNVERIFIED_MARK, MISSING, RUNNING, SILENCED)


@dataclass(frozen=True)
class Silence:
    """A span during which a target's pages were silenced (by whom, why)."""

    span: Interval
    requested_by: str
    reason: str


class SilenceSource(Protocol):
    """Where the report finds silences: the ledger's (``report_ledger.LedgerSilences``, the default). A source
    that cannot know (``NoSilenceRecords``) makes the page and the JSON say "not recorded" rather than "none"."""

    recorded: bool

    def silences(self, target: str, agent: str, period: Interval) -> list[Silence]: ...


class NoSilenceRecords:
    """A source that knows no silences (a ledger from before they were recorded): nothing shown as silenced."""

    recorded = False

    def silences(self, target: str, agent: str, period: Interval) -> list[Silence]:
        return []


@dataclass(frozen=True)
class Mark:
    """One run, or one expected run that never happened, on a target's timeline."""

    kind: str  # one of MARK_KINDS
    at: datetime  # when it started (a missing run: its schedule slot)
    finished_at: datetime | None = None
    run_id: str | None = None
    job_id: str | None = None
    trigger: str | None = None
    bytes_stored: int | None = None
    detail: str | None = None  # the error, or why a run counts as missing
    offsite_verified_at: datetime | None = None  # a good backup's copy, verified in the off-site vault

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at,
            "finished_at": self.finished_at,
            "run_id": self.run_id,
            "job_id": self.job_id,
            "trigger": self.trigger,
            "bytes_stored": self.bytes_stored,
            "detail": self.detail,
            "offsite_verified_at": self.offsite_verified_at,
        }


@dataclass(frozen=True)
class Drill:
    restore_id: str
    slot: datetime
    state: str
    requested_at: datetime | None
    finished_at: datetime | None
    rto_s: float | None  # request to verified end: queue wait, download, restore and verification
    error: str | None

    @property
    def ended(self) -> bool:
        return self.state in ("succeeded", "failed")

    def outcome(self) -> DrillOutcome:
        return DrillOutcome(ok=self.state == "succeeded", rto=None if self.rto_s is None else _seconds(self.rto_s))

    def as_json(self) -> dict[str, Any]:
        return {
            "restore_id": self.restore_id,
            "slot": self.slot,
            "state": self.state,
            "requested_at": self.requested_at,
            "finished_at": self.finished_at,
            "rto_s": self.rto_s,
            "error": self.error,
        }


@dataclass(frozen=True)
class TargetReport:
    name: str
    agent: str
    engine: str
    rpo: timedelta
    rpo_attainment: RpoAttainment
    rto_attainment: RtoAttainment
    marks: list[Mark]
    drills: list[Drill]
    state: LedgerTargetState | None
    silences: list[Silence] = field(default_factory=list)
    offsite_lag: timedelta | None = None  # the fleet's pipeline.offsite.lag; None: no off-site vault

    def count(self, kind: str) -> int:
        return sum(1 for mark in self.marks if mark.kind == kind)

    @property
    def sizes(self) -> list[tuple[datetime, int]]:
        """(finished, bytes stored) of each good backup in the period, oldest first."""
        return sorted(
            (m.finished_at, m.bytes_stored)
            for m in self.marks
            if m.kind == GOOD and m.finished_at is not None and m.bytes_stored is not None
        )

    def last_drill_json(self) -> dict[str, Any] | None:
        s = self.state
        if s is None or s.last_drill_at is None:
            return None
        return {
            "at": s.last_drill_at,
            "ok": s.last_drill_ok,
            "restore_id": s.last_drill_id,
            "recorded_rto_s": s.last_drill_rto_s,
            "error": s.last_drill_error,
        }

    def offsite_json(self) -> dict[str, Any] | None:
        """Of the period's good backups, how many have a verified off-site copy, and how many within the lag."""
        if self.offsite_lag is None:
            return None
        lag = self.offsite_lag
        good = [m for m in self.marks if m.kind == GOOD]
        copied = [m for m in good if m.offsite_verified_at is not None]
        in_time = [
            m for m in copied if m.offsite_verified_at and m.offsite_verified_at <= (m.finished_at or m.at) + lag
        ]
        return {"lag_s": _s(lag), "good": len(good), "copied": len(copied), "copied_within_lag": len(in_time)}

    def as_json(self) -> dict[str, Any]:
        rpo, rto = self.rpo_attainment, self.rto_attainment
        return {
            "target": self.name,
            "agent": self.agent,
            "engine": self.engine,
            "rpo_s": _s(self.rpo),
            "rpo_attainment": {
                "percent": rpo.percent,
                "not_measured_because": rpo.reason,
                "measured_from": rpo.window.start if rpo.window else None,
                "measured_until": rpo.window.end if rpo.window else None,
                "measured_s": _s(rpo.measured),
                "covered_s": _s(rpo.covered_time),
                "breached_s": _s(rpo.breached_time),
                "longest_breach_s": _s(rpo.longest_gap),
                "breaches": [{"from": g.start, "until": g.end, "duration_s": _s(g.duration)} for g in rpo.gaps],
            },
            "rto_attainment": {
                "objective_s": _s(rto.objective) if rto.objective is not None else None,
                "percent": rto.percent,
                "not_measured_because": rto.reason,
                "drills_ended": rto.drills,
                "drills_within_objective": rto.met,
                "longest_rto_s": _s(rto.worst) if rto.worst is not None else None,
            },
            "runs": {kind: self.count(kind) for kind in MARK_KINDS if kind != SILENCED},
            "offsite": self.offsite_json(),
            "timeline": [mark.as_json() for mark in self.marks],
            "drills": [drill.as_json() for drill in self.drills],
            "last_drill": self.last_drill_json(),
            "stored_bytes": [{"at": at, "bytes": size} for at, size in self.sizes],
            "silences": [
                {"from": s.span.start, "until": s.span.end, "requested_by": s.requested_by, "reason": s.reason}
                for s in self.silences
            ],
        }


@dataclass(frozen=True)
class Report:
    pipeline: str
    period: Interval
    generated_at: datetime
    generated_by: dict[str, str | None]  # arn, account, user_id (or error)
    ledger_table: str
    fleet_file: str
    fleet_sha256: str | None
    targets: list[TargetReport]
    silences_recorded: bool
    period_note: str | None = None  # e.g. the end was capped at the time of generation

    def as_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "pipeline": self.pipeline,
            "period": {"since": self.period.start, "until": self.period.end, "note": self.period_note},
            "generated_at": self.generated_at,
            "generated_by": self.generated_by,
            "ledger_table": self.ledger_table,
            "fleet_file": self.fleet_file,
            "fleet_sha256": self.fleet_sha256,
            "silences_recorded": self.silences_recorded,
            "targets": [target.as_json() for target in self.targets],
        }


def _s(delta: timedelta) -> float:
    return round(delta.total_seconds(), 3)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
