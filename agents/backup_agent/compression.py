"""zstd as the agent uses it: the compressor parameters of a backup stream.

``zstd_parameters`` turns the configured ``Compression`` (a standard level, or the parameters tuned
for database dumps) into multi-threaded zstd parameters whose memory stays bounded.
"""

from __future__ import annotations

import functools

import zstandard

from backup_agent.config import DUMP_TUNED_ZSTD, Compression


def zstd_parameters(compression: Compression) -> zstandard.ZstdCompressionParameters:
    """zstd parameters for the configured compression, multi-threaded with a bounded job size.

    Multi-threaded zstd cuts the input into jobs of 4 x the window by default (2 MiB at level 1,
    8 MiB at level 3) and every worker holds its job's input and output: measured ~14 MiB at
    level 1 and ~53 MiB at level 3 with two workers. Jobs of max(1 MiB, window) need ~8 / ~16 MiB
    for the same speed and a ratio within 0.1%.
    """
    threads = compression.zstd_threads
    params = zstandard.ZstdCompressionParameters
    extra: dict[str, int] = {}
    if compression.level is None:
        window_log = DUMP_TUNED_ZSTD["window_log"]
        make = functools.partial(params, **DUMP_TUNED_ZSTD)
    else:
        window_log = params.from_level(compression.level).window_log
        make = functools.partial(params.from_level, compression.level)
    if threads != 0:
        extra["job_size"] = 1 << max(20, window_log)
    return make(threads=threads, write_checksum=True, **extra)
