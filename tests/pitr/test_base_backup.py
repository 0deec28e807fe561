"""Base backups of a real throwaway cluster through the ``postgresql-physical`` engine: what ``check`` says
about the server, the facts a valid ``pg_basebackup`` stream yields, and every way a damaged stream
(a flipped byte, a missing member, a truncation, an altered manifest) is refused."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_agent.engines import PostgresPhysicalConfig, SecretRef, build_engine
from backup_agent.engines.base import InvalidDumpError
from backup_agent.engines.postgresql_physical import PostgresPhysicalEngine
from backup_agent.engines.validators.pg_basebackup import FACT_NAMES, BaseBackupValidator
from tests.pitr.cluster import Cluster, owned_dir, running_cluster

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def source_engine(cluster: Cluster) -> PostgresPhysicalEngine:
    config = PostgresPhysicalConfig(engine="postgresql-physical", host="127.0.0.1", port=cluster.port)
    engine = build_engine("orders-pitr", config, lambda _ref: "unused")
    assert isinstance(engine, PostgresPhysicalEngine)
    return engine


def take_base_backup(engine: PostgresPhysicalEngine) -> tuple[bytes, BaseBackupValidator]:
    """Run the engine's dump to the end, its bytes fed to its validator as the pipeline does."""
    dump = engine.start_dump()
    validator = engine.validator()
    data = bytearray()
    while chunk := dump.stream.read(256 * 1024):
        data += chunk
        validator.feed(chunk)
    outcome = dump.wait()
    assert outcome.exit_code == 0, outcome.stderr_tail
    return bytes(data), validator


@dataclass
class Backup:
    cluster: Cluster
    engine: PostgresPhysicalEngine
    data: bytes
    facts: dict[str, object]


@pytest.fixture(scope="module")
def backup(cluster_support: None) -> Iterator[Backup]:
    archive = owned_dir("pitr-archive-")
    try:
        # a server logging in another zone: backup_label's START TIME is then not UTC
        settings = {"log_timezone": "'Europe/Berlin'"}
        with running_cluster(archive_command=f"cp %p {archive}/%f", settings=settings) as cluster:
            cluster.sql("CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'one')")
            engine = source_engine(cluster)
            data, validator = take_base_backup(engine)
            yield Backup(cluster, engine, data, validator.finish())
    finally:
        shutil.rmtree(archive, ignore_errors=True)


def validate(data: bytes, piece: int = 64 * 1024) -> dict[str, object]:
    validator = BaseBackupValidator()
    for start in range(0, len(data), piece):
        validator.feed(data[start : start + piece])
    return validator.finish()


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {info.name: info for info in tar.getmembers()}


def without(data: bytes, name: str) -> bytes:
    info = members(data)[name]
    end = info.offset_data + info.size + (-info.size % 512)
    return data[: info.offset] + data[end:]


def manifest_bounds(data: bytes) -> tuple[int, int]:
    info = members(data)["backup_manifest"]
    return info.offset_data, info.offset_data + info.size


def test_the_base_backup_validates_and_yields_its_wal_facts(backup: Backup) -> None:
    facts = backup.facts
    with tarfile.open(fileobj=io.BytesIO(backup.data)) as tar:
        label = tar.extractfile("backup_label").read().decode()  # type: ignore[union-attr]
    start = re.search(r"START WAL LOCATION: (\S+) \(file (\w+)\)", label)
    controldata = backup.cluster.run([str(backup.cluster.bin_dir / "pg_controldata"), str(backup.cluster.data)])

    assert set(facts) == set(FACT_NAMES)
    assert start is not None
    assert (facts["start_lsn"], facts["start_file"]) == (start.group(1), start.group(2))
    assert f"Database system identifier:           {facts['system_identifier']}" in controldata.stdout
    assert facts["timeline"] == 1
    assert facts["wal_segment_size"] == 16 * 1024 * 1024
    assert facts["pg_version"] == "15"
    assert str(facts["end_file"]) >= str(facts["start_file"])
    assert "CET" in label  # the time the label gives is in the server's log_timezone ...
    started = datetime.fromisoformat(str(facts["start_time"]))  # ... the fact is in UTC all the same
    assert started.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - started) < timedelta(minutes=2)
    assert facts["files"] == len([m for m in members(backup.data).values() if m.isfile()]) - 1  # not the manifest
    assert facts["bytes"] == len(backup.data)


def test_the_validator_gives_the_same_verdict_however_the_stream_is_split(backup: Backup) -> None:
    assert validate(backup.data, piece=7919) == backup.facts


