"""The agent's restore executor: one restore or drill job from the coordinator, to a verified end.

``RestoreRun`` (``run``) takes a job through the stages below; ``source`` fetches and checks the
backup object (stages 2-3), ``report`` checks the engine's report (stage 6), ``failure`` names the
stage a run fails at.

Stages (``Restore Failed`` names the one that failed):

1. ``config``: the job is for this agent, names a destination in this host's config, carries its
   source object and a presigned URL, and its deadline has not passed.
2. ``download``: the object is streamed from the presigned URL (the agent has no standing read
   permission; the URL is for exactly that object version) into a private spool file, hashing every
   byte (SHA-256) and counting them while it is written. Disk use = the object's stored (compressed)
   size; memory stays one chunk. The spool is deleted at the end, whatever happens.
3. ``verify-object``: size and SHA-256 must equal the run's. **Nothing touches the destination
   before this passes**, so a tampered or truncated object can never be half-restored. (Verifying
   while streaming straight into the database would be cheaper on disk but could only notice a
   mismatch after the destination had been changed.)
4. ``safety-backup`` (in-place only): a normal backup of the destination through the agent's own
   backup pipeline (trigger ``pre-restore``, same events and ledger rows as any backup). If it fails
   the restore is aborted: the destination is untouched.
5. ``restore``: the spool is decompressed (zstd) as a stream into the engine's restore
   (``clone``/``drill``: into the destination target's own connection; ``in-place``: the target).
6. ``verify-restore``: the engine's report (integrity check, tables, rows) is checked, and compared
   with the facts in the backup's manifest (tables in the archive, bytes) when the job carries them.
7. drills only: the scratch destination is cleaned up (``backup_agent.drill.cleanup``).

Every run ends with exactly one ``Restore Succeeded`` (duration, verification, safety backup run
id) or ``Restore Failed`` (stage, error, ``destination_touched``: whether the destination may be
half-restored) event.
"""

from __future__ import annotations

from backup_agent.presigned import open_url
from backup_agent.restore.failure import RestoreFailure, RestoreRefusedError
from backup_agent.restore.report import compact_verification, verify_report
from backup_agent.restore.run import RestoreOutcome, RestoreRun

__all__ = [
    "RestoreFailure",
    "RestoreOutcome",
    "RestoreRefusedError",
    "RestoreRun",
    "compact_verification",
    "open_url",
    "verify_report",
]
