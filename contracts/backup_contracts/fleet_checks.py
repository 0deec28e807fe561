"""The fleet's cross-entry rules, checked once each entry is valid on its own (``backup_contracts.fleet``).

Each check returns ``Problem``s: the path of the entry in the fleet file (as a pydantic error location
gives it, e.g. ``("agents", 0, "targets", 2, "rpo")``) and what is wrong with its fix. The fleet loader
turns the path into ``file:line: agents[0] 'db-1' > targets[2] 'orders' > rpo: ...``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from backup_contracts.approvers import pattern_problem
from backup_contracts.fleet_alerts import routing_problems
from backup_contracts.schedule import MAX_INTERVAL, Schedule, ScheduleError, format_duration

if TYPE_CHECKING:
    from backup_contracts.fleet import Fleet

Loc = tuple[int | str, ...]
Problem = tuple[Loc, str]


def fleet_problems(fleet: Fleet) -> list[Problem]:
    return (
        _retention_problems(fleet)
        + _target_problems(fleet)
        + _destination_problems(fleet)
        + _drill_problems(fleet)
        + _rto_problems(fleet)
        + _approver_problems(fleet)
        + _offsite_problems(fleet)
        + _wal_problems(fleet)
        + routing_problems(
            fleet.pipeline.alerts,
            {target.name for _, target in fleet.targets()},
            {agent.name for agent in fleet.agents},
        )
    )


def _retention_problems(fleet: Fleet) -> list[Problem]:
    """The ledger must outlive every backup: once a run's rows expire, a restore answers no-backup."""
    kept = [
        (days, name, tier)
        for name, retention_class in sorted(fleet.retention_classes.items())
        for tier, days in retention_class.tiers().items()
    ]
    if not kept:
        return []
    days, name, tier = max(kept)
    ttl = fleet.pipeline.ledger_ttl_days
    if ttl >= days:
        return []
    return [
        (
            ("pipeline", "ledger_ttl_days"),
            f"{ttl} is shorter than the longest retention, retention_classes > {name!r} > {tier}_days: {days},"
            " so ledger rows would expire while their backups are still kept and a restore would answer"
            f" no-backup. Fix: set pipeline.ledger_ttl_days to at least {days}, or shorten that retention",
        )
    ]


def _target_problems(fleet: Fleet) -> list[Problem]:
    problems: list[Problem] = []
    seen_agents: set[str] = set()
    seen_targets: dict[str, str] = {}
    for ai, agent in enumerate(fleet.agents):
        if agent.name in seen_agents:
            problems.append((("agents", ai), "duplicate agent name. Fix: give every agent a unique name"))
        seen_agents.add(agent.name)
        for ti, target in enumerate(agent.targets):
            where: Loc = ("agents", ai, "targets", ti)
            if target.name in seen_targets:
                problems.append(
                    (
                        where,
                        f"duplicate target name (also on agent {seen_targets[target.name]!r})."
                        " Fix: target names are unique across the fleet; rename one",
                    )
                )
            seen_targets[target.name] = agent.name
            if target.retention not in fleet.retention_classes:
                problems.append(
                    (
                        (*where, "retention"),
                        f"unknown retention class {target.retention!r}. Fix: use one of"
                        f" {sorted(fleet.retention_classes)} or declare it under retention_classes",
                    )
                )
            if target.drill is not None:
                try:
                    Schedule(target.drill.schedule, target.timezone)
                except ScheduleError as exc:
                    problems.append(((*where, "drill", "schedule"), str(exc)))
            problems += _schedule_problems(fleet, ai, ti)
    return problems


def _schedule_problems(fleet: Fleet, ai: int, ti: int) -> list[Problem]:
    target = fleet.agents[ai].targets[ti]
    where: Loc = ("agents", ai, "targets", ti)
    try:
        interval = target.parsed_schedule.max_interval()
    except ScheduleError as exc:
        return [((*where, "timezone" if "time zone" in str(exc) else "schedule"), str(exc))]
    if interval > MAX_INTERVAL:
        return [
            (
                (*where, "schedule"),
                f"{target.schedule!r} leaves up to {format_duration(interval)} between two runs, more than"
                f" {format_duration(MAX_INTERVAL)}. Fix: schedule it at least once a year, e.g. cron(0 2 1 1 *)",
            )
        ]
    if target.rpo_delta < interval:
        return [
            (
                (*where, "rpo"),
                f"rpo {target.rpo} is shorter than the schedule's longest interval ({format_duration(interval)}),"
                f" so every run would page. Fix: raise rpo to at least {format_duration(interval)} (plus the time"
                " a backup takes) or schedule more often",
            )
        ]
    return []


def _destination_problems(fleet: Fleet) -> list[Problem]:
    names = {target.name for _, target in fleet.targets()}
    problems: list[Problem] = []
    for ai, agent in enumerate(fleet.agents):
        for ti, target in enumerate(agent.targets):
            where: Loc = ("agents", ai, "targets", ti)
            others: list[tuple[Loc, str]] = [((*where, "restore_to", i), o) for i, o in enumerate(target.restore_to)]
            if target.drill is not None:
                others.append(((*where, "drill", "destination"), target.drill.destination))
            for loc, other in others:
                if other not in names:
                    problems.append(
                        (
                            loc,
                            f"restore destination {other!r} is not a target of this fleet."
                            " Fix: declare it as a target or remove it",
                        )
                    )
                elif fleet.target(other)[1].engine != target.engine:
                    problems.append(
                        (
                            loc,
                            f"restore destination {other!r} uses engine {fleet.target(other)[1].engine!r}, not"
                            f" {target.engine!r}. Fix: pick a destination of the same engine",
                        )
                    )
    return problems


