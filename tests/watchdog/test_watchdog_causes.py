"""The pipeline-wide causes and the agent that heartbeats but takes no jobs, tick by tick on a simulated
clock (moto ledger): one page per cause, the per-target and per-agent incidents it explains held, one
recovery message, and what is still behind afterwards paging on its own (once)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from wd_env import T0, Env, make_fleet

from backup_contracts import ledger as keys

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
M = timedelta(minutes=1)
PIPELINE_DOWN = keys.incident_sk("pipeline:wd", "agents")
DISPATCHER = keys.incident_sk("pipeline:wd", "dispatcher")


def _held(env: Env, by: str) -> list[tuple[str, str]]:
    return sorted((i.subject, i.kind) for i in env.ledger.incidents.list_open() if i.suppressed_by == by)


def _kinds(env: Env) -> list[tuple[str, str, str | None]]:
    return [(m.kind, m.phase, m.attributes.get("agent") or m.attributes.get("target")) for m in env.inbox()]


# ---------------------------------------------------------------------------------------- PIPELINE DOWN


def _agents(env: Env, count: int) -> list[str]:
    env.fleet = make_fleet(targets=count, agents=count)
    names = [a.name for a in env.fleet.agents]
    for name in names:
        env.heartbeat(name, T0)
    return names


def test_most_agents_silent_pages_once_for_the_pipeline_holds_the_agents_and_recovers_in_one_message(
    env: Env,
) -> None:
    agents = _agents(env, 4)
    env.heartbeat("host-3", T0 + 20 * M)  # host-3 stays alive; host-0..2 fall silent at T0+30m

    env.tick(T0 + 35 * M)
    opened = env.inbox()
    env.heartbeat("host-3", T0 + 40 * M)
    env.tick(T0 + 40 * M)
    env.tick(T0 + 45 * M)
    quiet = env.inbox()
    held = _held(env, PIPELINE_DOWN)
    for name in agents:
        env.heartbeat(name, T0 + 50 * M)
    env.tick(T0 + 55 * M)
    recovered = env.inbox()
    env.tick(T0 + 60 * M)

    assert [(m.kind, m.phase) for m in opened] == [("agents", "open")]
    assert "PIPELINE DOWN" in opened[0].subject
    assert "Agents:      host-0, host-1, host-2" in opened[0].body
    assert "host-3" not in opened[0].body
    assert quiet == []
    assert held == [("agent:host-0", "heartbeat"), ("agent:host-1", "heartbeat"), ("agent:host-2", "heartbeat")]
    assert [(m.kind, m.phase) for m in recovered] == [("agents", "resolved")]
    assert "Agents:      host-0, host-1, host-2" in recovered[0].body
    assert env.inbox() == []
    assert env.incidents() == []


@pytest.mark.parametrize(
    ("fleet_size", "silent"),
    [(4, 2), (2, 2)],  # half of the fleet is not most of it; two agents are too few to call it the pipeline
)
def test_no_pipeline_incident_when_not_more_than_half_of_at_least_3_agents_are_silent(
    env: Env, fleet_size: int, silent: int
) -> None:
    agents = _agents(env, fleet_size)
    for name in agents[silent:]:
        env.heartbeat(name, T0 + 20 * M)

    env.tick(T0 + 35 * M)

    assert _kinds(env) == [("heartbeat", "open", name) for name in agents[:silent]]


# ----------------------------------------------------------------------------- AGENT NOT TAKING JOBS


def _alive(env: Env, at: datetime) -> None:
    env.heartbeat("host-0", at)


@pytest.mark.parametrize("unstarted", [1, 2])
def test_an_agent_that_heartbeats_but_starts_no_job_of_2_targets_is_one_cause(env: Env, unstarted: int) -> None:
    targets = ["db-0-0", "db-0-1"][:unstarted]
    for target in ("db-0-0", "db-0-1"):
        env.good_backup(target, T0)
    for target in targets:
        env.dispatched_job(target, T0 + 2 * H)
    _alive(env, T0 + 2 * H + 20 * M)

    env.tick(T0 + 2 * H + 30 * M)
    received = env.inbox()
    _alive(env, T0 + 2 * H + 35 * M)
    env.tick(T0 + 2 * H + 35 * M)

    if unstarted == 1:
        assert [(m.kind, m.phase, m.attributes.get("target")) for m in received] == [("start", "open", "db-0-0")]
        assert _held(env, keys.incident_sk("agent:host-0", "jobs")) == []
    else:
        assert [(m.kind, m.phase, m.attributes.get("agent")) for m in received] == [("jobs", "open", "host-0")]
        assert "AGENT NOT TAKING JOBS" in received[0].subject
        assert "Affected targets (2" in received[0].body
        assert _held(env, keys.incident_sk("agent:host-0", "jobs")) == [
            ("target:db-0-0", "start"),
            ("target:db-0-1", "start"),
        ]
    assert env.inbox() == []


# ------------------------------------------------------------------------------ DISPATCHER NOT RUNNING


def _stalled_dispatcher(env: Env) -> None:
    """Two targets backed up at T0 (RPO 26 h); the dispatcher's last completed tick is at T0+25h."""
    env.dispatcher_running = False
    for target in ("db-0-0", "db-0-1"):
        env.good_backup(target, T0)
    env.ledger.jobs.advance_marker(T0 + 25 * H, "fleet")


