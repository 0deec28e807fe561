"""The pipeline's own EventBridge bus (with an archive so events can be replayed after an incident), and how
its rules deliver into encrypted SQS queues with grants scoped to the rule that sends."""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as event_refs
from constructs import Construct

from backup_contracts.naming import event_bus_name

ARCHIVE_DAYS = 30


class EventBus(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, pipeline: str) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=event_bus_name(pipeline))
        self.archive = self.bus.archive(
            "Archive",
            description=f"{pipeline}: every event on the bus, for replay after an incident",
            event_pattern=events.EventPattern(account=[Stack.of(self).account]),
            retention=Duration.days(ARCHIVE_DAYS),
        )


EVENTS_SERVICE = "events.amazonaws.com"


@jsii.implements(events.IRuleTarget)
class QueueTarget:
    """A rule's SQS target (with its dead-letter queue) that only that rule may send to.

    CDK's ``targets.SqsQueue`` grants ``events.amazonaws.com`` on a KMS-encrypted queue without
    ``aws:SourceArn`` (any rule of any account; with the ``eventsTargetQueueSameAccount`` flag, any rule of
    this account) and the key with ``kms:ReEncrypt*``. Here both queues allow ``sqs:SendMessage`` only
    from this rule (``aws:SourceArn``) of this account (``aws:SourceAccount``); the key grant is
    ``allow_rules_to_use_key``.
    """

    def __init__(self, queue: sqs.IQueue, *, dead_letter_queue: sqs.IQueue) -> None:
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue

    def bind(self, rule: event_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        conditions = {
            "ArnEquals": {"aws:SourceArn": rule.rule_ref.rule_arn},
            "StringEquals": {"aws:SourceAccount": Stack.of(rule).account},
        }
        for sid, queue in (("AllowItsRuleToSend", self.queue), ("AllowItsRuleToDeadLetter", self.dead_letter_queue)):
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(EVENTS_SERVICE)],
                    actions=["sqs:SendMessage"],
                    resources=[queue.queue_arn],
                    conditions=conditions,
                )
            )
        return events.RuleTargetConfig(
            arn=self.queue.queue_arn,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self.dead_letter_queue.queue_arn),
            target_resource=self.queue,
        )


def allow_rules_to_use_key(key: kms.IKey) -> None:
    """EventBridge encrypts what its rules deliver into the KMS-encrypted queues (and their DLQs) with the
    pipeline key: only for rules of this account (``aws:SourceAccount``). Not ``aws:SourceArn``: naming the
    rules in the key policy would make the key depend on the rules that depend on the queues that depend on
    the key (a cycle), and the queue policies already admit only each queue's own rule."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowThisAccountsRulesToUseTheKeyForTheEventQueues",
            principals=[iam.ServicePrincipal(EVENTS_SERVICE)],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],  # in a key policy "*" means this key
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(key).account}},
        )
    )


def _field(values: list[Any]) -> list[str]:
    """One pattern field: plain strings as they are; with a ``{"prefix": p}`` among them, EventBridge's
    matchers (``Match.any_of`` of exact strings and prefixes)."""
    if all(isinstance(value, str) for value in values):
        return list(values)
    matchers = []
    for value in values:
        if isinstance(value, str):
            matchers.append(events.Match.exact_string(value))
        elif isinstance(value, dict) and set(value) == {"prefix"}:
            matchers.append(events.Match.prefix(value["prefix"]))
        else:
            raise ValueError(f"event pattern matcher {value!r} is not supported by event_pattern(); add it here")
    return list(events.Match.any_of(*matchers)) if len(matchers) > 1 else list(matchers[0])


def event_pattern(pattern: dict[str, list[Any]]) -> events.EventPattern:
    """Translate a shared pattern (backup_contracts.events.*_PATTERN) into a CDK EventPattern, losslessly."""
    known = {"source": "source", "detail-type": "detail_type", "account": "account", "region": "region"}
    unknown = set(pattern) - set(known)
    if unknown:
        raise ValueError(f"event pattern keys {sorted(unknown)} are not supported by event_pattern(); add them here")
    arguments: dict[str, Any] = {known[key]: _field(values) for key, values in pattern.items()}
    return events.EventPattern(**arguments)
