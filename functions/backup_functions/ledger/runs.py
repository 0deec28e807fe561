"""Run records (``TARGET#<t>/RUN#<started>#<run_id>``) and GFS retention claims (``TARGET#<t>/GFS#…``).

The sort key is computable from the Started and from the end event (both carry ``started_at``), so
out-of-order delivery lands on the same item. Terminal states are final: the first terminal event of a
run wins; a later contradicting one changes nothing and the caller compares the stored state with its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.events import BackupFailed, BackupStarted, BackupSucceeded
from backup_functions.ledger.client import LedgerClient, Update, epoch_seconds
from backup_functions.ledger.items import STARTED, SUCCEEDED, RunRecord

_RUNS_END = keys.RUN_SK_PREFIX + "\uffff"
PINNED_UNTIL = datetime(9999, 12, 31, tzinfo=UTC)  # the TTL of a kept backup's run record


def run_id_time(run_id: str) -> datetime | None:
    """The start time an agent's run id begins with (``YYYYmmddTHHMMSSZ-…``), if it does."""
    stamp = run_id.split("-", 1)[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


class Runs:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    # ----------------------------------------------------------------- reads
    def get(self, target: str, started_at: datetime, run_id: str) -> RunRecord | None:
        return RunRecord.parse(self._client.get(keys.target_pk(target), keys.run_sk(started_at, run_id)))

    def newest(self, target: str, *, limit: int | None = None) -> list[RunRecord]:
        """A target's runs, newest first."""
        items = self._client.query(keys.target_pk(target), keys.RUN_SK_PREFIX, newest_first=True, limit=limit)
        return [RunRecord.model_validate(item) for item in items]

    def _between(self, target: str, low: str, high: str) -> Iterator[RunRecord]:
        for item in self._client.query_between(keys.target_pk(target), low, high, newest_first=True):
            yield RunRecord.model_validate(item)

    def by_id(self, target: str, run_id: str) -> RunRecord | None:
        """The run record of ``run_id``: a narrow key range when the id starts with its start time
        (the agent's ``YYYYmmddTHHMMSSZ-…`` ids), otherwise the target's runs filtered by id."""
        started = run_id_time(run_id)
        if started is not None:
            low = f"{keys.RUN_SK_PREFIX}{keys.iso(started)}"
            high = f"{keys.RUN_SK_PREFIX}{keys.iso(started + timedelta(seconds=1))}"
            for run in self._between(target, low, high):
                if run.run_id == run_id:
                    return run
        return next((run for run in self._between(target, keys.RUN_SK_PREFIX, _RUNS_END) if run.run_id == run_id), None)

    def latest_good(
        self, target: str, *, at_or_before: datetime | None = None, with_offsite_copy: bool = False
    ) -> RunRecord | None:
        """The newest succeeded run (whose dump started at or before ``at_or_before``, when given; whose
        off-site copy is verified, with ``with_offsite_copy``)."""
        high = _RUNS_END if at_or_before is None else keys.RUN_SK_PREFIX + keys.iso(at_or_before) + "#\uffff"
        runs = self._between(target, keys.RUN_SK_PREFIX, high)
        wanted = (r for r in runs if r.state == SUCCEEDED and (r.offsite_bucket or not with_offsite_copy))
        return next(wanted, None)

    # ----------------------------------------------------------------- writes (audit)
    def started(self, event: BackupStarted, *, expires_at: datetime) -> None:
        """Create or refresh the run record; never overwrites a terminal state."""
        fields = event.model_dump(mode="python", include=set(BackupStarted.model_fields))
        update = Update().set(type="run", **fields)
        update.set_if_absent(state=STARTED, **{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})
        self._client.update(keys.target_pk(event.target), keys.run_sk(event.started_at, event.run_id), update)

    def ended(
        self,
        event: BackupSucceeded | BackupFailed,
        state: str,
        *,
        expires_at: datetime,
        facts: Mapping[str, Any] | None = None,
    ) -> tuple[bool, RunRecord | None]:
        """started (or unknown) → terminal. Returns (applied, the stored run when not applied)."""
        fields = event.model_dump(mode="python", exclude_none=True)
        update = Update().set(type="run", **fields, **(dict(facts) if facts else {}), state=state)
        update.set_if_absent(**{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})
        condition = f"{update.absent('state')} OR {update.equals('state', STARTED)}"
        if (
            self._client.update(
                keys.target_pk(event.target), keys.run_sk(event.started_at, event.run_id), update, condition
            )
            is not None
        ):
            return True, None
        return False, self.get(event.target, event.started_at, event.run_id)

    def record_offsite(
        self, target: str, started_at: datetime, run_id: str, *, bucket: str, version_id: str | None, at: datetime
    ) -> bool:
        """Where the run's verified off-site copy is (a restore with ``source: offsite`` reads it there)."""
        update = Update().set(offsite_bucket=bucket, offsite_verified_at=at)
        if version_id:
            update.set(offsite_version_id=version_id)
        return (
            self._client.update(keys.target_pk(target), keys.run_sk(started_at, run_id), update, update.exists())
            is not None
        )

    # ----------------------------------------------------------------- retention (keep-set)
    def pin(self, target: str, started_at: datetime, run_id: str) -> bool:
        """A kept backup's run record does not expire while it is in the keep-set: a restore must still find
        it, however old it gets. Its TTL moves to the year 9999 (rather than being removed, so that a late
        ``Backup Started``, which sets the TTL only when absent, cannot bring it back). False when the
        record does not exist (nothing is created)."""
        update = Update().set(**{keys.TTL_ATTRIBUTE: epoch_seconds(PINNED_UNTIL)})
        return (
            self._client.update(keys.target_pk(target), keys.run_sk(started_at, run_id), update, update.exists())
            is not None
        )

    def unpin(self, target: str, started_at: datetime, run_id: str, *, expires_at: datetime) -> bool:
        """Released from the keep-set: the record expires like any other (``expires_at``, maybe already past)."""
        update = Update().set(**{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})
        return (
            self._client.update(keys.target_pk(target), keys.run_sk(started_at, run_id), update, update.exists())
            is not None
        )

    # ----------------------------------------------------------------- retention (GFS)
    def claim_period(
        self, target: str, period: str, *, run_id: str, started_at: datetime, expires_at: datetime
    ) -> bool:
        """Claim a GFS period (e.g. "weekly#2026-W47") for a run; idempotent for the same run."""
        update = Update().set(
            type="gfs",
            target=target,
            period=period,
            run_id=run_id,
            started_at=started_at,
            **{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)},
        )
        condition = f"{update.absent()} OR {update.equals('run_id', run_id)}"
        return self._client.update(keys.target_pk(target), f"GFS#{period}", update, condition) is not None
