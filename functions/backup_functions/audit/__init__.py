"""Audit Lambda: agent events (SQS batch of EventBridge events) → ledger, verification, alerts."""
