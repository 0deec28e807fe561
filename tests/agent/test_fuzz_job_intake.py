"""Hypothesis against the agent's job intake (``Consumer.handle``, a moto server's queue): whatever a job
message says, the agent refuses it with a reason, reports a failure, or runs it; it never raises (a crash
there would leave the message to be redelivered without a reason). Budget and profiles:
``tests/fuzzing.py``."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from fuzzing import budget, case, json_values, mutated
from hypothesis import given
from hypothesis import strategies as st

from backup_agent.config import AgentConfig
from backup_agent.consumer import Consumer
from backup_agent.events import EventBridgeSink
from backup_agent.state import CompletedJobs

from .conftest import REGION, Stack, make_job

pytestmark = pytest.mark.integration

OUTCOMES = {"malformed", "refused", "duplicate", "running", "failed", "succeeded", "interrupted"}


def _no_engine(target: str) -> Any:
    raise RuntimeError(f"fuzz: no engine for {target}")  # the job's config is unusable: reported, retried


@st.composite
def job_bodies(draw: st.DrawFn, stack: Stack) -> str:
    if draw(st.integers(0, 5), label="random?") == 0:
        return draw(st.text(max_size=40) | json_values.map(lambda v: json.dumps(v, default=str)), label="body")
    job = json.loads(make_job(stack).model_dump_json())
    job["kind"] = draw(st.sampled_from(["backup", "backup", "restore", "drill"]), label="kind")
    job["key_prefix"] = draw(
        st.sampled_from(["agents/demo-host/", "agents/demo-host/sub/", "agents/other/", "agents/demo-host/../x/", ""]),
        label="key_prefix",
    )
    return json.dumps(draw(mutated(job), label="job"), default=str)


@budget(400)
@given(data=st.data())
def test_no_job_message_crashes_the_agents_intake(stack: Stack, agent_config: AgentConfig, data: st.DataObject) -> None:
    consumer = _consumer(stack, agent_config)
    body = data.draw(job_bodies(stack), label="body")
    try:
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    except ClientError:
        return  # SQS itself refuses such a body (characters outside its set): no agent ever receives it
    [message] = stack.sqs.receive_message(
        QueueUrl=stack.queue_url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    with case("agent job intake"):
        outcome = consumer.handle(message)
    assert outcome in OUTCOMES
    stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])


_CONSUMERS: dict[str, Consumer] = {}


def _consumer(stack: Stack, config: AgentConfig) -> Consumer:
    """One consumer per test (hypothesis runs every case in the same fixtures)."""
    if stack.queue_url not in _CONSUMERS:
        _CONSUMERS.clear()
        _CONSUMERS[stack.queue_url] = Consumer(
            config,
            sqs=stack.sqs,
            s3=boto3.client("s3", region_name=REGION),
            events=EventBridgeSink(stack.events, stack.bus),
            engine_factory=_no_engine,
            completed=CompletedJobs(config.state_dir),
        )
    return _CONSUMERS[stack.queue_url]
