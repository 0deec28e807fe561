"""The backup pipeline stack: composes one construct per capability and exports what users need."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from backup_contracts.fleet import Fleet
from stacks.agent_access import AGENT_TRUST_TAG, AgentAccess, agent_trust_tag_value
from stacks.alerting import Alerting
from stacks.approvals import RestoreApprovals
from stacks.event_bus import EventBus
from stacks.functions import Functions, Shared
from stacks.ledger import Ledger
from stacks.monitoring import Monitoring
from stacks.offsite import OffsiteReplication
from stacks.storage import Storage
from stacks.vault_names import VAULT_READERS, reader_role_names


class PipelineStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, fleet: Fleet, code: lambda_.Code, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.fleet = fleet
        self.storage = Storage(self, "Storage", fleet=fleet)
        key = self.storage.key
        self.ledger = Ledger(self, "Ledger", pipeline=fleet.pipeline.name, key=key)
        self.events = EventBus(self, "Events", pipeline=fleet.pipeline.name)
        self.agent_access = AgentAccess(
            self, "AgentAccess", fleet=fleet, key=key, bucket=self.storage.bucket, bus=self.events.bus
        )
        self.storage.deny_overwrites_by([agent.role for agent in self.agent_access.agents.values()])
        self.alerting = Alerting(self, "Alerting", fleet=fleet, key=key)
        self.functions = Functions(
            self,
            "Functions",
            shared=Shared(
                fleet=fleet,
                code=code,
                key=key,
                bucket=self.storage.bucket,
                table=self.ledger.table,
                bus=self.events.bus,
                topic=self.alerting.topic,
                chat_topic=self.alerting.chat_topic,
                agent_queues=tuple(agent.queue for agent in self.agent_access.agents.values()),
                role_names=reader_role_names(fleet),
            ),
        )
        # pipeline.offsite: replicate every backup into the vault (stacks/vault.py) and let the watchdog and
        # the restore coordinator read the copies back.
        self.offsite = (
            OffsiteReplication(
                self,
                "Offsite",
                fleet=fleet,
                bucket=self.storage.bucket,
                key=key,
                readers={name: self.functions.access[name] for name in VAULT_READERS},
            )
            if fleet.pipeline.offsite is not None
            else None
        )
        self.approvals = RestoreApprovals(self, "RestoreApprovals", fleet=fleet, function=self.functions.restore)
        dlqs = {f"agent-{name}": agent.dlq for name, agent in self.agent_access.agents.items()}
        dlqs |= {f"{name}-events": dlq for name, dlq in self.functions.dlqs.items()}
        dlqs |= {f"webhook-{name}": dlq for name, dlq in self.alerting.destinations.webhook_dlqs.items()}
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            fleet=fleet,
            topic=self.alerting.topic,
            dlqs=dlqs,  # type: ignore[arg-type]
            functions=self.functions.functions,  # type: ignore[arg-type]
            watchdog=self.functions.watchdog,
        )
        self._outputs()

    def _outputs(self) -> None:
        CfnOutput(self, "BucketName", value=self.storage.bucket.bucket_name, description="backup bucket")
        CfnOutput(self, "BusName", value=self.events.bus.event_bus_name, description="pipeline event bus")
        CfnOutput(self, "KeyArn", value=self.storage.key.key_arn, description="KMS key of bucket, ledger, queues")
        CfnOutput(self, "LedgerTable", value=self.ledger.table.table_name, description="audit ledger table")
        CfnOutput(self, "AlertTopicArn", value=self.alerting.topic.topic_arn, description="alert topic")
        CfnOutput(self, "ApprovalsUrl", value=self.approvals.url.url, description="BACKUP_APPROVALS_URL of backupctl")
        CfnOutput(
            self,
            "ApprovalsCallersPolicyArn",
            value=self.approvals.callers_policy.managed_policy_arn,
            description="attach to who requests or approves restores into protected targets",
        )
        for name, agent in self.agent_access.agents.items():
            ident = "".join(part.capitalize() for part in name.split("-"))
            CfnOutput(self, f"Agent{ident}QueueUrl", value=agent.queue.queue_url, description=f"{name}: job queue")
            CfnOutput(self, f"Agent{ident}RoleArn", value=agent.role.role_arn, description=f"{name}: IAM role")
            CfnOutput(
                self,
                f"Agent{ident}HostTag",
                value=f"{AGENT_TRUST_TAG}={agent_trust_tag_value(self.fleet.pipeline.name, name)}",
                description=f"{name}: the tag its host's role needs to assume the agent role (docs/deploy.md)",
            )
