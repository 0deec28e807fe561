"""``backupctl status``: one line per target — last good backup, its age against the RPO, size, state.

Reads: the fleet file names the targets (the ledger has no "all targets" partition, and a Scan is
never used); their state rows come with BatchGetItem (one call per 100 targets), the agents' rows the
same way, and open incidents with one Query of the INCIDENTS partition. PITR targets add a WAL column: their
WAL archive summaries, one more BatchGetItem (``backupctl/wal_status.py``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from backup_contracts.fleet import Fleet
from backup_contracts.formatting import format_age, format_bytes, format_time
from backup_functions.ledger import AgentState, Ledger, SilenceItem, TargetState
from backup_functions.ledger.silences import holding
from backupctl.context import Context
from backupctl.render import GREEN, RED, YELLOW, table, to_json, use_colour
from backupctl.wal_status import WalView

OK = "OK"
RUNNING = "RUNNING"
NO_BACKUP_YET = "NO BACKUP YET"
BREACHED = "RPO BREACHED"
FAILED = "FAILED"
UNVERIFIED = "UNVERIFIED"
STUCK = "STUCK"
NOT_STARTED = "NOT STARTED"
OFFSITE_MISSING = "OFF-SITE MISSING"
WAL_GAP = "WAL GAP"
WAL_LAGS = "WAL LAGS"
HEALTHY_STATES = frozenset({OK, RUNNING, NO_BACKUP_YET})


@dataclass(frozen=True)
class StatusRow:
    """One target's status, from its state row, its agent's row and the open incidents."""

    target: str
    agent: str
    engine: str
    rpo: timedelta
    last_good_at: datetime | None = None
    last_good_bytes: int | None = None
    last_good_run_id: str | None = None
    last_run_state: str | None = None
    last_run_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure_error: str | None = None
    rpo_deadline: datetime | None = None
    agent_heartbeat_at: datetime | None = None
    incidents: tuple[str, ...] = ()
    last_drill_at: datetime | None = None
    last_rto_s: float | None = None
    last_drill_ok: bool | None = None
    rto: timedelta | None = None  # the target's objective (fleet ``rto:``)
    offsite: bool = False  # the fleet has an off-site vault
    rpo_needs_offsite: bool = False  # a backup counts toward the RPO once its off-site copy is verified
    last_offsite_run_id: str | None = None
    last_offsite_good_at: datetime | None = None
    wal: WalView | None = None  # a PITR target's WAL archive (backupctl/wal_status.py)

    @property
    def counted_good_at(self) -> datetime | None:
        """The end of the newest backup that counts toward the RPO."""
        return self.last_offsite_good_at if self.rpo_needs_offsite else self.last_good_at

    def offsite_cell(self, now: datetime) -> str:
        """``ok``; ``pending 12m`` (since the newest good backup; ``last copy 1d`` when an older one has one);
        ``MISSING 2h`` once the lag passed (the incident is open)."""
        if self.last_good_at is None:
            return "-"
        if self.last_offsite_run_id == self.last_good_run_id:
            return "ok"
        word = "MISSING" if "offsite" in self.incidents else "pending"
        older = f" (last copy {format_age(now - self.last_offsite_good_at)})" if self.last_offsite_good_at else ""
        return f"{word} {format_age(now - self.last_good_at)}{older}"

    @property
    def rto_met(self) -> bool | None:
        """Did the last measured drill meet the objective? None without an objective or a measurement."""
        if self.rto is None or self.last_rto_s is None:
            return None
        return self.last_rto_s <= self.rto.total_seconds()

    @classmethod
    def from_items(
        cls,
        *,
        target: str,
        agent: str,
        engine: str,
        rpo: timedelta,
        state: TargetState | None,
        agent_state: AgentState | None = None,
        incidents: tuple[str, ...] = (),
        rto: timedelta | None = None,
        offsite: bool = False,
        rpo_needs_offsite: bool = False,
    ) -> StatusRow:
        if state is None:
            return cls(
                target=target,
                agent=agent,
                engine=engine,
                rpo=rpo,
                rto=rto,
                offsite=offsite,
                rpo_needs_offsite=rpo_needs_offsite,
                incidents=incidents,
                agent_heartbeat_at=agent_state.last_heartbeat_at if agent_state else None,
            )
        return cls(
            target=target,
            agent=agent,
            engine=engine,
            rpo=rpo,
            rto=rto,
            last_good_at=state.last_good_at,
            last_good_bytes=state.last_good_bytes,
            last_good_run_id=state.last_good_run_id,
            last_run_state=state.last_run_state,
            last_run_at=state.last_run_at,
            last_failure_at=state.last_failure_at,
            last_failure_error=state.last_failure_error,
            rpo_deadline=state.rpo_deadline,
            agent_heartbeat_at=agent_state.last_heartbeat_at if agent_state else None,
            incidents=incidents,
            last_drill_at=state.last_drill_at,
            last_rto_s=state.last_drill_rto_s,
            last_drill_ok=state.last_drill_ok,
            offsite=offsite,
            rpo_needs_offsite=rpo_needs_offsite,
            last_offsite_run_id=state.last_offsite_run_id,
            last_offsite_good_at=state.last_offsite_good_at,
        )

    def age(self, now: datetime) -> timedelta | None:
        """How old the newest backup that counts toward the RPO is."""
        counted = self.counted_good_at
        return now - counted if counted else None

    def state(self, now: datetime) -> str:
        """The one word an on-call engineer needs first; problems before progress."""
        if "end" in self.incidents:
            return STUCK
        newest_good = self.last_good_at or datetime.min.replace(tzinfo=UTC)
        if self.last_failure_at and self.last_failure_at > newest_good:
            return UNVERIFIED if self.last_run_state == "unverified" or "unverified" in self.incidents else FAILED
        counted = self.counted_good_at
        if (counted and now - counted > self.rpo) or (
            counted is None and self.last_good_at and "rpo" in self.incidents
        ):
            return BREACHED
        if self.last_good_at is None and ((self.rpo_deadline and self.rpo_deadline <= now) or "rpo" in self.incidents):
            return BREACHED
        if "offsite" in self.incidents:
            return OFFSITE_MISSING
        if "wal-gap" in self.incidents or "wal-lag" in self.incidents:
            return WAL_GAP if "wal-gap" in self.incidents else WAL_LAGS
        if "start" in self.incidents:
            return NOT_STARTED
        if self.last_run_state == "started":
            return RUNNING
        return OK if self.last_good_at else NO_BACKUP_YET

    def breached(self, now: datetime) -> bool:
        return self.state(now) not in HEALTHY_STATES

    def as_json(self, now: datetime) -> dict[str, Any]:
        age = self.age(now)
        return {
            "target": self.target,
            "agent": self.agent,
            "engine": self.engine,
            "state": self.state(now),
            "rpo_s": int(self.rpo.total_seconds()),
            "last_good_at": self.last_good_at,
            "last_good_age_s": int(age.total_seconds()) if age is not None else None,
            "last_good_bytes": self.last_good_bytes,
            "last_good_run_id": self.last_good_run_id,
            "last_run_state": self.last_run_state,
            "last_run_at": self.last_run_at,
            "last_failure_at": self.last_failure_at,
            "last_failure_error": self.last_failure_error,
            "agent_heartbeat_at": self.agent_heartbeat_at,
            "open_incidents": list(self.incidents),
            "last_drill_at": self.last_drill_at,
            "last_rto_s": self.last_rto_s,
            "last_drill_ok": self.last_drill_ok,
            "rto_objective_s": int(self.rto.total_seconds()) if self.rto is not None else None,
            "rto_met": self.rto_met,
            **(
                {
                    "offsite": self.offsite_cell(now),
                    "last_offsite_run_id": self.last_offsite_run_id,
                    "last_offsite_good_at": self.last_offsite_good_at,
                    "rpo_needs_offsite": self.rpo_needs_offsite,
                }
                if self.offsite
                else {}
            ),
            **({"wal": self.wal.as_json(now)} if self.wal else {}),
        }


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else format_age(timedelta(seconds=seconds))


def _rto_cell(row: StatusRow) -> str:
    """The last drill's measured RTO against the objective: ``20m / 30m``, ``45m / 30m BREACHED``."""
    measured = "-" if row.last_rto_s is None else _seconds(row.last_rto_s)
    if row.rto is None:
        return measured
    return f"{measured} / {format_age(row.rto)}" + (" BREACHED" if row.rto_met is False else "")


