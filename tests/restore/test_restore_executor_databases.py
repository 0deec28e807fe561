"""Round trips on the real local PostgreSQL and MariaDB: write known data, back up through the agent's
pipeline (moto server), change or drop it, restore (clone and in-place), and compare with the snapshot.
In-place restores leave a safety backup that restores the pre-restore state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backup_contracts.events import BackupSucceeded, RestoreFailed, RestoreSucceeded

from .agent_world import PG, AgentWorld, mariadb, psql, unique

pytestmark = pytest.mark.integration

# --------------------------------------------------------------------------- PostgreSQL

PG_SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, since timestamptz NOT NULL, meta jsonb);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers(id), total numeric(10,2),
                     ip inet, blob bytea);
INSERT INTO customers SELECT g, 'customer ' || g, '2026-01-01'::timestamptz + g * interval '1 hour',
                             jsonb_build_object('tier', g % 3) FROM generate_series(1, 200) g;
INSERT INTO orders (customer, total, ip, blob)
  SELECT 1 + g % 200, g * 1.25, ('10.0.' || (g % 250) || '.1')::inet, decode(md5(g::text), 'hex')
  FROM generate_series(1, 1000) g;
"""


def pg_snapshot(db: str) -> dict[str, str]:
    """Table list and an md5 over every row of every public table (in key order)."""
    tables = psql(
        db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1;"
    ).split()
    snapshot = {"tables": ",".join(tables)}
    for table in tables:
        snapshot[table] = psql(
            db, f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM \"{table}\" t;"
        ).strip()
    return snapshot


@pytest.fixture
def pg_dbs(postgres_server: None) -> Iterator[dict[str, str]]:
    names = {"app": unique("rt_app"), "app-clone": unique("rt_clone"), "app-drill": unique("rt_drill")}
    psql("postgres", f'CREATE DATABASE "{names["app"]}";')
    psql(names["app"], PG_SCHEMA)
    yield names
    for name in names.values():
        psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);', check=False)


@pytest.fixture
def pg_world(agent_world: AgentWorld, pg_dbs: dict[str, str]) -> AgentWorld:
    agent_world.targets = {
        target: {"engine": "postgresql", "host": PG["host"], "port": PG["port"], "user": PG["user"], "database": db}
        for target, db in pg_dbs.items()
    }
    return agent_world


def _pg_change(db: str) -> None:
    psql(
        db,
        "DELETE FROM orders WHERE id > 10; UPDATE customers SET name = 'oops'; DROP TABLE orders;"
        " CREATE TABLE later (x int);",
    )


@pytest.mark.postgres
def test_postgres_clone_restore_equals_the_snapshot(pg_world: AgentWorld, pg_dbs: dict[str, str]) -> None:
    snapshot = pg_snapshot(pg_dbs["app"])
    backup = pg_world.backup("app")
    _pg_change(pg_dbs["app"])

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert outcome.ok, outcome.event
    assert pg_snapshot(pg_dbs["app-clone"]) == snapshot
    assert isinstance(outcome.event, RestoreSucceeded)
    assert outcome.event.verification["total_rows"] == 1200
    assert outcome.event.verification["checks"]["tables"] == "2 restored of 2 in the backup"


@pytest.mark.postgres
def test_postgres_in_place_restore_brings_back_a_dropped_table_and_keeps_the_pre_restore_state(
    pg_world: AgentWorld, pg_dbs: dict[str, str]
) -> None:
    db = pg_dbs["app"]
    snapshot = pg_snapshot(db)
    backup = pg_world.backup("app")
    _pg_change(db)  # rows deleted, names changed, a table dropped, a new one created
    pre_restore = pg_snapshot(db)

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app", mode="in-place"))

    assert outcome.ok, outcome.event
    restored = pg_snapshot(db)
    assert {k: restored[k] for k in ("customers", "orders")} == {k: snapshot[k] for k in ("customers", "orders")}
    assert outcome.event.verification["extra_tables"] == ["public.later"]  # type: ignore[union-attr]
    # the safety backup holds exactly the state before the restore
    safety = _safety_backup(pg_world, outcome.event)
    check = pg_world.restore(pg_world.restore_job(safety, destination="app-clone", mode="clone"))
    assert check.ok, check.event
    assert pg_snapshot(pg_dbs["app-clone"]) == pre_restore


@pytest.mark.postgres
def test_postgres_in_place_restore_is_undone_in_place_from_its_safety_backup(
    pg_world: AgentWorld, pg_dbs: dict[str, str]
) -> None:
    db = pg_dbs["app"]
    backup = pg_world.backup("app")
    psql(db, "DELETE FROM orders WHERE id > 10; UPDATE customers SET name = 'later edit' WHERE id < 20;")
    pre_restore = pg_snapshot(db)
    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app", mode="in-place"))
    assert outcome.ok, outcome.event
    assert pg_snapshot(db) != pre_restore

    safety = _safety_backup(pg_world, outcome.event)
    undo = pg_world.restore(pg_world.restore_job(safety, destination="app", mode="in-place"))

    assert undo.ok, undo.event
    assert pg_snapshot(db) == pre_restore


@pytest.mark.postgres
def test_postgres_clone_refreshes_a_staging_database_that_holds_data(
    pg_world: AgentWorld, pg_dbs: dict[str, str]
) -> None:
    snapshot = pg_snapshot(pg_dbs["app"])
    backup = pg_world.backup("app")
    staging = pg_dbs["app-clone"]
    psql("postgres", f'CREATE DATABASE "{staging}";')
    psql(staging, "CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers VALUES (1, 'old');")

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert outcome.ok, outcome.event
    assert isinstance(outcome.event, RestoreSucceeded)
    assert outcome.event.safety_backup_run_id is not None
    assert pg_snapshot(staging) == snapshot


