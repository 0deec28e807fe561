"""Data access for the audit ledger: the one place that reads and writes the DynamoDB table.

Keys and attribute names come from ``backup_contracts.ledger``; docs/ledger.md lists every item type
and access pattern. Every write is conditional or monotonic, so that retries, duplicate events and
out-of-order delivery are harmless and leave the same final items.

The DynamoDB *client* (low-level, ``boto3.client("dynamodb")``) is injected; nothing here creates
clients. Items are returned as plain dicts with ``int``/``float`` numbers (not ``Decimal``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from backup_contracts import ledger as keys
from backup_contracts.events import BackupFailed, BackupStarted, BackupSucceeded

log = logging.getLogger(__name__)

BATCH_GET_MAX = 100  # BatchGetItem limit

# Run / job states. Terminal states are final: the first terminal event of a run wins.
STARTED = "started"
SUCCEEDED = "succeeded"
FAILED = "failed"
UNVERIFIED = "unverified"
DISPATCHED = "dispatched"
TERMINAL_STATES = (SUCCEEDED, FAILED, UNVERIFIED)

# The dispatcher's items: its tick marker and the jobs it could not send (docs/ledger.md)
DISPATCH_PK = "DISPATCH"
DISPATCH_MARKER_SK = "STATE"
UNSENT_PK = "DISPATCH#UNSENT"

# Watch kinds (the sparse by-watch-deadline index)
WATCH_RPO = "rpo"
WATCH_START = "start"
WATCH_END = "end"
WATCH_HEARTBEAT = "heartbeat"

_WATCH_ATTRIBUTES = (keys.WATCH_SHARD, keys.WATCH_KIND, keys.WATCH_DEADLINE)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class LedgerError(RuntimeError):
    """A ledger operation failed in a way a retry of the whole message should handle."""


# --------------------------------------------------------------------------- helpers


def _to_dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, datetime):
        return keys.iso(value)
    if isinstance(value, Mapping):
        return {k: _to_dynamo_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo_value(v) for v in value]
    return value


def _from_dynamo_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_value(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo_value(v) for v in value}
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """Python dict → DynamoDB attribute map (None values are dropped, datetimes become ISO strings)."""
    return {k: _serializer.serialize(_to_dynamo_value(v)) for k, v in item.items() if v is not None}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo_value(_deserializer.deserialize(v)) for k, v in item.items()}


def epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def target_subject(target: str) -> str:
    """Incident subject for a target (incident_sk(target_subject(t), kind))."""
    return f"target:{target}"


def agent_subject(agent: str) -> str:
    """Incident subject for an agent."""
    return f"agent:{agent}"


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass
class _Update:
    """Builds an UpdateExpression with placeholder names/values (no reserved-word surprises)."""

    names: dict[str, str]
    values: dict[str, Any]
    sets: list[str]
    removes: list[str]
    adds: list[str]
    deletes: list[str]

    @classmethod
    def new(cls) -> _Update:
        return cls({}, {}, [], [], [], [])

    def name(self, attribute: str) -> str:
        placeholder = f"#{attribute.replace('-', '_')}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _serializer.serialize(_to_dynamo_value(value))
        return placeholder

    def set(self, **attributes: Any) -> _Update:
        for attribute, value in attributes.items():
            if value is not None:
                self.sets.append(f"{self.name(attribute)} = {self.value(value)}")
        return self

    def set_if_absent(self, **attributes: Any) -> _Update:
        for attribute, value in attributes.items():
            if value is not None:
                n = self.name(attribute)
                self.sets.append(f"{n} = if_not_exists({n}, {self.value(value)})")
        return self

    def set_from(self, attribute: str, source: str, default: Any) -> _Update:
        """attribute = source if source exists else default."""
        self.sets.append(f"{self.name(attribute)} = if_not_exists({self.name(source)}, {self.value(default)})")
        return self

    def remove(self, *attributes: str) -> _Update:
        self.removes.extend(self.name(a) for a in attributes)
        return self

    def add_to_set(self, attribute: str, members: Iterable[str]) -> _Update:
        self.adds.append(f"{self.name(attribute)} {self.value(set(members))}")
        return self

    def delete_from_set(self, attribute: str, members: Iterable[str]) -> _Update:
        self.deletes.append(f"{self.name(attribute)} {self.value(set(members))}")
        return self

    def expression(self) -> str:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        if self.adds:
            parts.append("ADD " + ", ".join(self.adds))
        if self.deletes:
            parts.append("DELETE " + ", ".join(self.deletes))
        return " ".join(parts)

    def request(self, condition: str | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"UpdateExpression": self.expression()}
        if condition:
            request["ConditionExpression"] = condition
        if self.names:
            request["ExpressionAttributeNames"] = self.names
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        return request


@dataclass(frozen=True)
class NewJob:
    """A job row the dispatcher wants to create (see Ledger.create_scheduled_jobs)."""

    job_id: str
    target: str
    agent: str
    engine: str
    trigger: str
    slot: datetime | None  # the schedule slot; None for on-demand jobs
    issued_at: datetime
    deadline: datetime  # the run must have ended by then
    start_deadline: datetime  # the run must have started by then
    rpo: timedelta
    expires_at: datetime
    message: str  # the Job message JSON, kept so that an unsent job can be re-sent as is
    attributes: Mapping[str, Any]  # further job fields (bucket, key_prefix, retention_class, kind)

    def item(self) -> dict[str, Any]:
        return {
            keys.PK: keys.target_pk(self.target),
            keys.SK: keys.job_sk(self.job_id),
            "type": "job",
            **self.attributes,
            "job_id": self.job_id,
            "target": self.target,
            "agent": self.agent,
            "trigger": self.trigger,
            "slot": self.slot,
            "state": DISPATCHED,
            "issued_at": self.issued_at,
            "deadline": self.deadline,
            "start_deadline": self.start_deadline,
            "message": self.message,
            keys.WATCH_SHARD: keys.watch_shard(self.target),
            keys.WATCH_KIND: WATCH_START,
            keys.WATCH_DEADLINE: keys.iso(self.start_deadline),
            keys.TTL_ATTRIBUTE: epoch_seconds(self.expires_at),
        }


# --------------------------------------------------------------------------- the ledger


class Ledger:
    """Typed access to the ledger table. ``client`` is a boto3 DynamoDB client."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self.client = client

    # ----------------------------------------------------------------- generic reads

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=serialize({keys.PK: pk, keys.SK: sk}), ConsistentRead=consistent
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def batch_get(self, item_keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """BatchGetItem in chunks of 100 (unprocessed keys retried). Returns found items by (pk, sk)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        unique = list(dict.fromkeys(item_keys))
        for start in range(0, len(unique), BATCH_GET_MAX):
            request = {
                self.table_name: {
                    "Keys": [serialize({keys.PK: pk, keys.SK: sk}) for pk, sk in unique[start : start + BATCH_GET_MAX]]
                }
            }
            attempt = 0
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = deserialize(raw)
                    found[(item[keys.PK], item[keys.SK])] = item
                request = response.get("UnprocessedKeys") or {}
                if request:
                    attempt += 1
                    if attempt > 8:
                        raise LedgerError(f"BatchGetItem left keys unprocessed after {attempt} attempts")
                    time.sleep(min(0.05 * 2**attempt, 2.0))
        return found

    def query(
        self,
        pk: str,
        sk_prefix: str | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Items of one partition, optionally those whose sort key starts with ``sk_prefix``."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#pk = :pk" + (" AND begins_with(#sk, :prefix)" if sk_prefix else ""),
            "ExpressionAttributeNames": {"#pk": keys.PK, **({"#sk": keys.SK} if sk_prefix else {})},
            "ExpressionAttributeValues": serialize({":pk": pk, **({":prefix": sk_prefix} if sk_prefix else {})}),
            "ScanIndexForward": not newest_first,
        }
        return list(self._paginate("query", request, limit))

    def _paginate(self, operation: str, request: dict[str, Any], limit: int | None) -> Iterator[dict[str, Any]]:
        count = 0
        while True:
            if limit is not None:
                request["Limit"] = limit - count
            response = getattr(self.client, operation)(**request)
            for raw in response.get("Items", []):
                yield deserialize(raw)
                count += 1
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and count >= limit):
                return
            request["ExclusiveStartKey"] = last

    def scan_all(self) -> list[dict[str, Any]]:
        """Every item (tests and small tools only; never on a Lambda's hot path)."""
        return list(self._paginate("scan", {"TableName": self.table_name}, None))

    def due_watches(self, now: datetime, *, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Items whose watch_deadline <= now, from the sparse index: one query per shard (+ pages)."""
        wanted = set(kinds) if kinds is not None else None
        items: list[dict[str, Any]] = []
        for shard in range(keys.WATCH_SHARDS):
            request = {
                "TableName": self.table_name,
                "IndexName": keys.WATCH_INDEX,
                "KeyConditionExpression": "#s = :s AND #d <= :now",
                "ExpressionAttributeNames": {"#s": keys.WATCH_SHARD, "#d": keys.WATCH_DEADLINE},
                "ExpressionAttributeValues": serialize({":s": f"W#{shard}", ":now": keys.iso(now)}),
            }
            for item in self._paginate("query", request, None):
                if wanted is None or item.get(keys.WATCH_KIND) in wanted:
                    items.append(item)
        return items

    # ----------------------------------------------------------------- low-level writes

    def _update(
        self, pk: str, sk: str, update: _Update, condition: str | None = None, *, return_new: bool = False
    ) -> dict[str, Any] | None:
        """UpdateItem; returns the new item when asked, None when the condition failed."""
        request = update.request(condition)
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=serialize({keys.PK: pk, keys.SK: sk}),
                ReturnValues="ALL_NEW" if return_new else "NONE",
                **request,
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return None
            raise
        return deserialize(response.get("Attributes", {})) if return_new else {}

    def _put_if_absent(self, item: Mapping[str, Any]) -> bool:
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": keys.PK},
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    # ----------------------------------------------------------------- target state

    def get_target_states(self, targets: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Target state items by target name (BatchGetItem, 100 per call); missing targets are absent."""
        found = self.batch_get([(keys.target_pk(t), keys.STATE_SK) for t in targets])
        return {pk.removeprefix("TARGET#"): item for (pk, _), item in found.items()}

    def get_target_state(self, target: str) -> dict[str, Any] | None:
        return self.get(keys.target_pk(target), keys.STATE_SK)

    def record_run_seen(
        self, target: str, agent: str, *, run_id: str, started_at: datetime, state: str, finished_at: datetime | None
    ) -> bool:
        """Monotonic last_run_* on the target state, ordered by the run's started_at.

        A Started never overwrites the terminal state of the same run; an older run never overwrites
        a newer one. Returns whether the item changed.
        """
        update = _Update.new().set(
            target=target, agent=agent, last_run_id=run_id, last_run_at=started_at, last_run_state=state
        )
        if finished_at is not None:
            update.set(last_run_finished_at=finished_at)
        at = update.value(started_at)
        condition = f"attribute_not_exists(last_run_at) OR last_run_at < {at}"
        if state in TERMINAL_STATES:
            run = update.value(run_id)
            condition += f" OR (last_run_at = {at} AND last_run_id = {run})"
        return self._update(keys.target_pk(target), keys.STATE_SK, update, condition) is not None

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
        """Move last_good_* forward (never backward) and the RPO watch to last_good + rpo."""
        update = _Update.new().set(
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
            update.set(
                rpo_s=int(rpo.total_seconds()),
                **{
                    keys.WATCH_SHARD: keys.watch_shard(target),
                    keys.WATCH_KIND: WATCH_RPO,
                    keys.WATCH_DEADLINE: keys.iso(finished_at + rpo),
                },
            )
        at, run = update.value(finished_at), update.value(run_id)
        condition = (
            f"attribute_not_exists(last_good_at) OR last_good_at < {at}"
            f" OR (last_good_at = {at} AND last_good_run_id = {run})"
        )
        return self._update(keys.target_pk(target), keys.STATE_SK, update, condition) is not None

    def record_failure(self, target: str, agent: str, *, run_id: str, at: datetime, error: str) -> bool:
        """Monotonic last_failure_* on the target state."""
        update = _Update.new().set(
            target=target, agent=agent, last_failure_at=at, last_failure_run_id=run_id, last_failure_error=error
        )
        when = update.value(at)
        condition = f"attribute_not_exists(last_failure_at) OR last_failure_at <= {when}"
        return self._update(keys.target_pk(target), keys.STATE_SK, update, condition) is not None

    # ----------------------------------------------------------------- jobs (dispatcher)

    def dispatch_view(
        self, wanted: Iterable[tuple[str, str]]
    ) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
        """What the dispatcher needs, in one BatchGetItem pass (100 keys per call).

        ``wanted`` is (target, job_id) of each target's latest slot. Returns the target state items
        by target, and the (target, job_id) pairs whose job row already exists.
        """
        pairs = list(wanted)
        item_keys: list[tuple[str, str]] = []
        for target, job_id in pairs:
            item_keys.append((keys.target_pk(target), keys.STATE_SK))
            item_keys.append((keys.target_pk(target), keys.job_sk(job_id)))
        found = self.batch_get(item_keys)
        states = {pk.removeprefix("TARGET#"): item for (pk, sk), item in found.items() if sk == keys.STATE_SK}
        existing = {
            (target, job_id) for target, job_id in pairs if (keys.target_pk(target), keys.job_sk(job_id)) in found
        }
        return states, existing

    def create_job(self, job: NewJob) -> bool:
        """Create a job row once (attribute_not_exists); True when THIS call created it.

        The conditional row is the dispatcher's dedupe: however many ticks overlap, one creates a
        slot's row and only that one sends the job.
        """
        return self._put_if_absent(job.item())

    def create_scheduled_jobs(self, jobs: Sequence[NewJob]) -> list[NewJob]:
        """Create job rows (one conditional PutItem each); returns the jobs THIS call created."""
        return [job for job in jobs if self.create_job(job)]

    def bootstrap_target_state(self, job: NewJob) -> bool:
        """First dispatch of a target without a state item: create it with the first RPO watch
        (first dispatch + rpo), so a target whose agent never runs still breaches its RPO."""
        return self._put_if_absent(
            {
                keys.PK: keys.target_pk(job.target),
                keys.SK: keys.STATE_SK,
                "type": "target",
                "target": job.target,
                "agent": job.agent,
                "engine": job.engine,
                "rpo_s": int(job.rpo.total_seconds()),
                "first_dispatched_at": job.issued_at,
                keys.WATCH_SHARD: keys.watch_shard(job.target),
                keys.WATCH_KIND: WATCH_RPO,
                keys.WATCH_DEADLINE: keys.iso(job.issued_at + job.rpo),
            }
        )

    def create_requested_job(self, job: NewJob) -> bool:
        """An on-demand job row (idempotent on its job id); True when this call created it."""
        return self.create_job(job)

    # The dispatcher's own small items: its tick marker and the jobs it could not send.

    def get_dispatch_marker(self) -> dict[str, Any] | None:
        """``last_tick_at`` (ISO) and ``fleet_hash`` of the last completed dispatcher tick."""
        return self.get(DISPATCH_PK, DISPATCH_MARKER_SK)

    def advance_dispatch_marker(self, now: datetime, fleet_hash: str) -> bool:
        """Record a completed tick; only moves forward (an older, slower tick never moves it back)."""
        update = _Update.new().set(type="dispatch", last_tick_at=now, fleet_hash=fleet_hash)
        at = update.value(now)
        condition = f"attribute_not_exists(last_tick_at) OR last_tick_at < {at}"
        return self._update(DISPATCH_PK, DISPATCH_MARKER_SK, update, condition) is not None

    def record_unsent_job(self, *, target: str, job_id: str, agent: str, message: str) -> None:
        """Remember a job whose SQS send failed, so that the next dispatcher tick re-sends it."""
        self.client.put_item(
            TableName=self.table_name,
            Item=serialize(
                {
                    keys.PK: UNSENT_PK,
                    keys.SK: f"{target}#{job_id}",
                    "type": "unsent",
                    "target": target,
                    "job_id": job_id,
                    "agent": agent,
                    "message": message,
                }
            ),
        )

    def unsent_jobs(self) -> list[dict[str, Any]]:
        """Jobs waiting to be re-sent (one small partition: one Query)."""
        return self.query(UNSENT_PK)

    def clear_unsent_job(self, target: str, job_id: str) -> None:
        self.client.delete_item(
            TableName=self.table_name, Key=serialize({keys.PK: UNSENT_PK, keys.SK: f"{target}#{job_id}"})
        )

    def get_jobs(self, jobs: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """Job rows by job id, for (target, job_id) pairs (BatchGetItem)."""
        found = self.batch_get([(keys.target_pk(t), keys.job_sk(j)) for t, j in jobs])
        return {item["job_id"]: item for item in found.values() if "job_id" in item}

    # ----------------------------------------------------------------- jobs and runs (audit)

    def job_started(
        self,
        event: BackupStarted,
        *,
        default_deadline: datetime,
        expires_at: datetime,
    ) -> bool:
        """dispatched (or unknown) → started; the watch becomes "end" at the job's deadline."""
        update = _Update.new().set(
            type="job",
            job_id=event.job_id,
            target=event.target,
            agent=event.agent,
            state=STARTED,
            run_id=event.run_id,
            started_at=event.started_at,
            **{keys.WATCH_SHARD: keys.watch_shard(event.target), keys.WATCH_KIND: WATCH_END},
        )
        update.set_if_absent(deadline=default_deadline, **{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})
        update.set_from(keys.WATCH_DEADLINE, "deadline", keys.iso(default_deadline))
        dispatched = update.value(DISPATCHED)
        condition = f"attribute_not_exists(#state) OR #state = {dispatched}"
        return self._update(keys.target_pk(event.target), keys.job_sk(event.job_id), update, condition) is not None

    def job_ended(
        self,
        event: BackupSucceeded | BackupFailed,
        state: str,
        *,
        default_deadline: datetime,
        expires_at: datetime,
    ) -> bool:
        """dispatched|started (or unknown) → terminal; watch attributes removed."""
        update = _Update.new().set(
            type="job",
            job_id=event.job_id,
            target=event.target,
            agent=event.agent,
            state=state,
            run_id=event.run_id,
            started_at=event.started_at,
            finished_at=event.finished_at,
        )
        update.set_if_absent(deadline=default_deadline, **{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})
        update.remove(*_WATCH_ATTRIBUTES)
        dispatched, started = update.value(DISPATCHED), update.value(STARTED)
        condition = f"attribute_not_exists(#state) OR #state IN ({dispatched}, {started})"
        return self._update(keys.target_pk(event.target), keys.job_sk(event.job_id), update, condition) is not None

    @staticmethod
    def _run_fields(event: BackupStarted) -> dict[str, Any]:
        fields = event.model_dump(mode="python", include=set(BackupStarted.model_fields))
        return {"type": "run", **fields}

    def run_started(self, event: BackupStarted, *, expires_at: datetime) -> bool:
        """Create/refresh the run record; never overwrites a terminal state."""
        update = _Update.new().set(**self._run_fields(event))
        update.set_if_absent(state=STARTED, **{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})
        self._update(keys.target_pk(event.target), keys.run_sk(event.started_at, event.run_id), update)
        return True

    def run_ended(
        self,
        event: BackupSucceeded | BackupFailed,
        state: str,
        *,
        expires_at: datetime,
        facts: Mapping[str, Any] | None = None,
    ) -> tuple[bool, dict[str, Any] | None]:
        """started (or unknown) → terminal. Returns (applied, current item when not applied).

        Terminal states are final: a second terminal event for the same run (duplicate, or a
        contradicting one) changes nothing; the caller compares the stored state with its own.
        """
        fields = event.model_dump(mode="python", exclude_none=True)
        update = _Update.new().set(type="run", **fields, **(dict(facts) if facts else {}), state=state)
        update.set_if_absent(**{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})
        started = update.value(STARTED)
        pk, sk = keys.target_pk(event.target), keys.run_sk(event.started_at, event.run_id)
        if self._update(pk, sk, update, f"attribute_not_exists(#state) OR #state = {started}") is not None:
            return True, None
        return False, self.get(pk, sk)

    def set_run_attributes(self, target: str, started_at: datetime, run_id: str, **attributes: Any) -> None:
        self._update(keys.target_pk(target), keys.run_sk(started_at, run_id), _Update.new().set(**attributes))

    def runs(self, target: str, *, limit: int | None = None, newest_first: bool = True) -> list[dict[str, Any]]:
        return self.query(keys.target_pk(target), keys.RUN_SK_PREFIX, newest_first=newest_first, limit=limit)

    # ----------------------------------------------------------------- retention (GFS)

    def claim_period(
        self, target: str, period: str, *, run_id: str, started_at: datetime, expires_at: datetime
    ) -> bool:
        """Claim a GFS period (e.g. "weekly#2026-W47") for a run; idempotent for the same run."""
        update = _Update.new().set(type="gfs", target=target, period=period, run_id=run_id, started_at=started_at)
        update.set(**{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})
        run = update.value(run_id)
        condition = f"attribute_not_exists(#pk) OR run_id = {run}"
        update.names["#pk"] = keys.PK
        return self._update(keys.target_pk(target), f"GFS#{period}", update, condition) is not None

    # ----------------------------------------------------------------- agents

    def record_heartbeat(
        self, agent: str, *, version: str, targets: Sequence[str], sent_at: datetime, timeout: timedelta
    ) -> bool:
        """Monotonic: an older heartbeat never overwrites a newer one. Watch = heartbeat + timeout."""
        update = _Update.new().set(
            type="agent",
            agent=agent,
            version=version,
            targets=list(targets),
            last_heartbeat_at=sent_at,
            **{
                keys.WATCH_SHARD: keys.watch_shard(agent),
                keys.WATCH_KIND: WATCH_HEARTBEAT,
                keys.WATCH_DEADLINE: keys.iso(sent_at + timeout),
            },
        )
        at = update.value(sent_at)
        condition = f"attribute_not_exists(last_heartbeat_at) OR last_heartbeat_at < {at}"
        return self._update(keys.agent_pk(agent), keys.STATE_SK, update, condition) is not None

    def get_agent_state(self, agent: str) -> dict[str, Any] | None:
        return self.get(keys.agent_pk(agent), keys.STATE_SK)

    # ----------------------------------------------------------------- incidents

    def open_incident(
        self,
        subject: str,
        kind: str,
        *,
        opened_at: datetime,
        details: Mapping[str, Any],
        target: str | None = None,
        agent: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Open an incident once (conditional put). Returns (the incident item, created by this call).

        ``last_notified_at`` is absent until ``mark_incident_notified``: a caller that finds an
        incident without it (a crash between open and publish) should publish and mark it.
        """
        item = {
            keys.PK: keys.INCIDENTS_PK,
            keys.SK: keys.incident_sk(subject, kind),
            "type": "incident",
            "subject": subject,
            "kind": kind,
            "target": target,
            "agent": agent,
            "opened_at": opened_at,
            "details": dict(details),
            "notify_count": 0,
        }
        if self._put_if_absent(item):
            return deserialize(serialize(item)), True
        existing = self.get_incident(subject, kind)
        if existing is None:  # resolved between the two calls: open again
            return self.open_incident(subject, kind, opened_at=opened_at, details=details, target=target, agent=agent)
        return existing, False

    def get_incident(self, subject: str, kind: str) -> dict[str, Any] | None:
        return self.get(keys.INCIDENTS_PK, keys.incident_sk(subject, kind))

    def list_incidents(self) -> list[dict[str, Any]]:
        """All open incidents (one small partition)."""
        return self.query(keys.INCIDENTS_PK)

    def mark_incident_notified(self, subject: str, kind: str, at: datetime) -> bool:
        update = _Update.new().set(last_notified_at=at)
        update.adds.append(f"notify_count {update.value(1)}")
        update.names["#pk"] = keys.PK
        return (
            self._update(keys.INCIDENTS_PK, keys.incident_sk(subject, kind), update, "attribute_exists(#pk)")
            is not None
        )

    def update_incident_details(self, subject: str, kind: str, details: Mapping[str, Any]) -> bool:
        update = _Update.new().set(details=dict(details))
        update.names["#pk"] = keys.PK
        return (
            self._update(keys.INCIDENTS_PK, keys.incident_sk(subject, kind), update, "attribute_exists(#pk)")
            is not None
        )

    def resolve_incident(self, subject: str, kind: str) -> dict[str, Any] | None:
        """Delete an open incident; returns it when THIS call resolved it (send "resolved" once)."""
        try:
            response = self.client.delete_item(
                TableName=self.table_name,
                Key=serialize({keys.PK: keys.INCIDENTS_PK, keys.SK: keys.incident_sk(subject, kind)}),
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": keys.PK},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return None
            raise
        return deserialize(response.get("Attributes", {}))


# =========================================================================== WATCHDOG additions
# (functions added by the watchdog helper go below this line)
# --- watchdog queries ---
# Conditional writes the watchdog needs on top of the Ledger class (docs/oncall.md, "Incidents").
# Every one is a single DynamoDB call; each returns False when a concurrent tick got there first.


def open_incident_notified(
    ledger: Ledger,
    subject: str,
    kind: str,
    *,
    opened_at: datetime,
    attributes: Mapping[str, Any],
) -> bool:
    """Open an incident AND claim its first notification in one conditional put.

    Only the call that creates the incident sends the alert; a failed send is released with
    ``release_incident_notification`` so that the next tick sends it.
    """
    item = {
        **attributes,
        keys.PK: keys.INCIDENTS_PK,
        keys.SK: keys.incident_sk(subject, kind),
        "type": "incident",
        "subject": subject,
        "kind": kind,
        "opened_at": opened_at,
        "last_notified_at": opened_at,
        "notify_count": 1,
    }
    return ledger._put_if_absent(item)


def claim_incident_notification(ledger: Ledger, incident_sk: str, previous: str | None, now: datetime) -> bool:
    """Move last_notified_at from ``previous`` (None: never notified) to ``now``, once."""
    update = _Update.new().set(last_notified_at=now)
    update.adds.append(f"notify_count {update.value(1)}")
    update.names["#pk"] = keys.PK
    last = update.name("last_notified_at")
    if previous is None:
        condition = f"attribute_exists(#pk) AND attribute_not_exists({last})"
    else:
        condition = f"attribute_exists(#pk) AND {last} = {update.value(previous)}"
    return ledger._update(keys.INCIDENTS_PK, incident_sk, update, condition) is not None


def release_incident_notification(ledger: Ledger, incident_sk: str, claimed: datetime, previous: str | None) -> bool:
    """Undo a claim whose message could not be sent (only if nobody moved it since)."""
    update = _Update.new()
    if previous is None:
        update.remove("last_notified_at")
    else:
        update.set(last_notified_at=previous)
    update.adds.append(f"notify_count {update.value(-1)}")
    last = update.name("last_notified_at")
    return ledger._update(keys.INCIDENTS_PK, incident_sk, update, f"{last} = {update.value(claimed)}") is not None


def resolve_incident_opened_at(ledger: Ledger, incident_sk: str, opened_at: str | None) -> bool:
    """Delete an open incident if it is still the one opened at ``opened_at`` (not a newer one)."""
    names = {"#pk": keys.PK}
    condition = "attribute_exists(#pk)"
    request: dict[str, Any] = {}
    if opened_at is not None:
        names["#opened"] = "opened_at"
        condition += " AND #opened = :opened"
        request["ExpressionAttributeValues"] = serialize({":opened": opened_at})
    try:
        ledger.client.delete_item(
            TableName=ledger.table_name,
            Key=serialize({keys.PK: keys.INCIDENTS_PK, keys.SK: incident_sk}),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            **request,
        )
    except ClientError as exc:
        if _is_conditional_failure(exc):
            return False
        raise
    return True


def clear_superseded_watch(
    ledger: Ledger, pk: str, sk: str, *, watch_kind: str, deadline: str, now: datetime, reason: str
) -> bool:
    """Stop watching a job row that a newer good backup superseded (only if its watch is unchanged)."""
    update = _Update.new().set(watch_cleared_at=now, watch_cleared_reason=reason).remove(*_WATCH_ATTRIBUTES)
    kind, at = update.name(keys.WATCH_KIND), update.name(keys.WATCH_DEADLINE)
    condition = f"{kind} = {update.value(watch_kind)} AND {at} = {update.value(deadline)}"
    return ledger._update(pk, sk, update, condition) is not None
