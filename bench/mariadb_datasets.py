"""Realistic MariaDB benchmark databases, generated server-side, resumable and idempotent.

The MariaDB twin of ``bench.datasets``: the same small shop (customers, orders, an event log and
attached documents) with word-like text drawn from a 300,000-phrase pool of pseudo-words with
Zipf-like frequencies, decimals, timestamps, JSON, ``INET4``, ``UUID`` and blobs (part random like
images/PDFs, part rendered text/CSV/JSON), plus the same three secondary indexes. Rows come from
MariaDB's Sequence engine (``seq_1_to_N``); every pseudo-random choice is a hash of the row id
(``MD5``), so the text and numbers are the same on every machine (the random blob bytes are not).

Generation runs in chunks (the row counts of ``bench.datasets``), each chunk one transaction that
also records itself in ``bench_progress``: an interrupted run loses at most one chunk and a re-run
resumes. A database is complete for a size once ``bench_meta`` says so; asking again is a no-op. A
larger database copies the chunks of a complete smaller one (``INSERT ... SELECT`` by id range, one
transaction per chunk) before generating further, different chunks. Size = the InnoDB files'
allocated bytes (``information_schema.INNODB_SYS_TABLESPACES``).

    python -m bench.mariadb_datasets --sizes 1        # create/grow mbench_1g
    python -m bench.mariadb_datasets --status --sizes 1,4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench import datasets as pg

GIB = 1024**3
HOST = os.environ.get("BENCH_MYHOST", "127.0.0.1")
PORT = os.environ.get("BENCH_MYPORT", "3306")
USER = os.environ.get("BENCH_MYUSER", "root")
TABLES = pg.TABLES
CHUNK_ROWS = {
    "customers": pg.CUSTOMERS_PER_CHUNK,
    "orders": pg.ORDERS_PER_CHUNK,
    "events": pg.EVENTS_PER_CHUNK,
    "documents": pg.DOCUMENTS_PER_CHUNK,
}
WORDS, PHRASES = pg.WORDS, pg.PHRASES


def database_name(size_gb: float) -> str:
    return "m" + pg.database_name(size_gb)


def client_argv(database: str | None = None) -> list[str]:
    """The ``mariadb`` client for the benchmark server (password-less root, as on the dev box)."""
    argv = ["mariadb", f"--host={HOST}", f"--port={PORT}", f"--user={USER}", "--default-character-set=utf8mb4"]
    return [*argv, database] if database else argv


def sql(text: str, *, database: str | None = None) -> str:
    """Run SQL through the client (no driver dependency); tab-separated rows without a header."""
    argv = [*client_argv(database), "--batch", "--skip-column-names", "--raw"]
    proc = subprocess.run(argv, input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"mariadb on {database} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


# --------------------------------------------------------------------------- SQL

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS bench_meta (k VARCHAR(64) PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bench_progress (chunk INT PRIMARY KEY, done_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS words (id INT PRIMARY KEY, w VARCHAR(40) NOT NULL);
CREATE TABLE IF NOT EXISTS phrases (id INT PRIMARY KEY, t VARCHAR(400) NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id BIGINT PRIMARY KEY, full_name VARCHAR(100) NOT NULL, email VARCHAR(200) NOT NULL,
    country CHAR(2) NOT NULL, city VARCHAR(60), created_at DATETIME(6) NOT NULL, last_login_ip INET4,
    lifetime_value DECIMAL(12,2) NOT NULL, is_active BOOLEAN NOT NULL, preferences JSON NOT NULL, tags JSON,
    KEY customers_email_idx (email)
);
CREATE TABLE IF NOT EXISTS orders (
    id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, placed_at DATETIME(6) NOT NULL, status VARCHAR(16) NOT NULL,
    total DECIMAL(12,2) NOT NULL, currency CHAR(3) NOT NULL, shipping JSON NOT NULL, items JSON NOT NULL, note TEXT,
    KEY orders_customer_placed_idx (customer_id, placed_at)
);
CREATE TABLE IF NOT EXISTS events (
    id BIGINT PRIMARY KEY, occurred_at DATETIME(6) NOT NULL, customer_id BIGINT, session_id UUID NOT NULL,
    client_ip INET4 NOT NULL, user_agent VARCHAR(255) NOT NULL, kind VARCHAR(20) NOT NULL, path VARCHAR(255) NOT NULL,
    status_code SMALLINT NOT NULL, duration_ms INT NOT NULL, payload JSON, message TEXT,
    KEY events_occurred_idx (occurred_at)
);
CREATE TABLE IF NOT EXISTS documents (
    id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, filename VARCHAR(255) NOT NULL, mime VARCHAR(40) NOT NULL,
    created_at DATETIME(6) NOT NULL, sha1 CHAR(40) NOT NULL, body MEDIUMBLOB NOT NULL
);
"""


