"""Dispatcher Lambda: scheduled ticks and on-demand ``Backup Requested`` events."""
