"""The alert kinds and their severities: which incidents exist, which are root causes, who pages how loudly.

Severity: ``critical`` for an open or reminded failure, unverified backup, missed RPO, silent agent, a root
cause, WAL archiving that lags or has a gap, or any kind not listed in ``SEVERITY``; ``warning`` for a job
never started or stuck and a drill slower than its RTO, and a refused silence; ``info`` for every recovery, a
removal from the fleet, a silence set or lifted, and the canary (``facts["severity"]``, when set, decides
instead). ``backup_functions.alerts`` re-exports every name but the WAL archive's (``wal_alerts.py``).
"""

from __future__ import annotations

# Incident kinds (ledger incident_sk(subject, kind)); watch kinds reuse the same words.
FAILED = "failed"
UNVERIFIED = "unverified"
RPO = "rpo"
NOT_STARTED = "start"
STUCK = "end"
AGENT_SILENT = "heartbeat"
OFFSITE = "offsite"  # a good backup's copy is not verified in the off-site vault within the lag
WAL_LAG = "wal-lag"  # a PITR target's server has WAL the archive lacks, older than its wal_rpo (wal_alerts.py)
WAL_GAP = "wal-gap"  # a WAL segment is missing from the archive while later ones are there (wal_alerts.py)
WAL_KINDS = frozenset({WAL_LAG, WAL_GAP})
# Causes (one incident per root cause; the per-target incidents they explain are recorded, not paged)
AGENT_JOBS = "jobs"  # the agent heartbeats but none of its jobs start
PIPELINE_AGENTS = "agents"  # most agents of the fleet silent at once
DISPATCHER = "dispatcher"  # no dispatcher tick for longer than its interval allows
VAULT = "vault"  # off-site copies of several targets late at once: replication or the vault, not a target
REMOVED = "removed"  # the final notice of a target or agent removed from the fleet
CAUSE_KINDS = frozenset({AGENT_SILENT, AGENT_JOBS, PIPELINE_AGENTS, DISPATCHER, VAULT})
AFFECTED_IN_BODY_MAX = 50
CANARY = "canary"  # the daily synthetic alert (backup_functions.canary), not an incident

SEVERITY: dict[str, str] = {
    FAILED: "critical",
    UNVERIFIED: "critical",
    RPO: "critical",
    AGENT_SILENT: "critical",
    WAL_LAG: "critical",  # a disaster now loses the WAL not archived: the PITR target's RPO is broken
    WAL_GAP: "critical",  # point-in-time restores cannot replay past the missing segment
    OFFSITE: "critical",  # one region, one account, one key hold every copy: the 3-2-1 promise is broken
    NOT_STARTED: "warning",
    STUCK: "warning",
    CANARY: "info",
    AGENT_JOBS: "critical",
    PIPELINE_AGENTS: "critical",
    DISPATCHER: "critical",
    VAULT: "critical",
    REMOVED: "info",  # nothing to do: the target or agent is gone by intent
    "rto-breached": "warning",  # restore/messages.RTO_BREACHED: the drill restored fine, only too slowly
    "silence": "info",  # silence_requests: SILENCE SET / SILENCE LIFTED (announced, nothing to do)
    "silence-refused": "warning",  # silence_requests: a silence request the pipeline did not record
}


def severity_of(kind: str, phase: str) -> str:
    """``info`` / ``warning`` / ``critical`` (see the module docstring); unknown kinds page as critical."""
    return "info" if phase == "resolved" else SEVERITY.get(kind, "critical")
