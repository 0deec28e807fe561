"""Watchdog: expected vs actual, alerts on overdue targets, jobs and agents (see logic.py)."""
