"""The machine-readable facts of an alert (its ``alert`` message attribute), every text masked and cut."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backup_contracts.redaction import redact, redact_value

if TYPE_CHECKING:
    from backup_functions.alerts import Phase, Situation

ERROR_MAX = 500
STDERR_IN_JSON_MAX = 1024


def alert_facts(s: Situation, kind: str, phase: Phase, what: str, steps: list[str]) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "pipeline": s.pipeline,
        "kind": kind,
        "phase": phase,
        "what": what,
        "target": s.target,
        "agent": s.agent,
        "since": s.since.isoformat(),
        "at": s.now.isoformat(),
        "duration_s": int((s.now - s.since).total_seconds()),
        "last_good_at": s.last_good_at.isoformat() if s.last_good_at else None,
        "last_good_age_s": int((s.now - s.last_good_at).total_seconds()) if s.last_good_at else None,
        "last_good_run_id": s.last_good_run_id,
        "rpo_s": int(s.rpo.total_seconds()) if s.rpo else None,
        "job_id": s.job_id,
        "run_id": s.run_id,
        "deadline": s.deadline.isoformat() if s.deadline else None,
        "stage": s.stage,
        "exit_code": s.exit_code,
        "error": redact(s.error)[:ERROR_MAX] if s.error else None,
        "stderr_tail": redact(s.stderr_tail)[-STDERR_IN_JSON_MAX:] if s.stderr_tail else None,
        "problems": list(s.problems) or None,
        "notify_count": s.notify_count,
        "next_steps": steps,
        **s.extra,
    }
    # every text is masked whole before it is cut (above), and once more wherever it sits in the facts
    return redact_value({k: v for k, v in facts.items() if v is not None})
