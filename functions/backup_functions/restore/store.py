"""Ledger access for restores and drills (one DynamoDB table, keys from ``backup_contracts.ledger``).

Items this module reads and writes:

- the restore request ``pk=RESTORE#<restore_id> sk=STATE`` (``type=restore``): the request, the
  resolved source backup, the state with a timestamp per step (``<state>_at`` plus a ``history``
  list), approval token hash and deadline, the dispatched job, the agent's outcome. While it waits
  for something (an approval, the agent's end) it carries the sparse watch attributes with
  ``watch_kind`` ``approval`` or ``restore``; the restore tick expires them (the watchdog ignores
  these kinds);
- run records ``pk=TARGET#<t> sk=RUN#<iso started>#<run_id>`` (written by the audit function; read
  here to pick the backup to restore);
- the target state ``pk=TARGET#<t> sk=STATE``: drill fields ``last_drill_*`` (written here).

Every write is conditional: a request is created once (idempotent on restore_id), a state moves
only along the allowed transitions, and terminal states (succeeded, failed, rejected, validated)
are final.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from backup_contracts import ledger as keys
from backup_functions.ledger import Ledger, deserialize, serialize

# restore states
REQUESTED = "requested"
AWAITING_APPROVAL = "awaiting-approval"
DISPATCHED = "dispatched"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
REJECTED = "rejected"
VALIDATED = "validated"  # a dry run that passed every check
TERMINAL = frozenset({SUCCEEDED, FAILED, REJECTED, VALIDATED})

# watch kinds on restore items (the watchdog ignores kinds it does not know)
WATCH_APPROVAL = "approval"
WATCH_RESTORE = "restore"

# what a state may be reached from
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    AWAITING_APPROVAL: (REQUESTED,),
    DISPATCHED: (REQUESTED, AWAITING_APPROVAL),
    RUNNING: (DISPATCHED,),
    SUCCEEDED: (DISPATCHED, RUNNING),
    FAILED: (REQUESTED, AWAITING_APPROVAL, DISPATCHED, RUNNING),
    REJECTED: (REQUESTED, AWAITING_APPROVAL),
    VALIDATED: (REQUESTED,),
}

_WATCH_ATTRIBUTES = (keys.WATCH_SHARD, keys.WATCH_KIND, keys.WATCH_DEADLINE)


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable digest of a request's content: a reused restore_id with other content is noticed."""
    import hashlib

    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


