"""Restore coordinator: requests, guards, approvals, dispatch to agents, drills."""
