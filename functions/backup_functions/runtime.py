"""One way every Lambda handler starts and handles: a lazily built runtime, one decorator stack in a fixed
order, and one partial-failure policy for the SQS-fed functions.

- ``Lazy(build)``: the function's collaborators (ledger, ports, clock), built from the environment on
  the first invocation and cached per container; ``configure(runtime)`` injects one instead (tests,
  the local pipeline) and ``configure(None)`` goes back to building.
- ``lambda_handler``: Powertools' logger context (state cleared per invocation), tracer and metrics
  flush, always in this order.
- ``handle_sqs_batch``: each record handled on its own (Powertools ``BatchProcessor``); a record that
  fails is reported in ``batchItemFailures`` and the rest of the batch goes on, even when every record
  fails. The correlation id is set from the event before it is handled; a malformed event is logged
  with its reason and counted, then reaches the queue's DLQ after ``maxReceiveCount``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from backup_functions.envelope import MalformedEventError, correlation_id
from backup_functions.observability import REJECTED_EVENTS, count, logger, metrics, tracer

T = TypeVar("T")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
RecordHandler = Callable[[SQSRecord], dict[str, Any]]


class Lazy(Generic[T]):
    """A value built on first use and kept (one per Lambda container), or the one configured."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._build()
        return self._value

    def configure(self, value: T | None) -> None:
        """Inject the value (tests, local pipeline); None goes back to building it from the environment."""
        self._value = value


def lambda_handler(function: Handler) -> Handler:
    """The pipeline's decorator stack, in one order for every function."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    @functools.wraps(function)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return function(event, context)
        finally:
            if is_metrics_disabled():  # Powertools then never flushes: a warm container would pile them up
                metrics.clear_metrics()

    return handler


def handle_sqs_batch(event: dict[str, Any], context: Any, *, function: str, handle: RecordHandler) -> dict[str, Any]:
    """Handle every record of an SQS batch with ``handle``; failures become ``batchItemFailures``."""

    @tracer.capture_method(capture_response=False)
    def record_handler(record: SQSRecord) -> dict[str, Any]:
        logger.set_correlation_id(correlation_id(record.body) or record.message_id)
        logger.append_keys(message_id=record.message_id)
        try:
            return handle(record)
        except MalformedEventError as exc:
            logger.error(
                f"{function}: malformed event rejected (it goes to the DLQ after the queue's maxReceiveCount)",
                extra={"reason": str(exc)},
            )
            count(REJECTED_EVENTS)
            raise
        except Exception:
            logger.exception(f"{function}: event could not be processed; SQS redelivers it (then the DLQ)")
            raise
        finally:
            logger.remove_keys(["message_id"])

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
