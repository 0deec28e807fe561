"""Silences: which incidents a ``Silence Requested`` holds, and which requests the pipeline refuses.

One definition for the watchdog and the audit (who hold pages), the CLI (which checks a request before
sending it) and the status and report (which show what was held):

- a silence names a **target** glob, an **agent** glob, or both (``*``, ``?``, ``[...]``, over fleet names);
  it holds an incident when every glob it names matches: a target's incident matches by the target's name
  and by the agent that runs it, an agent's own incident (silent, jobs not starting) only a silence with
  no target glob. Pipeline-wide incidents (most agents silent, dispatcher not running) are never held;
- it holds from ``starts_at`` (default: when it was recorded) until ``expires_at`` or until lifted;
- a request is refused when it ends before it starts, when it would last longer than the fleet's
  ``pipeline.alerts.silence_max``, when it has already expired, when it starts more than
  ``STARTS_AHEAD_MAX`` ahead, or when its globs match nothing in the fleet (a typo would otherwise hold
  nothing and look like it worked).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from backup_contracts.events import SilenceRequested
from backup_contracts.formatting import format_age, format_time
from backup_contracts.schedule import format_duration

STARTS_AHEAD_MAX = timedelta(days=30)  # a maintenance window may be booked at most this far ahead


def effective_start(request: SilenceRequested, now: datetime) -> datetime:
    """When the silence starts holding: its ``starts_at``, or ``now`` when that is absent or past."""
    return max(request.starts_at or now, now)


def matches(target_glob: str | None, agent_glob: str | None, *, target: str | None, agent: str | None) -> bool:
    """Whether a silence with these globs holds an incident about ``target`` (run by ``agent``) or, with
    ``target`` None, about the agent itself."""
    if target_glob is None and agent_glob is None:
        return False
    if target_glob is not None and (target is None or not fnmatchcase(target, target_glob)):
        return False
    return agent_glob is None or (agent is not None and fnmatchcase(agent, agent_glob))


def problems(
    request: SilenceRequested,
    *,
    now: datetime,
    longest: timedelta,
    targets: Iterable[tuple[str, str]],
) -> list[str]:
    """Why the pipeline refuses ``request`` (empty: it is accepted), each with its fix. ``targets`` are the
    fleet's (agent, target) pairs."""
    found: list[str] = []
    starts = effective_start(request, now)
    if request.starts_at is not None and request.starts_at >= request.expires_at:
        found.append("it would end before it starts. Fix: give a starts_at before expires_at")
    elif request.expires_at <= now:
        found.append(f"it expired at {format_time(request.expires_at)}. Fix: give an expiry in the future")
    elif request.expires_at - starts > longest:
        found.append(
            f"it would last {format_age(request.expires_at - starts)}, longer than this fleet allows"
            f" (pipeline.alerts.silence_max: {format_duration(longest)}). Fix: expire it sooner and renew it if"
            " the work takes longer"
        )
    if starts - now > STARTS_AHEAD_MAX:
        found.append(
            f"it starts {format_age(starts - now)} from now, more than {format_duration(STARTS_AHEAD_MAX)} ahead."
            " Fix: book the window closer to the date"
        )
    agent_of = {target: agent for agent, target in targets}
    if request.target is not None:
        held = [t for t, a in agent_of.items() if matches(request.target, request.agent, target=t, agent=a)]
    else:
        held = [a for a in set(agent_of.values()) if matches(None, request.agent, target=None, agent=a)]
    if not held:
        named = (("target", request.target), ("agent", request.agent))
        globs = " and ".join(f"{kind} {glob!r}" for kind, glob in named if glob)
        found.append(
            f"{globs} match nothing in the fleet, so the silence would hold nothing. Fix: check the names"
            " (backupctl status lists every target and agent)"
        )
    return found
