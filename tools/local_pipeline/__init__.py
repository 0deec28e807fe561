"""The whole pipeline on one machine: a moto server standing in for AWS, the real dispatcher,
audit, watchdog and restore handlers called in-process, and real agent processes."""