class RestoreStore:
    """Typed access to the restore items and the run records a restore reads."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.client = ledger.client
        self.table = ledger.table_name

    # ------------------------------------------------------------------ restore items
    def get(self, restore_id: str) -> dict[str, Any] | None:
        return self.ledger.get(keys.restore_pk(restore_id), keys.STATE_SK)

    def create(self, restore_id: str, attributes: Mapping[str, Any], *, at: datetime, expires_at: datetime) -> bool:
        """Create the request in state ``requested``; False when this restore_id already exists."""
        item = {
            **attributes,
            keys.PK: keys.restore_pk(restore_id),
            keys.SK: keys.STATE_SK,
            "type": "restore",
            "restore_id": restore_id,
            "state": REQUESTED,
            "requested_at": at,
            "updated_at": at,
            "history": [{"state": REQUESTED, "at": keys.iso(at)}],
            keys.TTL_ATTRIBUTE: int(expires_at.timestamp()),
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": keys.PK},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def transition(
        self,
        restore_id: str,
        to: str,
        *,
        at: datetime,
        attributes: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        watch: tuple[str, str, datetime] | None = None,
        allowed_from: Iterable[str] | None = None,
        extra_condition: tuple[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """Move the request to ``to`` if its state allows it; returns the new item or None.

        ``watch`` = (subject name, watch kind, deadline) sets the sparse watch; otherwise any watch is
        removed (a state that waits for nothing is not watched). ``extra_condition`` is an additional
        condition expression with its ``:values``.
        """
        sources = tuple(allowed_from if allowed_from is not None else ALLOWED_FROM[to])
        names: dict[str, str] = {"#state": "state", "#history": "history", "#updated": "updated_at"}
        values: dict[str, Any] = {
            ":to": to,
            ":at": keys.iso(at),
            ":step": [{"state": to, "at": keys.iso(at)}],
            ":empty": [],
        }
        sets = ["#state = :to", "#updated = :at", f"#{_safe(to)}_at = :at"]
        names[f"#{_safe(to)}_at"] = f"{to.replace('-', '_')}_at"
        sets.append("#history = list_append(if_not_exists(#history, :empty), :step)")
        for index, (name, value) in enumerate((attributes or {}).items()):
            if value is None:
                continue
            names[f"#a{index}"] = name
            values[f":a{index}"] = value
            sets.append(f"#a{index} = :a{index}")
        removes = [*remove]
        if watch is not None:
            subject, kind, deadline = watch
            names |= {"#ws": keys.WATCH_SHARD, "#wk": keys.WATCH_KIND, "#wd": keys.WATCH_DEADLINE}
            values |= {":ws": keys.watch_shard(subject), ":wk": kind, ":wd": keys.iso(deadline)}
            sets += ["#ws = :ws", "#wk = :wk", "#wd = :wd"]
        else:
            removes += list(_WATCH_ATTRIBUTES)
        remove_names = []
        for index, name in enumerate(dict.fromkeys(removes)):
            names[f"#r{index}"] = name
            remove_names.append(f"#r{index}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(remove_names) if remove_names else "")
        placeholders = []
        for index, state in enumerate(sources):
            values[f":from{index}"] = state
            placeholders.append(f":from{index}")
        condition = f"#state IN ({', '.join(placeholders)})"
        if extra_condition is not None:
            text, more = extra_condition
            condition = f"({condition}) AND ({text})"
            values |= dict(more)
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=serialize({keys.PK: keys.restore_pk(restore_id), keys.SK: keys.STATE_SK}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return deserialize(response["Attributes"])

    def mark(self, restore_id: str, **attributes: Any) -> None:
        """Set bookkeeping attributes (e.g. notified_at, job_sent_at) without changing the state."""
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        values = {f":a{i}": value for i, value in enumerate(attributes.values())}
        self.client.update_item(
            TableName=self.table,
            Key=serialize({keys.PK: keys.restore_pk(restore_id), keys.SK: keys.STATE_SK}),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attributes))),
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={**names, "#pk": keys.PK},
            ExpressionAttributeValues=serialize(values),
        )

    def due_watches(self, now: datetime) -> list[dict[str, Any]]:
        """Restore items whose approval or end is overdue (the ledger's sparse watch index)."""
        return self.ledger.due_watches(now, kinds=(WATCH_APPROVAL, WATCH_RESTORE))

    # ------------------------------------------------------------------ run records (read only)
    def run_by_id(self, target: str, run_id: str) -> dict[str, Any] | None:
        """The run record of ``run_id``: a narrow key range when the id starts with its start time
        (the agent's ``YYYYmmddTHHMMSSZ-…`` ids), otherwise the target's runs filtered by id."""
        started = _run_id_time(run_id)
        if started is not None:
            low = f"{keys.RUN_SK_PREFIX}{keys.iso(started)}"
            high = f"{keys.RUN_SK_PREFIX}{keys.iso(started + timedelta(seconds=1))}"
            for item in self._runs_between(target, low, high, newest_first=True):
                if item.get("run_id") == run_id:
                    return item
        for item in self._runs_between(target, keys.RUN_SK_PREFIX, keys.RUN_SK_PREFIX + "\uffff", newest_first=True):
            if item.get("run_id") == run_id:
                return item
        return None

    def latest_good_run(self, target: str, *, at_or_before: datetime | None = None) -> dict[str, Any] | None:
        """The newest succeeded run (whose dump started at or before ``at_or_before``, when given)."""
        high = keys.RUN_SK_PREFIX + ("\uffff" if at_or_before is None else keys.iso(at_or_before) + "#\uffff")
        for item in self._runs_between(target, keys.RUN_SK_PREFIX, high, newest_first=True):
            if item.get("state") == SUCCEEDED:
                return item
        return None

    def _runs_between(self, target: str, low: str, high: str, *, newest_first: bool) -> Iterable[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": keys.PK, "#sk": keys.SK},
            "ExpressionAttributeValues": serialize({":pk": keys.target_pk(target), ":low": low, ":high": high}),
            "ScanIndexForward": not newest_first,
        }
        while True:
            response = self.client.query(**request)
            for raw in response.get("Items", []):
                yield deserialize(raw)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    # ------------------------------------------------------------------ target state (drills)
    def target_states(self, targets: Iterable[str]) -> dict[str, dict[str, Any]]:
        return self.ledger.get_target_states(targets)

    def claim_drill_slot(self, target: str, slot: datetime, restore_id: str, at: datetime) -> bool:
        """Move ``last_drill_slot`` forward to ``slot`` (once: concurrent ticks claim a slot once)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=serialize({keys.PK: keys.target_pk(target), keys.SK: keys.STATE_SK}),
                UpdateExpression="SET #t = :t, #slot = :slot, #rid = :rid, #at = :at",
                ConditionExpression="attribute_not_exists(#slot) OR #slot < :slot",
                ExpressionAttributeNames={
                    "#t": "target",
                    "#slot": "last_drill_slot",
                    "#rid": "last_drill_restore_id",
                    "#at": "last_drill_dispatched_at",
                },
                ExpressionAttributeValues=serialize(
                    {":t": target, ":slot": keys.iso(slot), ":rid": restore_id, ":at": keys.iso(at)}
                ),
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def record_drill(
        self, target: str, *, finished_at: datetime, ok: bool, rto_s: float | None, restore_id: str, error: str | None
    ) -> bool:
        """last_drill_* on the source target's state (monotonic: an older drill never overwrites a newer one)."""
        values: dict[str, Any] = {
            ":t": target,
            ":at": keys.iso(finished_at),
            ":ok": ok,
            ":rid": restore_id,
        }
        sets = ["#t = :t", "#at = :at", "#ok = :ok", "#rid = :rid"]
        names = {
            "#t": "target",
            "#at": "last_drill_at",
            "#ok": "last_drill_ok",
            "#rid": "last_drill_id",
            "#rto": "last_drill_rto_s",
            "#err": "last_drill_error",
        }
        removes = []
        if rto_s is not None:
            values[":rto"] = rto_s
            sets.append("#rto = :rto")
            if ok:
                names["#good"] = "last_good_drill_at"
                sets.append("#good = :at")
        else:
            del names["#rto"]  # a failed drill keeps the last measured RTO (and last_good_drill_at says when)
        if error:
            values[":err"] = error[:500]
            sets.append("#err = :err")
        else:
            removes.append("#err")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self.client.update_item(
                TableName=self.table,
                Key=serialize({keys.PK: keys.target_pk(target), keys.SK: keys.STATE_SK}),
                UpdateExpression=expression,
                ConditionExpression="attribute_not_exists(#at) OR #at <= :at",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(values),
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True


def _safe(state: str) -> str:
    return state.replace("-", "_")


def _run_id_time(run_id: str) -> datetime | None:
    from datetime import UTC

    stamp = run_id.split("-", 1)[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