def _drill_cell(row: StatusRow) -> str:
    if row.last_drill_at is None:
        return "-"
    verdict = "" if row.last_drill_ok is None else " ok" if row.last_drill_ok else " FAILED"
    return f"{format_time(row.last_drill_at)}{verdict}"


def _age_vs_rpo(row: StatusRow, now: datetime) -> str:
    age = row.age(now)
    rpo = format_age(row.rpo)
    return f"- / {rpo}" if age is None else f"{format_age(age)} / {rpo}"


def render_status(rows: list[StatusRow], now: datetime, *, colour: bool = False) -> str:
    """The status table. Drill/RTO columns appear once any target has a drill recorded or an RTO objective."""
    headers = ["TARGET", "AGENT", "LAST GOOD BACKUP", "AGE / RPO", "SIZE", "STATE", "INCIDENTS"]
    with_offsite = any(r.offsite for r in rows)
    if with_offsite:
        headers.insert(5, "OFF-SITE")
    with_wal = any(r.wal for r in rows)
    if with_wal:
        headers.insert(headers.index("STATE"), "WAL")
    with_drills = any(r.last_drill_at or r.last_rto_s is not None or r.rto is not None for r in rows)
    if with_drills:
        headers += ["LAST DRILL", "RTO / OBJECTIVE"]
    cells: list[list[str]] = []
    colours: list[str | None] = []
    for row in rows:
        state = row.state(now)
        line = [
            row.target,
            row.agent,
            format_time(row.last_good_at) if row.last_good_at else "never",
            _age_vs_rpo(row, now),
            format_bytes(row.last_good_bytes) if row.last_good_bytes is not None else "-",
            state,
            ",".join(row.incidents) or "-",
        ]
        if with_offsite:
            line.insert(5, row.offsite_cell(now))
        if with_wal:
            line.insert(headers.index("WAL"), row.wal.cell(now) if row.wal else "-")
        if with_drills:
            line += [
                _drill_cell(row),
                _rto_cell(row),
            ]
        cells.append(line)
        colours.append(None if not colour else (GREEN if state == OK else YELLOW if state in HEALTHY_STATES else RED))
    breached = sum(1 for r in rows if r.breached(now))
    summary = f"{len(rows)} target(s), {breached} need attention - {format_time(now)}\n"
    return table(headers, cells, colours) + summary


