"""The audit ledger: one DynamoDB table (on-demand, PITR, KMS, TTL) with the watchdog's deadline index."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from backup_contracts import ledger, naming


class Ledger(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, pipeline: str, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=naming.ledger_table_name(pipeline),  # backupctl derives it from the fleet's name
            partition_key=dynamodb.Attribute(name=ledger.PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=ledger.SK, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            time_to_live_attribute=ledger.TTL_ATTRIBUTE,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=ledger.WATCH_INDEX,
            partition_key=dynamodb.Attribute(name=ledger.WATCH_SHARD, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=ledger.WATCH_DEADLINE, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