def _u(salt: str, key: str = "s.seq") -> str:
    """A uniform double in [0, 1): 52 bits of the MD5 of the row id and ``salt`` (deterministic in any
    row order; CRC32 is faster but too linear: consecutive ids would pick correlated words)."""
    return f"(CONV(LEFT(MD5(CONCAT({key}, '/{salt}')), 13), 16, 10) / 4503599627370496e0)"


def _pick(items: list[str], u: str, power: float = 1.0) -> str:
    """One of ``items``, chosen by the uniform ``u`` (skewed towards the first items when power > 1)."""
    draw = u if power == 1.0 else f"POW({u}, {power})"
    quoted = ",".join("'" + item.replace("'", "''") + "'" for item in items)
    return f"ELT(1 + FLOOR({len(items)} * {draw}), {quoted})"


def _word(salt: str, power: float = 1.0, key: str = "s.seq") -> str:
    return f"1 + FLOOR({WORDS - 1} * POW({_u(salt, key)}, {power}))"


def _phrase(salt: str) -> str:
    """A phrase id with a mild skew (some phrases recur, like templates in real text)."""
    return f"1 + FLOOR({PHRASES - 1} * POW({_u(salt)}, 1.15))"


def _cap(expr: str) -> str:
    return f"CONCAT(UPPER(LEFT({expr}, 1)), SUBSTRING({expr}, 2))"


def _ip(salt: str, key: str = "s.seq") -> str:
    octets = ", '.', ".join(f"FLOOR(256 * {_u(salt + str(i), key)})" for i in range(3))
    return f"CONCAT(1 + FLOOR(223 * {_u(salt, key)}), '.', {octets})"


def _uuid(expr: str) -> str:
    """A version-4 UUID (RFC variant, which MariaDB's UUID type insists on) from the MD5 of ``expr``."""
    m = f"MD5({expr})"
    variant = f"SUBSTR('89ab', 1 + CONV(SUBSTR({m}, 17, 1), 16, 10) % 4, 1)"
    return (
        f"CONCAT(LEFT({m}, 8), '-', SUBSTR({m}, 9, 4), '-4', SUBSTR({m}, 14, 3), '-', {variant},"
        f" SUBSTR({m}, 18, 3), '-', SUBSTR({m}, 21, 12))"
    )


def vocab_sql() -> str:
    syllables = pg.SYLLABLES
    suffixes = [s or "" for s in pg.SUFFIXES]
    phrase_words = ", ".join(
        f"IF(2 + (s.seq * 7919) % 6 >= {i}, w{i}.w, NULL)" if i > 2 else f"w{i}.w" for i in range(1, 8)
    )
    joins = " ".join(f"JOIN words w{i} ON w{i}.id = {_word(f'p{i}', 2.2)}" for i in range(1, 8))
    return f"""
INSERT IGNORE INTO words (id, w)
SELECT s.seq, CONCAT({_pick(syllables, _u("a"))}, {_pick(syllables, _u("b"))},
                     IF(s.seq % 3 = 0, {_pick(syllables, _u("c"))}, ''), {_pick(suffixes, _u("d"))})
FROM seq_1_to_{WORDS} s;
INSERT IGNORE INTO phrases (id, t)
SELECT s.seq, CONCAT_WS(' ', {phrase_words}) FROM seq_1_to_{PHRASES} s {joins};
"""


def _ids(chunk: int, table: str) -> tuple[int, int]:
    n = CHUNK_ROWS[table]
    return chunk * n + 1, (chunk + 1) * n


