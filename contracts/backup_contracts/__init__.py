"""Shared contracts of backup-pipeline: events, job messages, fleet configuration and names.

Agents, Lambdas, the CLI, the stack and the local pipeline all import these models, so each
contract is defined exactly once.
"""