@pytest.mark.postgres
def test_postgres_drill_restores_verifies_and_drops_the_scratch_database(
    pg_world: AgentWorld, pg_dbs: dict[str, str]
) -> None:
    backup = pg_world.backup("app")

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app-drill", mode="drill", kind="drill"))

    assert outcome.ok, outcome.event
    exists = psql("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{pg_dbs['app-drill']}';").strip()
    assert exists == "0"


# --------------------------------------------------------------------------- MariaDB

MARIADB_SCHEMA = """
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, since DATETIME NOT NULL, note TEXT);
CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT, total DECIMAL(10,2), blob_col VARBINARY(32));
INSERT INTO customers SELECT seq, CONCAT('customer ', seq), '2026-01-01' + INTERVAL seq HOUR, REPEAT('x', seq % 50)
  FROM seq_1_to_200;
INSERT INTO orders (customer, total, blob_col) SELECT 1 + seq % 200, seq * 1.25, UNHEX(MD5(seq)) FROM seq_1_to_1000;
"""


def maria_snapshot(db: str) -> dict[str, str]:
    return {
        "customers": mariadb(
            "SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, since, note) ORDER BY id SEPARATOR ',')) FROM customers;",
            db,
        ).strip(),
        "orders": mariadb(
            "SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, customer, total, HEX(blob_col)) ORDER BY id SEPARATOR ','))"
            " FROM orders;",
            db,
        ).strip(),
        "tables": mariadb(
            f"SELECT GROUP_CONCAT(table_name ORDER BY table_name) FROM information_schema.tables"
            f" WHERE table_schema = '{db}';"
        ).strip(),
    }


@pytest.fixture
def maria_dbs(mariadb_server: None) -> Iterator[dict[str, str]]:
    names = {"shop": unique("rt_shop"), "shop-clone": unique("rt_shopclone")}
    mariadb(f"CREATE DATABASE `{names['shop']}`; SET SESSION group_concat_max_len = 1000000;")
    mariadb("SET GLOBAL group_concat_max_len = 10000000;", check=False)
    mariadb(MARIADB_SCHEMA, names["shop"])
    yield names
    for name in names.values():
        mariadb(f"DROP DATABASE IF EXISTS `{name}`;", check=False)


@pytest.fixture
def maria_world(agent_world: AgentWorld, maria_dbs: dict[str, str]) -> AgentWorld:
    agent_world.targets = {
        target: {"engine": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "database": db}
        for target, db in maria_dbs.items()
    }
    return agent_world


@pytest.mark.mariadb
def test_mariadb_clone_restore_equals_the_snapshot(maria_world: AgentWorld, maria_dbs: dict[str, str]) -> None:
    snapshot = maria_snapshot(maria_dbs["shop"])
    backup = maria_world.backup("shop")
    mariadb("DELETE FROM orders; UPDATE customers SET name = 'oops';", maria_dbs["shop"])

    outcome = maria_world.restore(maria_world.restore_job(backup, destination="shop-clone", mode="clone"))

    assert outcome.ok, outcome.event
    clone = maria_snapshot(maria_dbs["shop-clone"])
    assert (clone["customers"], clone["orders"]) == (snapshot["customers"], snapshot["orders"])


@pytest.mark.mariadb
def test_mariadb_in_place_restore_equals_the_snapshot_and_its_safety_backup_undoes_it(
    maria_world: AgentWorld, maria_dbs: dict[str, str]
) -> None:
    db = maria_dbs["shop"]
    snapshot = maria_snapshot(db)
    backup = maria_world.backup("shop")
    mariadb("DELETE FROM orders WHERE id > 5; UPDATE customers SET name = 'oops' WHERE id < 50;", db)
    pre_restore = maria_snapshot(db)

    outcome = maria_world.restore(maria_world.restore_job(backup, destination="shop", mode="in-place"))

    assert outcome.ok, outcome.event
    assert maria_snapshot(db) == snapshot
    safety = _safety_backup(maria_world, outcome.event)
    undo = maria_world.restore(maria_world.restore_job(safety, destination="shop", mode="in-place"))
    assert undo.ok, undo.event
    assert maria_snapshot(db) == pre_restore


@pytest.mark.mariadb
def test_mariadb_tampered_object_fails_before_the_database_is_touched(
    maria_world: AgentWorld, maria_dbs: dict[str, str]
) -> None:
    db = maria_dbs["shop"]
    backup = maria_world.backup("shop")
    mariadb("DELETE FROM orders WHERE id > 5;", db)
    before = maria_snapshot(db)
    stored = maria_world.s3.get_object(Bucket=backup.bucket, Key=backup.key)["Body"].read()
    maria_world.s3.put_object(Bucket=backup.bucket, Key=backup.key, Body=stored[:100] + b"X" + stored[101:])

    outcome = maria_world.restore(
        maria_world.restore_job(backup, destination="shop", mode="in-place", use_version=False)
    )

    assert isinstance(outcome.event, RestoreFailed)
    assert (outcome.event.stage, outcome.event.destination_touched) == ("verify-object", False)
    assert maria_snapshot(db) == before


def _safety_backup(world: AgentWorld, event: Any) -> BackupSucceeded:
    assert isinstance(event, RestoreSucceeded)
    assert event.safety_backup_run_id
    [safety] = [
        e
        for e in world.events.events
        if isinstance(e, BackupSucceeded) and e.run_id == event.safety_backup_run_id and e.trigger == "pre-restore"
    ]
    return safety
