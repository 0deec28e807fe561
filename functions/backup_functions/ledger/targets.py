"""Target state items (``TARGET#<t>/STATE``): last good backup, last run, last failure, drills, RPO watch,
and the keep-set.

Every write is monotonic: an older run, success, failure or drill never overwrites a newer one, so
duplicate and out-of-order events leave the same item. The keep-set is replaced whole under an
optimistic revision (``keep_revision``): two audits that change it concurrently cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from backup_contracts import ledger as keys
from backup_functions.ledger.client import LedgerClient, Update, watch
from backup_functions.ledger.items import TERMINAL_STATES, WATCH_RPO, KeptBackup, TargetState
from backup_functions.ledger.outbox import OWED, Outbox, Owed, stored

ERROR_MAX = 500


class TargetStates:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client
        self._outbox = Outbox(client)

    def get(self, target: str) -> TargetState | None:
        return TargetState.parse(self._client.get(keys.target_pk(target), keys.STATE_SK))

    def get_many(self, targets: Iterable[str]) -> dict[str, TargetState]:
        """Target states by name (BatchGetItem, 100 per call); targets without a state are absent."""
        found = self._client.batch_get((keys.target_pk(t), keys.STATE_SK) for t in sorted(set(targets)))
        return {state.target: state for state in map(TargetState.model_validate, found.values())}

    def _update(self, target: str, update: Update, condition: str) -> bool:
        return self._client.update(keys.target_pk(target), keys.STATE_SK, update, condition) is not None

    def bootstrap(self, target: str, *, agent: str, engine: str, rpo: timedelta, first_dispatched_at: datetime) -> bool:
        """First dispatch of a target without a state item: create it with the first RPO watch
        (first dispatch + rpo), so a target whose agent never runs still breaches its RPO."""
        return self._client.put_if_absent(
            {
                keys.PK: keys.target_pk(target),
                keys.SK: keys.STATE_SK,
                "type": "target",
                "target": target,
                "agent": agent,
                "engine": engine,
                "rpo_s": int(rpo.total_seconds()),
                "first_dispatched_at": first_dispatched_at,
                **watch(target, WATCH_RPO, first_dispatched_at + rpo),
            }
        )

    def rearm_rpo_watch(self, target: str, *, rpo: timedelta, dispatched_at: datetime) -> bool:
        """A target back in the fleet after its removal cleared its RPO watch: watched again from this
        dispatch, as a new target is (only while it has no watch: a good backup's own watch wins)."""
        update = Update().set(rpo_s=int(rpo.total_seconds()), **watch(target, WATCH_RPO, dispatched_at + rpo))
        update.remove("watch_cleared_at", "watch_cleared_reason")
        condition = f"{update.exists()} AND {update.absent(keys.WATCH_DEADLINE)}"
        return self._client.update(keys.target_pk(target), keys.STATE_SK, update, condition) is not None

    def record_run_seen(
        self, target: str, agent: str, *, run_id: str, started_at: datetime, state: str, finished_at: datetime | None
    ) -> bool:
        """Monotonic last_run_* ordered by the run's start; a Started never overwrites its run's end."""
        update = Update().set(
            target=target,
            agent=agent,
            last_run_id=run_id,
            last_run_at=started_at,
            last_run_state=state,
            last_run_finished_at=finished_at,
        )
        at = update.value(started_at)
        last = update.name("last_run_at")
        condition = f"{update.absent('last_run_at')} OR {last} < {at}"
        if state in TERMINAL_STATES:
            condition += f" OR ({last} = {at} AND {update.equals('last_run_id', run_id)})"
        return self._update(target, update, condition)

    def record_good_backup(
        self,
        target: str,
        agent: str,
        *,
        run_id: str,
        finished_at: datetime,
        rpo: timedelta | None,
        bucket: str,
        key: str,
        version_id: str | None,
        bytes_stored: int,
        sha256: str,
        engine: str,
    ) -> bool:
        """Move last_good_* forward (never backward) and the RPO watch to last good + rpo."""
        update = Update().set(
            target=target,
            agent=agent,
            engine=engine,
            last_good_at=finished_at,
            last_good_run_id=run_id,
            last_good_bucket=bucket,
            last_good_key=key,
            last_good_version_id=version_id,
            last_good_bytes=bytes_stored,
            last_good_sha256=sha256,
        )
        if version_id is None:
            update.remove("last_good_version_id")
        if rpo is not None:
            update.set(rpo_s=int(rpo.total_seconds()), **watch(target, WATCH_RPO, finished_at + rpo))
        at, last = update.value(finished_at), update.name("last_good_at")
        condition = (
            f"{update.absent('last_good_at')} OR {last} < {at}"
            f" OR ({last} = {at} AND {update.equals('last_good_run_id', run_id)})"
        )
        return self._update(target, update, condition)

    def record_offsite(
        self, target: str, *, run_id: str, good_at: datetime, verified_at: datetime, rpo: timedelta | None
    ) -> bool:
        """Move last_offsite_* forward (by the backup's end, never backward); with ``rpo`` (a target whose
        backups count only once their copy exists) the RPO watch moves to that backup's end + rpo too."""
        update = Update().set(
            last_offsite_run_id=run_id, last_offsite_good_at=good_at, last_offsite_verified_at=verified_at
        )
        if rpo is not None:
            update.set(rpo_s=int(rpo.total_seconds()), **watch(target, WATCH_RPO, good_at + rpo))
        at, last = update.value(good_at), update.name("last_offsite_good_at")
        condition = (
            f"{update.exists()} AND ({update.absent('last_offsite_good_at')} OR {last} < {at}"
            f" OR ({last} = {at} AND {update.equals('last_offsite_run_id', run_id)}))"
        )
        return self._update(target, update, condition)

    def record_failure(self, target: str, agent: str, *, run_id: str, at: datetime, error: str) -> bool:
        """Monotonic last_failure_*."""
        update = Update().set(
            target=target, agent=agent, last_failure_at=at, last_failure_run_id=run_id, last_failure_error=error
        )
        condition = f"{update.absent('last_failure_at')} OR {update.name('last_failure_at')} <= {update.value(at)}"
        return self._update(target, update, condition)

    def replace_keep(self, target: str, *, revision: int, keep: list[KeptBackup], released: list[KeptBackup]) -> bool:
        """Replace the keep-set seen at ``revision`` by ``keep`` and, in the same write, add the members that
        left it (``released``) to ``keep_released``: their tier tags are owed until ``settle_release``.
        False when another audit changed the keep-set first (re-read and decide again)."""
        update = Update().set(target=target, keep=[member.model_dump() for member in keep], keep_revision=revision + 1)
        if revision == 0:
            if released:
                raise ValueError("an empty keep-set has no member to release")
            pending = update.name("keep_released")
            update.sets.append(f"{pending} = if_not_exists({pending}, {update.value({})})")
            return self._update(target, update, update.absent("keep_revision"))
        # keep_released exists from revision 1 on (created with the first keep-set), so its entries can be
        # set by path, atomically with the new set
        for member in released:
            pending = update.name("keep_released")
            update.sets.append(f"{pending}.{update.name(member.run_id)} = {update.value(member.model_dump())}")
        return self._update(target, update, update.equals("keep_revision", revision))

    def settle_release(self, target: str, run_id: str) -> bool:
        """The released member's tier tag is back on its objects: it is owed no more."""
        update = Update()
        path = f"{update.name('keep_released')}.{update.name(run_id)}"
        update.removes.append(path)
        return self._update(target, update, f"attribute_exists({path})")

    def claim_drill_slot(self, target: str, slot: datetime, restore_id: str, at: datetime, *, owed: Owed) -> bool:
        """Move ``last_drill_slot`` forward to ``slot`` (once: concurrent ticks claim a slot once), the drill
        owed (``owed.drill``) in the same write until ``settle_drill``."""
        update = Update().set(
            target=target, last_drill_slot=slot, last_drill_restore_id=restore_id, last_drill_dispatched_at=at
        )
        update.set(**{OWED: stored({"drill": owed})})  # a target owes nothing else: the map is replaced
        condition = f"{update.absent('last_drill_slot')} OR {update.name('last_drill_slot')} < {update.value(slot)}"
        return self._update(target, update, condition)

    def settle_drill(self, target: str, owed: Owed) -> bool:
        """The claimed drill was created and dispatched (or failed): it is owed no more."""
        return self._outbox.clear(keys.target_pk(target), keys.STATE_SK, "drill", owed)

    def record_drill(
        self, target: str, *, finished_at: datetime, ok: bool, rto_s: float | None, restore_id: str, error: str | None
    ) -> bool:
        """last_drill_* on the source target's state (an older drill never overwrites a newer one).

        A failed drill keeps the last measured RTO; ``last_good_drill_at`` says when that was.
        """
        update = Update().set(target=target, last_drill_at=finished_at, last_drill_ok=ok, last_drill_id=restore_id)
        if rto_s is not None:
            update.set(last_drill_rto_s=rto_s)
            if ok:
                update.set(last_good_drill_at=finished_at)
        if error:
            update.set(last_drill_error=error[:ERROR_MAX])
        else:
            update.remove("last_drill_error")
        condition = f"{update.absent('last_drill_at')} OR {update.name('last_drill_at')} <= {update.value(finished_at)}"
        return self._update(target, update, condition)