def test_the_password_reaches_pg_basebackup_only_through_a_pgpass_file(backup: Backup) -> None:
    config = PostgresPhysicalConfig(
        engine="postgresql-physical", port=backup.cluster.port, password=SecretRef(env="ORDERS_PG_PASSWORD")
    )
    engine = build_engine("orders-pitr", config, lambda _ref: "s3cret:pw")
    assert isinstance(engine, PostgresPhysicalEngine)

    argv = engine.dump_argv()
    secrets = engine._secrets()
    try:
        passfile = Path(secrets.env["PGPASSFILE"])
        assert passfile.read_text() == "*:*:*:*:s3cret\\:pw\n"
        assert passfile.stat().st_mode & 0o077 == 0
    finally:
        secrets.files.cleanup()
    assert {"--pgdata=-", "--format=tar", "--wal-method=none", "--manifest-checksums=SHA256"} <= set(argv)
    assert not any("s3cret" in part for part in argv)
    assert "PGPASSWORD" not in secrets.env


def test_check_names_each_missing_pitr_setting_with_its_fix(backup: Backup) -> None:
    problems = backup.engine.check()

    assert len(problems) == 2, problems
    assert problems[0].startswith("archive_command is 'cp ")
    assert "Fix: archive_command = 'backup-agent --config" in problems[0]
    assert problems[1].startswith("archive_timeout is 0")
    assert "Fix: archive_timeout = 60" in problems[1]


def test_a_flipped_byte_in_a_member_is_refused_naming_the_file(backup: Backup) -> None:
    info = members(backup.data)["global/pg_control"]
    damaged = bytearray(backup.data)
    damaged[info.offset_data + 100] ^= 0x01

    with pytest.raises(InvalidDumpError, match="'global/pg_control' does not match its SHA-256"):
        validate(bytes(damaged))


def test_a_missing_member_is_refused_naming_the_file(backup: Backup) -> None:
    with pytest.raises(InvalidDumpError, match="'PG_VERSION' is listed in backup_manifest but missing"):
        validate(without(backup.data, "PG_VERSION"))


def test_a_member_the_manifest_does_not_list_is_refused(backup: Backup) -> None:
    info = members(backup.data)["PG_VERSION"]
    damaged = bytearray(backup.data)
    damaged[info.offset : info.offset + 10] = b"PG_VERSIOX"
    damaged[info.offset + 148 : info.offset + 156] = b" " * 8
    damaged[info.offset + 148 : info.offset + 156] = b"%06o\0 " % sum(damaged[info.offset : info.offset + 512])

    with pytest.raises(InvalidDumpError, match="'PG_VERSION' is listed in backup_manifest but missing"):
        validate(bytes(damaged))


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_stream_is_refused(backup: Backup, keep: float) -> None:
    with pytest.raises(InvalidDumpError, match=r"truncated|missing|manifest"):
        validate(backup.data[: int(len(backup.data) * keep)])


def test_a_stream_cut_before_its_end_of_archive_marker_is_refused(backup: Backup) -> None:
    end = max(info.offset_data + info.size + (-info.size % 512) for info in members(backup.data).values())

    with pytest.raises(InvalidDumpError, match="truncated"):
        validate(backup.data[:end])


def test_an_empty_stream_is_refused() -> None:
    with pytest.raises(InvalidDumpError, match="empty"):
        BaseBackupValidator().finish()


def test_an_altered_manifest_is_refused_by_its_own_checksum(backup: Backup) -> None:
    start, end = manifest_bounds(backup.data)
    manifest = backup.data[start:end]
    wal_range = re.search(rb'"End-LSN": "0/([0-9A-F])', manifest)
    assert wal_range is not None
    digit = wal_range.start(1)
    later = manifest[:digit] + (b"F" if manifest[digit : digit + 1] != b"F" else b"E") + manifest[digit + 1 :]

    with pytest.raises(InvalidDumpError, match="Manifest-Checksum does not match its contents: it was altered"):
        validate(backup.data[:start] + later + backup.data[end:])


def test_a_manifest_rewritten_with_a_valid_checksum_still_fails_on_the_file(backup: Backup) -> None:
    start, end = manifest_bounds(backup.data)
    manifest = backup.data[start:end]
    entry = re.search(rb'"Path": "PG_VERSION", .*?"Checksum": "([0-9a-f])', manifest)
    assert entry is not None
    digit = entry.start(1)
    body = manifest[:digit] + (b"0" if manifest[digit : digit + 1] != b"0" else b"1") + manifest[digit + 1 :]
    cut = body.rindex(b'"Manifest-Checksum"')
    resealed = body[:cut] + b'"Manifest-Checksum": "' + hashlib.sha256(body[:cut]).hexdigest().encode() + b'"}\n'
    assert len(resealed) == len(manifest)

    with pytest.raises(InvalidDumpError, match="'PG_VERSION' does not match its SHA-256"):
        validate(backup.data[:start] + resealed + backup.data[end:])


def test_a_link_member_is_refused_as_unsupported(backup: Backup) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        link = tarfile.TarInfo("pg_tblspc/16384")
        link.type, link.linkname = tarfile.SYMTYPE, "/srv/tablespace"
        tar.addfile(link)

    with pytest.raises(InvalidDumpError, match="symbolic link: only files and directories"):
        validate(buffer.getvalue())


def test_a_path_escaping_the_data_directory_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("../escape"), io.BytesIO(b""))

    with pytest.raises(InvalidDumpError, match="unsafe path"):
        validate(buffer.getvalue())
