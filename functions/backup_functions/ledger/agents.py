"""Agent state items (``AGENT#<a>/STATE``): the latest heartbeat and the watch that pages when it stops."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from backup_contracts import ledger as keys
from backup_functions.ledger.client import LedgerClient, Update, watch
from backup_functions.ledger.items import WATCH_HEARTBEAT, AgentState


class AgentStates:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    def get_many(self, agents: Iterable[str]) -> dict[str, AgentState]:
        found = self._client.batch_get((keys.agent_pk(a), keys.STATE_SK) for a in sorted(set(agents)))
        return {state.agent: state for state in map(AgentState.model_validate, found.values())}

    def record_heartbeat(
        self, agent: str, *, version: str, targets: Sequence[str], sent_at: datetime, timeout: timedelta
    ) -> bool:
        """Monotonic: an older heartbeat never overwrites a newer one. Watch = heartbeat + timeout."""
        update = Update().set(
            type="agent",
            agent=agent,
            version=version,
            targets=list(targets),
            last_heartbeat_at=sent_at,
            **watch(agent, WATCH_HEARTBEAT, sent_at + timeout),
        )
        last = update.name("last_heartbeat_at")
        condition = f"{update.absent('last_heartbeat_at')} OR {last} < {update.value(sent_at)}"
        return self._client.update(keys.agent_pk(agent), keys.STATE_SK, update, condition) is not None
