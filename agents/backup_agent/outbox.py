"""Reports the agent still owes: stored backups whose ``Backup Succeeded`` never reached the bus.

A backup is recorded in the state file (``backup_agent.state``) with its event *before* the event is
put; only a confirmed PutEvents marks it ``emitted``. A queue job whose event was lost is re-sent
when SQS redelivers it; a one-off ``backup-agent backup`` has no redelivery, so every start of the
agent (``run``, ``backup``) first re-sends what is still owed (``resend_unreported``), and a one-off
run retries its own events a few times before it gives up (``RetryingSink``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from backup_agent.events import EventSink, PutEventsError
from backup_agent.state import CompletedJobs
from backup_contracts.events import BackupSucceeded, Contract
from backup_contracts.redaction import redact

log = logging.getLogger(__name__)

DELIVERY_ERRORS = (PutEventsError, BotoCoreError, ClientError)
RETRY_ATTEMPTS = 4
RETRY_DELAY_S = 1.0  # then 2 s, 4 s: a one-off run waits at most 7 s for the bus before it gives up


class RetryingSink:
    """Puts each event through ``sink``, retrying a rejected or failed PutEvents ``attempts`` times in
    all, ``delay_s`` doubling between attempts; the last failure is raised."""

    def __init__(
        self,
        sink: EventSink,
        *,
        attempts: int = RETRY_ATTEMPTS,
        delay_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sink = sink
        self._attempts = attempts
        self._delay_s = RETRY_DELAY_S if delay_s is None else delay_s
        self._sleep = sleep

    def emit(self, event: Contract) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                self._sink.emit(event)
                return
            except DELIVERY_ERRORS as exc:
                if attempt == self._attempts:
                    raise
                delay = self._delay_s * 2 ** (attempt - 1)
                log.warning(
                    "event not delivered (attempt %d of %d), retry in %g s: %s", attempt, self._attempts, delay, exc
                )
                self._sleep(delay)


@dataclass
class Resent:
    sent: list[str] = field(default_factory=list)  # job ids whose event is now on the bus
    owed: list[str] = field(default_factory=list)  # job ids whose event could still not be put
    error: str | None = None


def resend_unreported(completed: CompletedJobs, sink: EventSink) -> Resent:
    """Put every recorded but unconfirmed ``Backup Succeeded`` on the bus; stops at the first failure
    (the bus is unreachable or refusing: the rest would fail alike and stays owed)."""
    result = Resent()
    pending = completed.unreported()
    for index, (job_id, entry) in enumerate(pending):
        try:
            event = BackupSucceeded.model_validate(entry["event"])
        except ValidationError:
            log.error("state entry of job %s holds no valid Backup Succeeded event; not re-sent", job_id)
            continue
        try:
            sink.emit(event)
        except DELIVERY_ERRORS as exc:
            result.error = redact(str(exc))
            result.owed = [owed for owed, _ in pending[index:]]
            log.error(
                "%d stored backup(s) still unreported (the bus refused: %s); they are re-sent at the next start",
                len(result.owed),
                result.error,
            )
            return result
        completed.record(job_id, emitted=True)
        result.sent.append(job_id)
        log.info(
            "re-sent the Backup Succeeded event of job %s (run %s, s3://%s/%s)",
            job_id,
            event.run_id,
            event.bucket,
            event.key,
            extra={"ctx_job": job_id},
        )
    return result