def _rto_problems(fleet: Fleet) -> list[Problem]:
    """An RTO objective is measured by the target's drills, within the job deadline that times them out."""
    problems: list[Problem] = []
    deadline = timedelta(minutes=fleet.pipeline.job_deadline_minutes)
    for ai, agent in enumerate(fleet.agents):
        for ti, target in enumerate(agent.targets):
            rto = target.rto_delta
            if rto is None:
                continue
            where: Loc = ("agents", ai, "targets", ti, "rto")
            if target.drill is None:
                problems.append(
                    (
                        where,
                        f"rto {target.rto} has nothing to measure it: only restore drills measure the RTO. Fix: add"
                        f" drill: {{schedule: rate(7 days), destination: {target.name}-drill}} (a scratch target of"
                        " its own), or remove rto",
                    )
                )
            elif rto >= deadline:
                problems.append(
                    (
                        where,
                        f"rto {target.rto} is not shorter than pipeline.job_deadline_minutes"
                        f" ({fleet.pipeline.job_deadline_minutes}): a drill that slow times out as failed before"
                        " its RTO could be measured. Fix: lower rto, or raise job_deadline_minutes above it",
                    )
                )
    return problems


def _drill_problems(fleet: Fleet) -> list[Problem]:
    """A drill replaces its destination with the latest backup and then removes it: only a scratch target
    of its own may take it — never the drilled target, a protected one, or where restores are cloned to."""
    names = {target.name for _, target in fleet.targets()}
    cloned_into = {dest: source.name for _, source in fleet.targets() for dest in source.restore_to}
    problems: list[Problem] = []
    for ai, agent in enumerate(fleet.agents):
        for ti, target in enumerate(agent.targets):
            if target.drill is None or target.drill.destination not in names:
                continue  # an unknown destination is reported with the restore destinations
            where: Loc = ("agents", ai, "targets", ti, "drill", "destination")
            destination = target.drill.destination
            scratch = (
                f"Fix: declare a scratch target of engine {target.engine} (e.g. {target.name}-drill, on the host"
                " that should run the drill) and drill into it"
            )
            if destination == target.name:
                problems.append(
                    (
                        where,
                        f"{destination!r} is the drilled target itself; the drill would replace the data it"
                        f" checks and then remove it. {scratch}",
                    )
                )
                continue
            if fleet.target(destination)[1].protected:
                problems.append(
                    (
                        where,
                        f"{destination!r} is a protected target; a drill would overwrite it every"
                        f" {target.drill.schedule} without an approval. {scratch}",
                    )
                )
            if destination in cloned_into:
                problems.append(
                    (
                        where,
                        f"{destination!r} is where restores of {cloned_into[destination]!r} are cloned to (its"
                        f" restore_to); a drill would replace such a clone and then remove it. {scratch}",
                    )
                )
    return problems


def _approver_problems(fleet: Fleet) -> list[Problem]:
    """Approver patterns must be able to match a caller; a protected target must have someone to approve."""
    problems: list[Problem] = [
        (("pipeline", "approvers", i), problem)
        for i, pattern in enumerate(fleet.pipeline.approvers)
        if (problem := pattern_problem(pattern))
    ]
    for ai, agent in enumerate(fleet.agents):
        for ti, target in enumerate(agent.targets):
            where: Loc = ("agents", ai, "targets", ti)
            problems += [
                ((*where, "approvers", i), problem)
                for i, pattern in enumerate(target.approvers)
                if (problem := pattern_problem(pattern))
            ]
            if target.approvers and not target.protected:
                problems.append(
                    (
                        (*where, "approvers"),
                        "only restores into a protected target need an approval."
                        " Fix: set protected: true or remove approvers",
                    )
                )
            if target.protected and not fleet.approvers_of(target):
                problems.append(
                    (
                        where,
                        "protected target with no approvers, so no restore into it could ever be approved."
                        " Fix: list who may approve (principal ARN patterns, docs/fleet.md) under pipeline >"
                        " approvers or the target's approvers",
                    )
                )
    return problems


def _offsite_problems(fleet: Fleet) -> list[Problem]:
    """A target can wait for an off-site copy only when there is a vault to copy into."""
    if fleet.pipeline.offsite is not None:
        return []
    return [
        (
            ("agents", a, "targets", t, "rpo_needs_offsite"),
            "the pipeline has no off-site vault, so no backup of this target would ever count toward its RPO."
            " Fix: declare pipeline.offsite (docs/fleet.md#off-site-vault) or remove rpo_needs_offsite",
        )
        for a, agent in enumerate(fleet.agents)
        for t, target in enumerate(agent.targets)
        if target.rpo_needs_offsite
    ] + [
        (
            ("agents", a, "targets", t, "drill", "source"),
            "the pipeline has no off-site vault to drill from. Fix: declare pipeline.offsite"
            " (docs/fleet.md#off-site-vault) or remove source: offsite",
        )
        for a, agent in enumerate(fleet.agents)
        for t, target in enumerate(agent.targets)
        if target.drill is not None and target.drill.source == "offsite"
    ]


def _wal_problems(fleet: Fleet) -> list[Problem]:
    """Only a target that archives WAL has a WAL RPO."""
    return [
        (
            ("agents", a, "targets", t, "wal_rpo"),
            f"engine {target.engine} archives no WAL, so wal_rpo would never be watched."
            " Fix: use engine: postgresql-physical for point-in-time recovery (docs/pitr.md) or remove wal_rpo",
        )
        for a, agent in enumerate(fleet.agents)
        for t, target in enumerate(agent.targets)
        if target.wal_rpo is not None and not target.pitr
    ]