def chunk_sql(chunk: int) -> str:
    """One chunk: rows of every table with ids in the chunk's range, plus its progress row."""
    c_lo, c_hi = _ids(chunk, "customers")
    o_lo, o_hi = _ids(chunk, "orders")
    e_lo, e_hi = _ids(chunk, "events")
    d_lo, d_hi = _ids(chunk, "documents")
    countries = _pick(pg.COUNTRIES, _u("cty"), 1.6)
    mimes = ["application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv", "application/json"]
    statuses = [200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502]
    status_code = f"ELT(1 + FLOOR(17 * {_u('sc')}), {','.join(map(str, statuses))})"
    items = (
        "(SELECT JSON_ARRAYAGG(JSON_OBJECT("
        "'sku', CONCAT('SKU-', LPAD((s.seq * 31 + i.seq * 7919) % 250000, 6, '0')),"
        f" 'qty', 1 + FLOOR(POW({_u('q', 'CONCAT(s.seq, i.seq)')}, 3) * 5),"
        f" 'unit_price', CAST(2 + {_u('up', 'CONCAT(s.seq, i.seq)')} * 300 AS DECIMAL(10,2)),"
        f" 'title', CONCAT({_cap('w3.w')}, ' ', w1.w))) FROM seq_1_to_4 i WHERE i.seq <= 1 + s.seq % 4)"
    )
    text_lines = (
        "(SELECT GROUP_CONCAT(CASE s.mime"
        " WHEN 'text/csv' THEN CONCAT(i.seq, ',', p.t, ',', CAST(1000 * "
        + _u("csv", "CONCAT(s.seq, i.seq)")
        + " AS DECIMAL(10,2)))"
        " WHEN 'application/json' THEN CONCAT('{\"line\":', i.seq, ',\"text\":\"', p.t, '\"}')"
        " ELSE CONCAT(p.t, '.') END ORDER BY i.seq SEPARATOR '\\n')"
        f" FROM seq_1_to_59 i JOIN phrases p ON p.id = 1 + (s.seq * 104729 + i.seq * 7919) % {PHRASES}"
        " WHERE i.seq <= 20 + s.seq % 40)"
    )
    return f"""
START TRANSACTION;
INSERT INTO customers
SELECT s.seq, CONCAT({_cap("w1.w")}, ' ', {_cap("w2.w")}),
       CONCAT(w1.w, IF(s.seq % 3 = 0, '.', '_'), w2.w, s.seq % 997, '@', {_pick(pg.DOMAINS, _u("dom"))}),
       {countries}, {_cap("w3.w")},
       TIMESTAMP'2017-01-01 00:00:00' + INTERVAL s.seq * 97 SECOND + INTERVAL FLOOR(3600 * {_u("t")}) SECOND,
       {_ip("ip")}, CAST(POW({_u("ltv")}, 3) * 25000 AS DECIMAL(12,2)), {_u("act")} < 0.82,
       JSON_OBJECT('lang', {_pick(pg.LANGS, _u("lang"))}, 'timezone', {_pick(pg.TZS, _u("tz"))},
                   'newsletter', {_u("nl")} < 0.4, 'theme', IF({_u("th")} < 0.3, 'dark', 'light'),
                   'notifications', JSON_OBJECT('email', {_u("ne")} < 0.7, 'sms', {_u("ns")} < 0.2,
                                                'push', {_u("np")} < 0.5),
                   'marketing_source', w4.w, 'bio', p1.t),
       IF({_u("tags")} < 0.6, JSON_ARRAY(w3.w, w4.w), JSON_ARRAY(w4.w))
FROM seq_{c_lo}_to_{c_hi} s
JOIN words w1 ON w1.id = {_word("w1")} JOIN words w2 ON w2.id = {_word("w2")}
JOIN words w3 ON w3.id = {_word("w3", 2)} JOIN words w4 ON w4.id = {_word("w4", 3)}
JOIN phrases p1 ON p1.id = {_phrase("p1")};

INSERT INTO orders
SELECT s.seq, 1 + FLOOR({c_hi} * {_u("cust")}),
       TIMESTAMP'2019-01-01 00:00:00' + INTERVAL s.seq * 29 SECOND + INTERVAL FLOOR(1200 * {_u("t")}) SECOND,
       {_pick(pg.STATUSES, _u("st"))}, CAST(5 + POW({_u("tot")}, 2) * 900 AS DECIMAL(12,2)),
       {_pick(pg.CURRENCIES, _u("cur"))},
       JSON_OBJECT('name', CONCAT({_cap("w1.w")}, ' ', {_cap("w2.w")}),
                   'street', CONCAT(1 + FLOOR(400 * {_u("no")}), ' ', {_cap("p1.t")}),
                   'city', CONCAT({_cap("w2.w")}, IF({_u("cs")} < 0.5, 'burg', 'ton')),
                   'zip', LPAD(FLOOR(99999 * {_u("zip")}), 5, '0'), 'country', {countries},
                   'carrier', {_pick(["ups", "dhl", "fedex", "usps", "postnl"], _u("car"))},
                   'tracking', UPPER(LEFT(MD5(s.seq), 18))),
       {items},
       IF({_u("note")} < 0.35, CONCAT(p2.t, '. ', p1.t), NULL)
FROM seq_{o_lo}_to_{o_hi} s
JOIN words w1 ON w1.id = {_word("w1")} JOIN words w2 ON w2.id = {_word("w2")}
JOIN words w3 ON w3.id = {_word("w3", 2)}
JOIN phrases p1 ON p1.id = {_phrase("p1")} JOIN phrases p2 ON p2.id = {_phrase("p2")};

INSERT INTO events
SELECT s.seq,
       TIMESTAMP'2023-01-01 00:00:00' + INTERVAL s.seq * 530000 MICROSECOND
           + INTERVAL FLOOR(2000000 * {_u("t")}) MICROSECOND,
       IF({_u("anon")} < 0.85, 1 + FLOOR({c_hi} * {_u("cust")}), NULL),
       {_uuid("CONCAT('session', s.seq DIV 23)")}, {_ip("ip", "s.seq DIV 23")},
       {_pick(pg.UAS, _u("ua"), 1.5)}, {_pick(pg.KINDS, _u("kind"))},
       CONCAT('/api/v2/', {_pick(pg.RESOURCES, _u("res"))}, '/', FLOOR(500000 * {_u("rid")}),
              IF({_u("q")} < 0.3, CONCAT('?q=', w1.w), '')),
       {status_code}, FLOOR(EXP(8.5 * {_u("dur")})),
       IF({_u("pl")} < 0.8, JSON_OBJECT(
           'request_id', MD5(CONCAT(s.seq, 'r')), 'bytes', FLOOR(EXP(12 * {_u("by")})),
           'referrer', IF({_u("ref")} < 0.5, CONCAT('https://', w1.w, '.example.com/', w2.w), NULL),
           'region', {_pick(["us-east-1", "eu-west-1", "eu-central-1", "ap-northeast-1"], _u("reg"))},
           'cache', {_u("cache")} < 0.6, 'latency_us', FLOOR(1000000 * {_u("lat")})), NULL),
       IF({_u("msg")} < 0.7, CONCAT(p1.t, IF({_u("msg2")} < 0.5, CONCAT(' ', p2.t), '')), NULL)
FROM seq_{e_lo}_to_{e_hi} s
JOIN words w1 ON w1.id = {_word("w1", 1.5)} JOIN words w2 ON w2.id = {_word("w2")}
JOIN phrases p1 ON p1.id = {_phrase("p1")} JOIN phrases p2 ON p2.id = {_phrase("p2")};

INSERT INTO documents
SELECT s.seq, 1 + FLOOR({o_hi} * {_u("ord")}),
       CONCAT(w1.w, '-', s.seq, '.', SUBSTRING_INDEX(s.mime, '/', -1)), s.mime,
       TIMESTAMP'2019-01-01 00:00:00' + INTERVAL s.seq * 6 MINUTE, SHA1(CONCAT(s.seq, 'doc')),
       CASE WHEN s.mime IN ('application/pdf', 'image/png', 'image/jpeg')
            -- already-compressed media: random bytes after a small structured header
            THEN CONCAT(CAST(CONCAT(s.mime, ' v1.', s.seq % 7, '\\n') AS BINARY),
                        RANDOM_BYTES(1024), RANDOM_BYTES(1024),
                        IF({_u("big")} < 0.5, CONCAT(RANDOM_BYTES(1024), RANDOM_BYTES(512)), ''))
            -- structured attachments: text / csv / json rendered from the data
            ELSE {text_lines} END
FROM (SELECT seq, {_pick(mimes, _u("mime", "seq"))} AS mime FROM seq_{d_lo}_to_{d_hi}) s
JOIN words w1 ON w1.id = {_word("w1")};

INSERT INTO bench_progress (chunk) VALUES ({chunk});
COMMIT;
"""


