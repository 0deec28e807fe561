"""The evidence report's reads: one target's facts for a period, through ``backup_functions.ledger``.

Reads per target (no scan): one Query of its runs in ``[since - look-back, until]``, one of its
scheduled job rows in the period (their ids sort by slot), one for the newest good backup before that,
and one BatchGetItem of its drills' restore items (their ids follow from the drill schedule's slots).
Target states come with one BatchGetItem per 100 targets; the silences of the period with one Query.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts import silences as silence_rules
from backup_contracts.fleet import Agent, Fleet, Target
from backup_contracts.schedule import Schedule, parse_duration
from backup_functions.ledger import FAILED, STARTED, SUCCEEDED, UNVERIFIED, JobRow, Ledger, RestoreItem, RunRecord
from backup_functions.ledger import TargetState as LedgerTargetState
from backupctl.attainment import Interval, obliged_from, rpo_attainment, rto_attainment
from backupctl.report_model import (
    ERROR_MAX,
    FAILED_MARK,
    GOOD,
    MISSING,
    RUNNING,
    UNVERIFIED_MARK,
    Drill,
    Mark,
    Silence,
    SilenceSource,
    TargetReport,
)


class LedgerSilences:
    """The silences the ledger recorded (``SILENCES``), read once for the report's period."""

    recorded = True

    def __init__(self, ledger: Ledger, period: Interval) -> None:
        self._items = ledger.silences.overlapping(period.start, period.end)

    def silences(self, target: str, agent: str, period: Interval) -> list[Silence]:
        return [
            Silence(Interval(max(s.starts_at, period.start), min(s.ends_at, period.end)), s.requested_by, s.reason)
            for s in self._items
            if silence_rules.matches(s.target, s.agent, target=target, agent=agent)
        ]


DRILL_SLOTS_MAX = 1000  # drill slots read per target and period (a drill every hour for 41 days)


def rto_objective(target: Target) -> timedelta | None:
    """The target's ``rto:`` from the fleet, once the fleet has one (issue 11, item 6); None until then."""
    value = getattr(target, "rto_delta", None) or getattr(target, "rto", None)
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    return None


def _short(text: str | None) -> str | None:
    return None if text is None else text[:ERROR_MAX]


class ReportReader:
    """Reads one target's facts for a period through the ledger package."""

    def __init__(self, ledger: Ledger, fleet: Fleet, *, now: datetime) -> None:
        self.ledger = ledger
        self.fleet = fleet
        self.now = now
        self.job_deadline = timedelta(minutes=fleet.pipeline.job_deadline_minutes)
        self.offsite_lag = fleet.pipeline.offsite.lag_delta if fleet.pipeline.offsite else None

    def runs(self, target: str, low: datetime, high: datetime) -> list[RunRecord]:
        """Runs that started in ``[low, high]`` plus the newest good one that started before ``low``."""
        pk = keys.target_pk(target)
        items = self.ledger.client.query_between(
            pk, keys.RUN_SK_PREFIX + keys.iso(low), keys.RUN_SK_PREFIX + keys.iso(high) + "#\uffff"
        )
        runs = {run.run_id: run for run in map(RunRecord.model_validate, items)}
        anchor = self.ledger.runs.latest_good(target, at_or_before=low)
        if anchor is not None:
            runs.setdefault(anchor.run_id, anchor)
        return sorted(runs.values(), key=lambda r: (r.started_at, r.run_id))

    def scheduled_jobs(self, target: str, period: Interval) -> list[JobRow]:
        """Scheduled job rows of slots in the period (``<target>.<slot>`` ids sort by slot)."""
        low = keys.job_sk(keys.scheduled_job_id(target, period.start))
        high = keys.job_sk(keys.scheduled_job_id(target, period.end))
        rows = map(JobRow.model_validate, self.ledger.client.query_between(keys.target_pk(target), low, high))
        return [r for r in rows if r.slot is not None and period.start <= r.slot <= period.end]

    def drills(self, target: Target, period: Interval) -> list[Drill]:
        if target.drill is None:
            return []
        slots = list(_slots(Schedule(target.drill.schedule, target.timezone), period))
        ids = {f"drill-{target.name}-{slot:%Y%m%dT%H%M%SZ}": slot for slot in slots}
        found = self.ledger.client.batch_get((keys.restore_pk(rid), keys.STATE_SK) for rid in ids)
        drills = []
        for item in map(RestoreItem.model_validate, found.values()):
            rto = None
            if item.state == "succeeded" and item.requested_at and item.finished_at:
                rto = round((item.finished_at - item.requested_at).total_seconds(), 3)
            drills.append(
                Drill(
                    restore_id=item.restore_id,
                    slot=ids.get(item.restore_id, item.requested_at or period.start),
                    state=item.state,
                    requested_at=item.requested_at,
                    finished_at=item.finished_at,
                    rto_s=rto,
                    error=_short(item.error),
                )
            )
        return sorted(drills, key=lambda d: d.slot)

    def marks(self, runs: list[RunRecord], jobs: list[JobRow], period: Interval) -> list[Mark]:
        marks = []
        for run in runs:
            if not period.start <= run.started_at <= period.end:
                continue  # the look-back's runs only cover the start of the period
            marks.append(self._run_mark(run))
        seen_jobs = {run.job_id for run in runs}
        for job in jobs:
            if job.job_id in seen_jobs or job.state in (SUCCEEDED, FAILED, UNVERIFIED):
                continue
            overdue = (job.start_deadline if job.state != STARTED else job.deadline) or job.deadline
            if overdue is None or overdue > self.now:
                continue  # still within its grace: not missing (yet)
            assert job.slot is not None  # noqa: S101 - scheduled_jobs keeps only rows with a slot
            why = "dispatched, never started" if job.state != STARTED else "started, never ended"
            if job.watch_cleared_reason:
                why += f" ({job.watch_cleared_reason})"
            marks.append(Mark(MISSING, job.slot, job_id=job.job_id, trigger=job.trigger, detail=why))
        return sorted(marks, key=lambda m: (m.at, m.kind))

    def _run_mark(self, run: RunRecord) -> Mark:
        common: dict[str, Any] = {
            "at": run.started_at,
            "finished_at": run.finished_at,
            "run_id": run.run_id,
            "job_id": run.job_id,
            "trigger": run.trigger,
        }
        if run.state == SUCCEEDED:
            return Mark(GOOD, bytes_stored=run.bytes_stored, offsite_verified_at=run.offsite_verified_at, **common)
        if run.state == UNVERIFIED:
            return Mark(UNVERIFIED_MARK, detail=_short(run.error) or "the stored object did not verify", **common)
        if run.state == FAILED:
            stage = f"{run.stage}: " if run.stage else ""
            return Mark(FAILED_MARK, detail=_short(f"{stage}{run.error or 'failed'}"), **common)
        if run.started_at + self.job_deadline < self.now:
            return Mark(MISSING, detail="started, never ended", **common)
        return Mark(RUNNING, **common)