def test_a_stalled_dispatcher_pages_once_holds_the_missing_backups_and_a_fresh_marker_resolves_it(
    env: Env,
) -> None:
    _stalled_dispatcher(env)
    _alive(env, T0 + 25 * H)
    env.tick(T0 + 25 * H + 15 * M)  # three 5-minute intervals: not yet
    assert env.inbox() == []

    _alive(env, T0 + 25 * H + 16 * M)
    env.tick(T0 + 25 * H + 16 * M)
    opened = env.inbox()
    for minutes in (0, 5, 10):  # the RPOs pass: recorded, held (the first reminder is due at 26h16)
        _alive(env, T0 + 26 * H + minutes * M)
        env.tick(T0 + 26 * H + minutes * M)
    quiet = env.inbox()
    held = _held(env, DISPATCHER)
    for target in ("db-0-0", "db-0-1"):  # the dispatcher runs again and the backups catch up
        env.good_backup(target, T0 + 26 * H + 12 * M)
    env.ledger.jobs.advance_marker(T0 + 26 * H + 12 * M, "fleet")
    _alive(env, T0 + 26 * H + 15 * M)
    env.tick(T0 + 26 * H + 15 * M)
    recovered = env.inbox()
    env.tick(T0 + 26 * H + 20 * M)

    assert [(m.kind, m.phase) for m in opened] == [("dispatcher", "open")]
    assert "DISPATCHER NOT RUNNING" in opened[0].subject
    assert "Last tick:   2026-11-21 01:00:00 UTC (16m ago)" in opened[0].body
    assert "check the pipeline's functions and schedules (CloudWatch: dispatcher, watchdog)" in opened[0].body
    assert quiet == []
    assert held == [("target:db-0-0", "rpo"), ("target:db-0-1", "rpo")]
    assert [(m.kind, m.phase) for m in recovered] == [("dispatcher", "resolved")]
    assert "Caught up:   db-0-0, db-0-1" in recovered[0].body
    assert env.inbox() == []
    assert env.incidents() == []


def test_a_dispatcher_that_never_ran_after_a_deploy_pages_once_the_watchdog_has_waited_long_enough(
    env: Env,
) -> None:
    env.dispatcher_running = False  # deployed, but its schedule never fires: no job, no RPO watch, nothing due
    for minutes in (0, 5, 10, 15):
        env.tick(T0 + minutes * M)
    quiet = env.inbox()
    env.tick(T0 + 16 * M)
    opened = env.inbox()
    env.ledger.jobs.advance_marker(T0 + 18 * M, "fleet")  # its first tick at last
    env.tick(T0 + 20 * M)
    recovered = env.inbox()

    assert quiet == []
    assert [(m.kind, m.phase) for m in opened] == [("dispatcher", "open")]
    assert "the dispatcher has never completed a tick, so no target is watched yet" in opened[0].body
    assert "ticking since 2026-11-20T00:00:00.000000Z" in opened[0].body
    assert [(m.kind, m.phase) for m in recovered] == [("dispatcher", "resolved")]


# ---------------------------------------------------------------------- after the cause: still behind


def test_after_a_cause_recovers_the_target_still_behind_pages_once_on_its_own_the_one_caught_up_does_not(
    env: Env,
) -> None:
    _stalled_dispatcher(env)
    for minutes in (16, 60, 65):  # the dispatcher cause opens, then holds both missing backups
        _alive(env, T0 + 25 * H + minutes * M)
        env.tick(T0 + 25 * H + minutes * M)
    env.inbox()
    env.good_backup("db-0-0", T0 + 26 * H + 10 * M)  # db-0-0 catches up while held ...
    _alive(env, T0 + 26 * H + 10 * M)
    env.tick(T0 + 26 * H + 10 * M)
    quiet = env.inbox()
    env.ledger.jobs.advance_marker(T0 + 26 * H + 20 * M, "fleet")  # ... then the dispatcher recovers
    _alive(env, T0 + 26 * H + 20 * M)
    env.tick(T0 + 26 * H + 20 * M)
    recovered = env.inbox()
    for minutes in (25, 30, 45):  # the dispatcher keeps running; db-0-1 is reminded only after an hour
        env.ledger.jobs.advance_marker(T0 + 26 * H + minutes * M, "fleet")
        _alive(env, T0 + 26 * H + minutes * M)
        env.tick(T0 + 26 * H + minutes * M)
    after = env.inbox()

    assert quiet == []
    assert sorted((m.kind, m.phase, m.attributes.get("target")) for m in recovered) == [
        ("dispatcher", "resolved", None),
        ("rpo", "open", "db-0-1"),
    ]
    resolved = next(m for m in recovered if m.kind == "dispatcher")
    assert "Caught up:   db-0-0" in resolved.body
    assert "Still behind (paged on their own): db-0-1" in resolved.body
    assert after == []
    assert [(i.subject, i.kind, i.suppressed_by) for i in env.ledger.incidents.list_open()] == [
        ("target:db-0-1", "rpo", None)
    ]