def copy_chunk_sql(chunk: int, template: str) -> str:
    """Copy one complete chunk's rows from ``template`` (a smaller complete database), in one transaction."""
    copies = "".join(
        f"INSERT INTO {table} SELECT * FROM `{template}`.{table} WHERE id BETWEEN {lo} AND {hi};\n"
        for table in TABLES
        for lo, hi in [_ids(chunk, table)]
    )
    return f"START TRANSACTION;\n{copies}INSERT INTO bench_progress (chunk) VALUES ({chunk});\nCOMMIT;\n"


# --------------------------------------------------------------------------- orchestration


def exists(database: str) -> bool:
    return sql(f"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{database}'") == "1"


def size_bytes(database: str) -> int:
    """Bytes the database's InnoDB files hold on disk (allocated)."""
    return int(
        sql(
            "SELECT COALESCE(SUM(ALLOCATED_SIZE), 0) FROM information_schema.INNODB_SYS_TABLESPACES"
            f" WHERE NAME LIKE '{database}/%'"
        )
    )


def rows(database: str) -> dict[str, int]:
    out = sql(" UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM `{database}`.{t}" for t in TABLES))
    return {line.split("\t")[0]: int(line.split("\t")[1]) for line in out.splitlines()}


def chunks_done(database: str) -> set[int]:
    return {int(x) for x in sql("SELECT chunk FROM bench_progress", database=database).split()}


