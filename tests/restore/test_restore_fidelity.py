"""A clone is equal to its source in what lives on the database itself, not only in its tables.

Real PostgreSQL and MariaDB, through the agent's pipeline (moto server) and ``RestoreRun``: the
source database's encoding, locale (and its provider), ``ALTER DATABASE … SET`` settings, comment and
owner (PostgreSQL), its default character set, collation and comment (MariaDB) are recorded at backup
time and recreated on a clone, so the application's queries and the routines behave the same; row
counts count each row once (partitions, inheritance) and are checked against the archive's own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backup_contracts.events import RestoreFailed, RestoreSucceeded

from .agent_world import PG, AgentWorld, mariadb, psql, unique

pytestmark = pytest.mark.integration

PROPERTIES = """
SELECT pg_encoding_to_char(d.encoding), d.datlocprovider, d.datcollate, d.datctype, coalesce(d.daticulocale, ''),
       coalesce(shobj_description(d.oid, 'pg_database'), ''), pg_get_userbyid(d.datdba),
       coalesce((SELECT array_to_string(setconfig, ' | ') FROM pg_db_role_setting s
                 WHERE s.setdatabase = d.oid AND s.setrole = 0), '')
FROM pg_database d WHERE d.datname = current_database();
"""

APP_SCHEMA = """
CREATE SCHEMA app; CREATE SCHEMA "My Schema";
CREATE TABLE app.t (id int PRIMARY KEY, name text);
INSERT INTO app.t SELECT g, 'n' || g FROM generate_series(1, 42) g;
CREATE TABLE public.measurements (id int, region text NOT NULL) PARTITION BY LIST (region);
CREATE TABLE public.measurements_eu PARTITION OF public.measurements FOR VALUES IN ('eu');
CREATE TABLE public.measurements_us PARTITION OF public.measurements FOR VALUES IN ('us');
INSERT INTO public.measurements SELECT g, CASE WHEN g % 4 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 100) g;
CREATE TABLE public.animals (id int, name text);
CREATE TABLE public.cats (lives int) INHERITS (public.animals);
INSERT INTO public.animals SELECT g, 'a' FROM generate_series(1, 7) g;
INSERT INTO public.cats SELECT g, 'c', 9 FROM generate_series(1, 5) g;
"""


@pytest.fixture
def pg_source(postgres_server: None) -> Iterator[dict[str, str]]:
    owner = unique("rt_owner")
    names = {"app": unique("rt_fid"), "app-clone": unique("rt_fid_clone"), "owner": owner}
    psql("postgres", f'CREATE ROLE "{owner}" NOLOGIN;')
    psql(
        "postgres",
        f"CREATE DATABASE \"{names['app']}\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
        f' OWNER "{owner}";',
    )
    psql(
        "postgres",
        f"COMMENT ON DATABASE \"{names['app']}\" IS 'the shop''s orders: ü';"
        f' ALTER DATABASE "{names["app"]}" SET search_path = app, "My Schema", public;'
        f" ALTER DATABASE \"{names['app']}\" SET work_mem = '8MB';",
    )
    psql(names["app"], APP_SCHEMA)  # unqualified names go to schema app: the database's search_path
    yield names
    for key in ("app", "app-clone"):
        psql("postgres", f'DROP DATABASE IF EXISTS "{names[key]}" WITH (FORCE);', check=False)
    psql("postgres", f'DROP ROLE IF EXISTS "{owner}";', check=False)


@pytest.fixture
def pg_world(agent_world: AgentWorld, pg_source: dict[str, str]) -> AgentWorld:
    agent_world.targets = {
        target: {
            "engine": "postgresql",
            "host": PG["host"],
            "port": PG["port"],
            "user": PG["user"],
            "database": pg_source[target],
            "restore_jobs": 2,
        }
        for target in ("app", "app-clone")
    }
    return agent_world


@pytest.mark.postgres
def test_a_postgres_clone_has_the_source_database_encoding_locale_settings_comment_and_owner(
    pg_world: AgentWorld, pg_source: dict[str, str]
) -> None:
    backup = pg_world.backup("app")

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert outcome.ok, outcome.event
    source, clone = pg_source["app"], pg_source["app-clone"]
    assert psql(clone, PROPERTIES) == psql(source, PROPERTIES)
    assert "LATIN1|c|C|C||the shop's orders: ü|" in psql(clone, PROPERTIES)
    # the application's query relies on the database's search_path
    assert psql(clone, "SELECT count(*) FROM t;").strip() == "42"
    verification = outcome.event.verification  # type: ignore[union-attr]
    assert verification["database_created"] is True
    assert verification["checks"]["database_properties"].startswith("equal to the source's")
    assert verification["jobs"] == 2  # parallel pg_restore from the verified archive


@pytest.mark.postgres
def test_rows_of_partitioned_and_inherited_tables_are_counted_once_and_checked_against_the_archive(
    pg_world: AgentWorld, pg_source: dict[str, str]
) -> None:
    backup = pg_world.backup("app")
    manifest = pg_world.manifests[backup.run_id]
    assert manifest["validator"]["rows"] == {
        "app.t": 42,
        "public.animals": 7,
        "public.cats": 5,
        "public.measurements_eu": 25,
        "public.measurements_us": 75,
    }

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert outcome.ok, outcome.event
    verification = outcome.event.verification  # type: ignore[union-attr]
    assert verification["total_rows"] == 42 + 100 + 12  # not 254: no parent counts its children
    assert "public.measurements" not in verification["rows"]
    assert verification["rows"]["public.animals"] == 7
    assert verification["rows_differ"] == []
    assert verification["checks"]["rows"] == "154 rows in 5 tables, as in the backup"


@pytest.mark.postgres
def test_a_clone_whose_rows_differ_from_the_manifest_fails_verification(
    pg_world: AgentWorld, pg_source: dict[str, str]
) -> None:
    backup = pg_world.backup("app")
    pg_world.manifests[backup.run_id]["validator"]["rows"]["app.t"] = 43  # what the backup run recorded

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert isinstance(outcome.event, RestoreFailed)
    assert outcome.event.stage == "verify-restore"
    assert "app.t: 42 rows restored, the manifest recorded 43" in outcome.event.error


@pytest.mark.postgres
def test_an_icu_database_is_cloned_with_its_provider_and_locale(agent_world: AgentWorld, postgres_server: None) -> None:
    source, clone = unique("rt_icu"), unique("rt_icu_clone")
    psql(
        "postgres",
        f"CREATE DATABASE \"{source}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8';",
    )
    try:
        psql(source, "CREATE TABLE w (w text); INSERT INTO w VALUES ('a'), ('B'), ('ä');")
        agent_world.targets = {
            name: {"engine": "postgresql", "host": PG["host"], "port": PG["port"], "user": PG["user"], "database": db}
            for name, db in (("icu", source), ("icu-clone", clone))
        }
        outcome = agent_world.restore(
            agent_world.restore_job(agent_world.backup("icu"), destination="icu-clone", mode="clone")
        )
        assert outcome.ok, outcome.event
        assert psql(clone, PROPERTIES) == psql(source, PROPERTIES)
        assert "|i|" in psql(clone, PROPERTIES)
        order = "SELECT string_agg(w, ',' ORDER BY w) FROM w;"
        assert psql(clone, order) == psql(source, order) == "a,ä,B\n"
    finally:
        for db in (source, clone):
            psql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE);', check=False)


@pytest.mark.postgres
def test_an_existing_empty_clone_destination_keeps_its_own_properties_and_says_so(
    pg_world: AgentWorld, pg_source: dict[str, str]
) -> None:
    psql("postgres", f'CREATE DATABASE "{pg_source["app-clone"]}" TEMPLATE template0;')  # UTF8, no settings

    outcome = pg_world.restore(pg_world.restore_job(pg_world.backup("app"), destination="app-clone", mode="clone"))

    assert isinstance(outcome.event, RestoreSucceeded), outcome.event
    verification = outcome.event.verification
    assert verification["database_created"] is False
    assert verification["checks"]["database_properties"].startswith("kept the existing destination's")
    assert "encoding 'UTF8' (the source had 'LATIN1')" in verification["checks"]["database_properties"]


@pytest.mark.postgres
def test_a_tampered_object_is_refused_before_a_clone_database_is_even_created(
    pg_world: AgentWorld, pg_source: dict[str, str]
) -> None:
    backup = pg_world.backup("app")
    stored = bytearray(pg_world.s3.get_object(Bucket=backup.bucket, Key=backup.key)["Body"].read())
    stored[len(stored) // 2] ^= 0xFF  # same size, one byte flipped: decompressed on the way, refused at the end
    pg_world.s3.put_object(Bucket=backup.bucket, Key=backup.key, Body=bytes(stored))

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app-clone", mode="clone", use_version=False))

    assert isinstance(outcome.event, RestoreFailed)
    assert (outcome.event.stage, outcome.event.destination_touched) == ("verify-object", False)
    assert "SHA-256" in outcome.event.error
    exists = f"SELECT count(*) FROM pg_database WHERE datname = '{pg_source['app-clone']}';"
    assert psql("postgres", exists).strip() == "0"


@pytest.mark.postgres
def test_a_clone_whose_locale_this_server_lacks_fails_untouched_naming_the_fix(
    pg_world: AgentWorld, pg_source: dict[str, str]
) -> None:
    backup = pg_world.backup("app")
    properties = pg_world.manifests[backup.run_id]["database_properties"]
    properties.update(collate="xx_XX.UTF-8", ctype="xx_XX.UTF-8")  # as recorded on a server that has it

    outcome = pg_world.restore(pg_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert isinstance(outcome.event, RestoreFailed)
    assert (outcome.event.stage, outcome.event.destination_touched) == ("restore", False)
    assert "like the source" in outcome.event.error
    assert "Fix: make that locale available on this server" in outcome.event.error
    exists = f"SELECT count(*) FROM pg_database WHERE datname = '{pg_source['app-clone']}';"
    assert psql("postgres", exists).strip() == "0"


# --------------------------------------------------------------------------- MariaDB

ROUTINES = """
CREATE TABLE words (w VARCHAR(40));
INSERT INTO words VALUES ('straße'), ('strasse');
CREATE FUNCTION same_name(a VARCHAR(40), b VARCHAR(40)) RETURNS INT DETERMINISTIC RETURN a = b;
"""


@pytest.fixture
def maria_source(mariadb_server: None) -> Iterator[dict[str, str]]:
    names = {"shop": unique("rt_fid"), "shop-clone": unique("rt_fid_clone")}
    mariadb(
        f"CREATE DATABASE `{names['shop']}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        " COMMENT 'the shop''s orders';"
    )
    mariadb(ROUTINES, names["shop"])
    yield names
    for name in names.values():
        mariadb(f"DROP DATABASE IF EXISTS `{name}`;", check=False)


@pytest.mark.mariadb
def test_a_mariadb_clone_has_the_source_collation_and_its_routines_compare_alike(
    agent_world: AgentWorld, maria_source: dict[str, str]
) -> None:
    agent_world.targets = {
        target: {"engine": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "database": db}
        for target, db in maria_source.items()
    }
    backup = agent_world.backup("shop")

    outcome = agent_world.restore(agent_world.restore_job(backup, destination="shop-clone", mode="clone"))

    assert outcome.ok, outcome.event
    schema = (
        "SELECT default_character_set_name, default_collation_name, schema_comment"
        " FROM information_schema.schemata WHERE schema_name = '{}';"
    )
    source, clone = maria_source["shop"], maria_source["shop-clone"]
    assert mariadb(schema.format(clone)) == mariadb(schema.format(source))
    assert mariadb(schema.format(clone)).split("\t")[1] == "utf8mb4_unicode_ci"
    call = "SELECT same_name('strasse', 'straße');"
    assert mariadb(call, clone) == mariadb(call, source) == "1\n"
    routine = "SELECT DATABASE_COLLATION FROM information_schema.routines WHERE routine_schema = '{}';"
    assert mariadb(routine.format(clone)) == mariadb(routine.format(source))
    verification = outcome.event.verification  # type: ignore[union-attr]
    assert verification["checks"]["database_properties"].startswith("equal to the source's")
