"""The one low-level client of the ledger table: serialisation, update expressions, conditional writes,
paginated reads and BatchGetItem with jittered retries.

Every item family (``targets``, ``runs``, ``jobs``, ``agents``, ``incidents``, ``restores``) writes
through this class; nothing else calls DynamoDB. Numbers come back as ``int``/``float`` (never
``Decimal``), datetimes are stored as ``backup_contracts.ledger.iso`` strings so that string order is
time order in conditions and key ranges, and ``None`` values are never written.

A conditional write whose condition fails is not an error here: ``update`` returns ``None`` and
``put_if_absent`` / ``delete`` return ``False``, because a failed condition is how a duplicate, a
concurrent tick or an out-of-order event is recognised.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from backup_contracts import ledger as keys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

BATCH_GET_MAX = 100  # BatchGetItem limit
BATCH_GET_ATTEMPTS = 8
WATCH_ATTRIBUTES = (keys.WATCH_SHARD, keys.WATCH_KIND, keys.WATCH_DEADLINE)
Item = dict[str, Any]
Key = tuple[str, str]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class LedgerError(RuntimeError):
    """A ledger operation failed in a way a retry of the whole message should handle."""


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, datetime):
        return keys.iso(value)
    if isinstance(value, Mapping):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo(v) for v in value}
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """Python dict → DynamoDB attribute map (None values are dropped, datetimes become ISO strings)."""
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def deserialize(item: Mapping[str, Any]) -> Item:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def watch(subject: str, kind: str, deadline: datetime) -> dict[str, str]:
    """The sparse watch attributes: the item enters the by-watch-deadline index until they are removed."""
    return {keys.WATCH_SHARD: keys.watch_shard(subject), keys.WATCH_KIND: kind, keys.WATCH_DEADLINE: keys.iso(deadline)}


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass
class Update:
    """An UpdateExpression (and its condition) with placeholder names and values.

    ``value(x)`` and ``name(a)`` return placeholders to use in a ``condition``; ``set`` skips ``None``.
    """

    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    sets: list[str] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    adds: list[str] = field(default_factory=list)

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        for existing, known in self.names.items():
            if known == attribute:
                return existing
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _serializer.serialize(_to_dynamo(value))
        return placeholder

    def set(self, **attributes: Any) -> Update:
        for attribute, value in attributes.items():
            if value is not None:
                self.sets.append(f"{self.name(attribute)} = {self.value(value)}")
        return self

    def set_if_absent(self, **attributes: Any) -> Update:
        for attribute, value in attributes.items():
            if value is not None:
                n = self.name(attribute)
                self.sets.append(f"{n} = if_not_exists({n}, {self.value(value)})")
        return self

    def set_from(self, attribute: str, source: str, default: Any) -> Update:
        """attribute = source if source exists else default."""
        self.sets.append(f"{self.name(attribute)} = if_not_exists({self.name(source)}, {self.value(default)})")
        return self

    def append(self, attribute: str, *entries: Any) -> Update:
        """attribute = attribute (or []) + entries."""
        n = self.name(attribute)
        self.sets.append(f"{n} = list_append(if_not_exists({n}, {self.value([])}), {self.value(list(entries))})")
        return self

    def add(self, attribute: str, amount: int) -> Update:
        self.adds.append(f"{self.name(attribute)} {self.value(amount)}")
        return self

    def remove(self, *attributes: str) -> Update:
        self.removes.extend(self.name(a) for a in dict.fromkeys(attributes))
        return self

    def exists(self, attribute: str = keys.PK) -> str:
        return f"attribute_exists({self.name(attribute)})"

    def absent(self, attribute: str = keys.PK) -> str:
        return f"attribute_not_exists({self.name(attribute)})"

    def equals(self, attribute: str, value: Any) -> str:
        return f"{self.name(attribute)} = {self.value(value)}"

    def one_of(self, attribute: str, values: Iterable[Any]) -> str:
        return f"{self.name(attribute)} IN ({', '.join(self.value(v) for v in values)})"

    def expression(self) -> str:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        if self.adds:
            parts.append("ADD " + ", ".join(self.adds))
        return " ".join(parts)


class LedgerClient:
    """The ledger table through one injected low-level DynamoDB client (``boto3.client("dynamodb")``)."""

    def __init__(self, table_name: str, dynamodb: DynamoDBClient) -> None:
        self.table_name = table_name
        self.dynamodb = dynamodb

    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return serialize({keys.PK: pk, keys.SK: sk})

    # ----------------------------------------------------------------- reads
    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        response = self.dynamodb.get_item(TableName=self.table_name, Key=self._key(pk, sk), ConsistentRead=consistent)
        item = response.get("Item")
        return deserialize(item) if item else None

    def batch_get(self, item_keys: Iterable[Key]) -> dict[Key, Item]:
        """BatchGetItem, 100 keys per call; unprocessed keys are retried with jittered backoff."""
        found: dict[Key, Item] = {}
        unique = list(dict.fromkeys(item_keys))
        for start in range(0, len(unique), BATCH_GET_MAX):
            request: Any = {
                self.table_name: {"Keys": [self._key(pk, sk) for pk, sk in unique[start : start + BATCH_GET_MAX]]}
            }
            for attempt in range(1, BATCH_GET_ATTEMPTS + 1):
                response = self.dynamodb.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = deserialize(raw)
                    found[(item[keys.PK], item[keys.SK])] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(random.uniform(0, min(0.05 * 2**attempt, 2.0)))  # noqa: S311 - jitter, not security
            else:
                raise LedgerError(f"BatchGetItem left keys unprocessed after {BATCH_GET_ATTEMPTS} attempts")
        return found

    def query(
        self, pk: str, sk_prefix: str | None = None, *, newest_first: bool = False, limit: int | None = None
    ) -> list[Item]:
        """Items of one partition, optionally those whose sort key starts with ``sk_prefix``."""
        update = Update()
        condition = update.equals(keys.PK, pk)
        if sk_prefix:
            condition += f" AND begins_with({update.name(keys.SK)}, {update.value(sk_prefix)})"
        return list(self._query(update, condition, newest_first=newest_first, limit=limit))

    def query_between(self, pk: str, low: str, high: str, *, newest_first: bool = False) -> Iterator[Item]:
        """Items of one partition whose sort key is between ``low`` and ``high`` (inclusive), lazily."""
        update = Update()
        between = f"{update.name(keys.SK)} BETWEEN {update.value(low)} AND {update.value(high)}"
        condition = f"{update.equals(keys.PK, pk)} AND {between}"
        return self._query(update, condition, newest_first=newest_first)

    def _query(
        self, update: Update, condition: str, *, newest_first: bool, limit: int | None = None, index: str | None = None
    ) -> Iterator[Item]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": update.names,
            "ExpressionAttributeValues": update.values,
            "ScanIndexForward": not newest_first,
        }
        if index:
            request["IndexName"] = index
        return self._paginate("query", request, limit)

    def due_watches(self, now: datetime, *, kinds: Iterable[str] | None = None) -> list[Item]:
        """Items whose watch_deadline <= now, from the sparse index: one query per shard (+ pages)."""
        wanted = set(kinds) if kinds is not None else None
        items: list[Item] = []
        for shard in range(keys.WATCH_SHARDS):
            update = Update()
            condition = (
                f"{update.equals(keys.WATCH_SHARD, f'W#{shard}')}"
                f" AND {update.name(keys.WATCH_DEADLINE)} <= {update.value(keys.iso(now))}"
            )
            for item in self._query(update, condition, newest_first=False, index=keys.WATCH_INDEX):
                if wanted is None or item.get(keys.WATCH_KIND) in wanted:
                    items.append(item)
        return items

    def scan_all(self) -> list[Item]:
        """Every item (tests and small tools only; never on a Lambda's hot path)."""
        return list(self._paginate("scan", {"TableName": self.table_name}, None))

    def _paginate(self, operation: str, request: dict[str, Any], limit: int | None) -> Iterator[Item]:
        count = 0
        while True:
            if limit is not None:
                request["Limit"] = limit - count
            response = getattr(self.dynamodb, operation)(**request)
            for raw in response.get("Items", []):
                yield deserialize(raw)
                count += 1
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and count >= limit):
                return
            request["ExclusiveStartKey"] = last

    # ----------------------------------------------------------------- writes
    def put(self, item: Mapping[str, Any]) -> None:
        """Unconditional PutItem (only for items whose every write carries the whole truth)."""
        self.dynamodb.put_item(TableName=self.table_name, Item=serialize(item))

    def put_if_absent(self, item: Mapping[str, Any]) -> bool:
        """PutItem when no item has this key; False when one does."""
        try:
            self.dynamodb.put_item(
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

    def update(
        self, pk: str, sk: str, update: Update, condition: str | None = None, *, return_new: bool = False
    ) -> Item | None:
        """UpdateItem; None when the condition failed, else the new item (``return_new``) or ``{}``."""
        request: dict[str, Any] = {"UpdateExpression": update.expression()}
        if condition:
            request["ConditionExpression"] = condition
        if update.names:
            request["ExpressionAttributeNames"] = update.names
        if update.values:
            request["ExpressionAttributeValues"] = update.values
        try:
            response = self.dynamodb.update_item(
                TableName=self.table_name,
                Key=self._key(pk, sk),
                ReturnValues="ALL_NEW" if return_new else "NONE",
                **request,
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return None
            raise
        return deserialize(response.get("Attributes", {})) if return_new else {}

    def delete(self, pk: str, sk: str, *, condition: Update | None = None, expression: str | None = None) -> bool:
        """DeleteItem (conditional when ``expression`` is given, with ``condition``'s placeholders)."""
        request: dict[str, Any] = {}
        if expression is not None and condition is not None:
            request["ConditionExpression"] = expression
            request["ExpressionAttributeNames"] = condition.names
            if condition.values:
                request["ExpressionAttributeValues"] = condition.values
        try:
            self.dynamodb.delete_item(TableName=self.table_name, Key=self._key(pk, sk), **request)
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True
