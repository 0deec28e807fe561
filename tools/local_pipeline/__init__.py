"""The whole pipeline on one machine: a moto server standing in for AWS, the real dispatcher,
audit, watchdog and restore handlers called in-process, a loopback stand-in for the restore function's
approvals URL (``approvals_url``), and real agent processes."""