def collect_status(
    ledger: Ledger, fleet: Fleet, *, now: datetime | None = None, silences: list[SilenceItem] | None = None
) -> list[StatusRow]:
    """Status rows for every target of the fleet (BatchGetItem + one incidents Query)."""
    pairs = fleet.targets()
    states = ledger.targets.get_many(t.name for _, t in pairs)
    agents = ledger.agents.get_many(a.name for a in fleet.agents)
    archives = ledger.wal.archives(t.name for _, t in pairs if t.pitr)  # no call without PITR targets
    incidents: dict[str, list[str]] = {}
    agent_of = {target.name: agent.name for agent, target in pairs}
    open_incidents = ledger.incidents.list_open()
    in_force = silences
    if in_force is None:  # read only when an incident could be held
        in_force = ledger.silences.in_force(now or datetime.now(UTC)) if open_incidents else []
    for incident in open_incidents:
        subject, kind = incident.subject, incident.kind
        about = incident.about_target
        silence = holding(in_force, kind=kind, target=about, agent=agent_of.get(about or "", incident.about_agent))
        held = [f"silenced-by-{silence.silence_id}"] if silence else []
        if subject.startswith("target:"):
            name = subject.removeprefix("target:")
            incidents.setdefault(name, []).append(kind)
            if incident.suppressed_by:  # recorded, not paged: its cause's incident pages instead
                incidents[name].append(f"held-by-{incident.suppressed_by.rpartition('#')[2]}")
            incidents[name] += held  # recorded and shown, not paged until the silence ends
        elif subject.startswith("agent:"):
            incidents.setdefault(f"agent:{subject.removeprefix('agent:')}", []).extend([kind, *held])
        elif subject.startswith("pipeline:"):
            incidents.setdefault("pipeline", []).append(kind)
    rows = []
    for agent, target in pairs:
        wal = WalView.of(archives.get(target.name), target.wal_rpo_delta) if target.wal_rpo_delta else None
        kinds = incidents.get(target.name, []) + [f"agent-{k}" for k in incidents.get(f"agent:{agent.name}", [])]
        kinds += [f"pipeline-{k}" for k in incidents.get("pipeline", [])]
        rows.append(
            replace(
                StatusRow.from_items(
                    target=target.name,
                    agent=agent.name,
                    engine=target.engine,
                    rpo=target.rpo_delta,
                    rto=target.rto_delta,
                    offsite=fleet.pipeline.offsite is not None,
                    rpo_needs_offsite=target.rpo_needs_offsite,
                    state=states.get(target.name),
                    agent_state=agents.get(agent.name),
                    incidents=tuple(sorted(set(kinds))),
                ),
                wal=wal,
            )
        )
    return rows


