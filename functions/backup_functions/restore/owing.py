"""What a restore request owes after a state change, through the ledger's outbox (``ledger/outbox.py``).

Each decision or report is one conditional transition that also records what the new state owes — the
Restore Rejected / Validated event, the SNS message (rejection, approval notice, succeeded, failed), the job
for the destination agent, a drill's outcome on its source target — each entry the exact message or job it
will be. ``settle`` then performs the entries and clears each; a redelivered record, a retried approval or
the next tick settles what is still owed, so each is done once, and a message announced to a person is the
one stored, never a new one.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.events import Contract
from backup_contracts.jobs import Job
from backup_contracts.naming import wal_index_key
from backup_functions.alerts import Alert
from backup_functions.ledger import RestoreItem
from backup_functions.ledger.outbox import Owed, Owner
from backup_functions.ports import Courier, alert_entry, event_entry
from backup_functions.restore import messages
from backup_functions.restore.context import Context

PRESIGN_MARGIN = timedelta(minutes=15)  # the URL outlives the job deadline by this much


def entry_id(restore_id: str, state: str, name: str) -> str:
    """The entry's stable identity: a state is reached once, and owes each name once."""
    return f"restore:{restore_id}:{state}:{name}"


class Owing:
    """Builds a restore's owed entries and performs them."""

    def __init__(self, context: Context) -> None:
        self.context = context

    @property
    def courier(self) -> Courier:
        """Through the context's ports as they are now (a port replaced there is replaced here)."""
        c = self.context
        return Courier(
            notifier=c.notifier,
            events=c.events,
            jobs=c.jobs,
            objects=c.objects,
            now=c.clock.now,
            actions={"drill-result": self._drill_result},
        )

    # ------------------------------------------------------------------ entries
    def alert(self, restore_id: str, state: str, alert: Alert, at: datetime, by: Owner = "handler") -> Owed:
        return alert_entry(alert, id=entry_id(restore_id, state, "alert"), at=at, by=by)

    def event(self, restore_id: str, state: str, event: Contract, at: datetime, by: Owner = "handler") -> Owed:
        return event_entry(event, id=entry_id(restore_id, state, "event"), at=at, by=by)

    def job(self, restore_id: str, job: Job, at: datetime, by: Owner = "handler") -> Owed:
        """The job as stored (without its presigned URL, which is signed at each send)."""
        assert job.source is not None  # noqa: S101 - restore jobs always carry their source
        presign: dict[str, Any] = {
            "bucket": job.source.bucket,
            "key": job.source.key,
            "version_id": job.source.version_id,
            "valid_until": keys.iso(job.deadline + PRESIGN_MARGIN),
        }
        if job.source.wal is not None:  # the WAL index's URL, signed at each send like the backup's
            presign["wal_index"] = {"bucket": self.context.config.bucket, "key": wal_index_key(restore_id)}
        payload = {
            "queue_url": self.context.config.queue_url(job.agent),
            "body": job.model_dump_json(exclude_none=True),
            "presign": presign,
        }
        return Owed(id=entry_id(restore_id, "dispatched", "job"), kind="job", owed_at=at, by=by, payload=payload)

    def failure(
        self, item: RestoreItem, at: datetime, error: str, *, finished_at: datetime, by: Owner
    ) -> dict[str, Owed]:
        """What a restore that fails owes (``item`` as it will be once failed): the alert, and for a drill
        its outcome on the source target."""
        alert = messages.restore_failed(self.context.config.pipeline, item=item, now=at)
        owed = {"alert": self.alert(item.restore_id, "failed", alert, at, by)}
        if item.drill:
            owed["drill-result"] = self.drill_result(
                item, at, ok=False, rto_s=None, error=error, finished_at=finished_at, by=by
            )
        return owed

    def drill_result(
        self,
        item: RestoreItem,
        at: datetime,
        *,
        ok: bool,
        rto_s: float | None,
        error: str | None,
        finished_at: datetime,
        by: Owner = "handler",
    ) -> Owed:
        payload = {
            "target": item.target,
            "finished_at": keys.iso(finished_at),
            "ok": ok,
            "rto_s": rto_s,
            "error": error,
        }
        state = "succeeded" if ok else "failed"
        payload["restore_id"] = item.restore_id
        return Owed(
            id=entry_id(item.restore_id, state, "drill-result"), kind="drill-result", owed_at=at, by=by, payload=payload
        )

    # ------------------------------------------------------------------ performing
    def settle(self, item: RestoreItem | None, *, now: datetime | None = None) -> None:
        """Perform what ``item`` owes (those a tick at ``now`` may, when given) and clear each."""
        if item is None or not item.owed:
            return
        entries = item.due(now) if now is not None else dict(item.owed)
        remaining = set(item.owed)
        at = self.context.clock.now()
        for name, entry in sorted(entries.items()):
            self.courier.deliver(entry)
            remaining.discard(name)
            self.context.ledger.restores.clear(item, name, entry, at=at, last=not remaining)

    def _drill_result(self, entry: Owed) -> None:
        p: dict[str, Any] = json.loads(json.dumps(entry.payload))
        self.context.ledger.targets.record_drill(
            p["target"],
            finished_at=keys.parse_iso(p["finished_at"]),
            ok=bool(p["ok"]),
            rto_s=p.get("rto_s"),
            restore_id=p["restore_id"],
            error=p.get("error"),
        )