def complete_for(database: str) -> float:
    if not exists(database):
        return 0.0
    try:
        return float(sql("SELECT v FROM bench_meta WHERE k = 'complete_gb'", database=database) or "0")
    except RuntimeError:
        return 0.0


def describe(database: str) -> str:
    counts = ", ".join(f"{t} {n:,}" for t, n in rows(database).items())
    return (
        f"{database}: {size_bytes(database) / GIB:.2f} GiB on disk (InnoDB files), "
        f"{len(chunks_done(database))} chunks; rows: {counts}"
    )


def ensure(size_gb: float, *, template: str | None = None, log: bool = True) -> str:
    """Make ``mbench_<size>g`` at least ``size_gb`` GiB on disk; resumes, and is a no-op when done."""
    database = database_name(size_gb)
    if complete_for(database) >= size_gb:
        return database
    sql(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
    sql(SCHEMA_SQL, database=database)
    if sql("SELECT COUNT(*) FROM phrases", database=database) != str(PHRASES):
        if log:
            print(f"[mariadb_datasets] {database}: building the word and phrase pool", flush=True)
        sql(vocab_sql(), database=database)
    done = chunks_done(database)
    copyable = chunks_done(template) if template and complete_for(template) > 0 else set()
    started = time.monotonic()
    chunk = 0
    while (current := size_bytes(database)) < size_gb * GIB:
        while chunk in done:
            chunk += 1
        t0 = time.monotonic()
        how = "copied" if chunk in copyable else "generated"
        sql(copy_chunk_sql(chunk, template) if template and chunk in copyable else chunk_sql(chunk), database=database)
        done.add(chunk)
        if log:
            print(
                f"[mariadb_datasets] {database}: chunk {chunk} {how} in {time.monotonic() - t0:.1f}s, "
                f"{current / GIB:.2f} -> {size_bytes(database) / GIB:.2f} GiB of {size_gb:g}",
                flush=True,
            )
    sql(f"ANALYZE TABLE {', '.join(TABLES)}", database=database)
    sql(f"REPLACE INTO bench_meta VALUES ('complete_gb', '{size_gb:g}')", database=database)
    if log:
        print(f"[mariadb_datasets] {database}: complete in {time.monotonic() - started:.0f}s", flush=True)
    return database


def ensure_all(sizes: list[float], *, log: bool = True) -> list[str]:
    """Create the databases smallest first; each larger one starts from the previous one's chunks."""
    names = []
    previous: str | None = None
    for size in sorted(sizes):
        names.append(ensure(size, template=previous, log=log))
        previous = database_name(size)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mariadb_datasets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=pg.parse_sizes, default=[1.0], help="GiB on disk, e.g. 1 or 1,4 (default 1)")
    parser.add_argument("--status", action="store_true", help="only show what exists")
    args = parser.parse_args(argv)
    if args.status:
        for size in args.sizes:
            name = database_name(size)
            print(describe(name) if exists(name) else f"{name}: missing")
        return 0
    for name in ensure_all(args.sizes):
        print(describe(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