def silences_footer(silences: list[SilenceItem]) -> str:
    """One line per silence in force, under the table (nothing when there is none)."""
    lines = [
        f"Silence {s.silence_id}: holds pages about {s.target or '*'}"
        f"{f' on agent {s.agent}' if s.agent else ''} until {format_time(s.ends_at)} - {s.requested_by}: {s.reason}"
        for s in sorted(silences, key=lambda s: s.ends_at)
    ]
    return "".join(f"{line}\n" for line in lines)


def render_status_table(
    session: Any, table_name: str, fleet: Fleet, *, now: datetime | None = None, colour: bool = False
) -> str:
    """What ``backupctl status`` prints, for a boto3 session and ledger table; the local demo calls this."""
    ledger = Ledger(table_name, session.client("dynamodb"))
    now = now or datetime.now(UTC)
    in_force = ledger.silences.in_force(now)  # one Query serves the incidents' marks and the footer
    rows = collect_status(ledger, fleet, now=now, silences=in_force)
    return render_status(rows, now, colour=colour) + silences_footer(in_force)


def run(args: argparse.Namespace, ctx: Context) -> int:
    now = datetime.now(UTC)
    fleet = ctx.fleet  # the list of targets: status needs the fleet file
    in_force = ctx.ledger.silences.in_force(now)  # one Query serves the incidents' marks and the footer
    rows = collect_status(ctx.ledger, fleet, now=now, silences=in_force)
    if ctx.json:
        sys.stdout.write(to_json([row.as_json(now) for row in rows]))
    else:
        sys.stdout.write(render_status(rows, now, colour=use_colour(sys.stdout)))
        sys.stdout.write(silences_footer(in_force))
    return 1 if args.fail_on_breach and any(row.breached(now) for row in rows) else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="every target: last good backup, age vs RPO, size, state")
    parser.add_argument(
        "--fail-on-breach", action="store_true", help="exit 1 when any target needs attention (for scripts)"
    )
    parser.set_defaults(command=run)
