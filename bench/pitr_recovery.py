"""The recovery part of ``bench.pitr``: replay the WAL a pgbench load wrote onto the base backup taken
before it, once through the restore_command a restore gives the server (``backup-agent wal-fetch`` on a
WalIndex of presigned URLs into moto, each file checked against its SHA-256 and decompressed, the next
ones prefetched) and once through ``cp DIR/%f %p`` from a local copy of
the same files (made untimed). Both restore through the same engine call (``restore_with_wal``: unpack,
start, replay to the end of the WAL, promote, verify), so the difference is the fetching."""

from __future__ import annotations

import argparse
import hashlib
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import zstandard

from backup_agent.engines import build_engine
from backup_agent.engines.base import Recovery
from backup_agent.engines.pg_physical_config import PostgresPhysicalConfig
from backup_agent.restore.wal_replay import recovery_for
from backup_contracts.jobs import WalReplay
from backup_contracts.naming import wal_prefix
from backup_contracts.wal import WalIndex, WalIndexEntry, is_segment, is_wal_file
from bench.harness import AGENT, BUCKET, MiB, MotoProcess
from tests.pitr.cluster import Cluster, free_port, owned_dir
from tests.pitr.wal_world import server_python

TARGET = "pitr-bench"
BASE_TAR = "base.tar"


def _archived(moto: MotoProcess) -> tuple[WalIndex, Path]:
    """The archived WAL as a WalIndex of presigned URLs, and the same files decompressed into a
    directory (the baseline's archive)."""
    s3 = moto.client("s3")
    plain = owned_dir("pitr-bench-plain-")
    entries = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=wal_prefix(AGENT, TARGET))
    for page in pages:
        for item in page.get("Contents", []):
            name = item["Key"].rsplit("/", 1)[1].removesuffix(".zst")
            if not is_wal_file(name):
                continue
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            (plain / name).write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
            url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": item["Key"]}, ExpiresIn=3600)
            entries.append(
                WalIndexEntry(
                    name=name,
                    url=url,
                    sha256=hashlib.sha256(body).hexdigest(),
                    bytes_stored=len(body),
                    compression="zstd",
                )
            )
    segments = sorted(e.name for e in entries if len(e.name) == 24)
    index = WalIndex(target=TARGET, timeline=1, start_file=segments[0], files=entries)
    return index, plain  # root-written files are world-readable: the server user can cp them


def recovery_round(
    args: argparse.Namespace, moto: MotoProcess, workdir: Path, kept: tuple[Cluster, Any, Path], rnd: int
) -> list[Any]:
    from bench.pitr import Run  # the runs' record type (bench.pitr imports this module)

    cluster, _config, _archive = kept
    cluster.stop("immediate")
    scratch = owned_dir("pitr-bench-recovery-")
    plain = scratch / "plain"
    try:
        index, plain = _archived(moto)
        index_path = scratch / "wal-index.json"
        index_path.write_text(index.model_dump_json(), encoding="utf-8")
        body = index_path.read_bytes()
        replay = WalReplay(
            recovery_target="end",
            index_sha256=hashlib.sha256(body).hexdigest(),
            index_bytes=len(body),
            files=len(index.files),
            last_file=max(e.name for e in index.files),
        )
        # exactly the restore_command a restore gives the server (prefetched files moved in by the shell)
        fetch = recovery_for(replay, index_path, python=str(server_python(scratch))).restore_command
        commands = {"agent": fetch, "baseline": f"cp {shlex.quote(str(plain))}/%f %p"}
        wal_mib = sum(e.bytes_stored for e in index.files) / MiB  # stored; replayed is len(files) segments
        runs = []
        order = list(commands) if rnd % 2 == 0 else list(reversed(commands))
        for pipeline in order:
            data = scratch / f"data-{pipeline}"
            config = PostgresPhysicalConfig(
                engine="postgresql-physical",
                data_directory=data,
                port=free_port(),
                server_user=cluster.user,
                bin_dir=cluster.bin_dir,
            )
            engine: Any = build_engine(f"{TARGET}-{pipeline}", config, lambda _ref: "")
            t0 = time.perf_counter()
            error = ""
            try:
                with open(workdir / BASE_TAR, "rb") as stream:
                    report = engine.restore_with_wal(
                        stream, mode="drill", recovery=Recovery(restore_command=commands[pipeline])
                    )
                ok = True
            except Exception as exc:  # noqa: BLE001 - a failed run is recorded, the bench goes on
                ok, report, error = False, None, str(exc)
            seconds = time.perf_counter() - t0
            files = sum(1 for e in index.files if is_segment(e.name))  # 16 MiB segments, not .backup/.history
            runs.append(
                Run(
                    "recovery",
                    pipeline,
                    rnd,
                    seconds,
                    ok,
                    {
                        "wal_segments": files,
                        "wal_mib": round(files * 16, 1),
                        "wal_mib_stored": round(wal_mib, 1),
                        "wal_mib_per_s": round(files * 16 / seconds, 1),
                        "reached_at": (report.verification.get("reached_at") if report else None),
                    },
                    error,
                )
            )
            try:
                engine.drop_restored()
            except Exception as exc:  # noqa: BLE001
                print(f"bench.pitr: could not drop the {pipeline} restore: {exc}", file=sys.stderr)
        return runs
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(plain, ignore_errors=True)