def _slots(schedule: Schedule, period: Interval) -> Iterator[datetime]:
    first = schedule.latest_slot_at_or_before(period.start)
    if first is not None and first == period.start:
        yield first
    for count, slot in enumerate(schedule.slots_after(period.start)):
        if slot > period.end or count >= DRILL_SLOTS_MAX:
            return
        yield slot


def target_report(
    reader: ReportReader,
    agent: Agent,
    target: Target,
    state: LedgerTargetState | None,
    *,
    period: Interval,
    silences: SilenceSource,
) -> TargetReport:
    rpo = target.rpo_delta
    look_back = rpo + max(reader.job_deadline, timedelta(days=1))  # a run that ended in time to cover `since`
    runs = reader.runs(target.name, period.start - look_back, period.end)
    good = [r.finished_at for r in runs if r.state == SUCCEEDED and r.finished_at is not None]
    start = obliged_from(
        rpo=rpo,
        first_dispatched_at=state.first_dispatched_at if state else None,
        first_run_at=min((r.started_at for r in runs), default=None),
        first_good_at=min(good, default=None),
    )
    drills = reader.drills(target, period)
    ended = [d.outcome() for d in drills if d.ended and d.finished_at is not None and d.finished_at <= period.end]
    return TargetReport(
        name=target.name,
        agent=agent.name,
        engine=target.engine,
        rpo=rpo,
        rpo_attainment=rpo_attainment(good, rpo, period, start),
        rto_attainment=rto_attainment(ended, rto_objective(target)),
        marks=reader.marks(runs, reader.scheduled_jobs(target.name, period), period),
        drills=drills,
        state=state,
        silences=silences.silences(target.name, agent.name, period),
        offsite_lag=reader.offsite_lag,
    )


def collect_targets(
    ledger: Ledger, fleet: Fleet, period: Interval, *, now: datetime, silences: SilenceSource | None = None
) -> list[TargetReport]:
    """One ``TargetReport`` per target of the fleet, in the fleet's order."""
    source = silences or LedgerSilences(ledger, period)
    reader = ReportReader(ledger, fleet, now=now)
    pairs = fleet.targets()
    states = ledger.targets.get_many(t.name for _, t in pairs)
    return [
        target_report(reader, agent, target, states.get(target.name), period=period, silences=source)
        for agent, target in pairs
    ]
