"""Realistic PostgreSQL benchmark databases, generated server-side, resumable and idempotent.

Not pgbench: its ``filler`` column is blanks and compresses ~35:1, which hides every cost a
backup pipeline has. This schema looks like a small SaaS shop's database: customers, orders,
an event log and attached documents, with word-like text drawn from a large phrase pool,
numerics, timestamps, jsonb, inet, uuid, arrays and bytea (part random like images/PDFs,
part structured like text attachments), plus a few secondary indexes. A ``pg_dump -Fc -Z0``
of it compresses ~3-4:1 with zstd level 1, like real application data.

Generation runs in chunks, each chunk one transaction that also records itself in
``bench_progress``: an interrupted run loses at most one chunk and a re-run resumes. A
database is "complete" for a size once ``bench_meta`` says so; asking again is a no-op. A
larger database is grown from a complete smaller one (``CREATE DATABASE ... TEMPLATE``, a
file copy) by appending further, different chunks, so the 4 GB database costs 3 GB of work.

    python -m bench.datasets --sizes 1,4          # create/grow bench_1g and bench_4g
    python -m bench.datasets --status             # what exists
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

GIB = 1024**3
PG_HOST = os.environ.get("BENCH_PGHOST", "127.0.0.1")
PG_PORT = os.environ.get("BENCH_PGPORT", "5432")
PG_USER = os.environ.get("BENCH_PGUSER", "postgres")

# Rows per chunk (one transaction each). ~55 MB of table data per chunk.
CUSTOMERS_PER_CHUNK = 12_000
ORDERS_PER_CHUNK = 40_000
EVENTS_PER_CHUNK = 120_000
DOCUMENTS_PER_CHUNK = 3_000
PHRASES = 300_000  # distinct phrases (2-7 pseudo-words) that text columns are assembled from
WORDS = 9_000  # distinct pseudo-words

TABLES = ("customers", "orders", "events", "documents")


def database_name(size_gb: float) -> str:
    text = f"{size_gb:g}".replace(".", "_")
    return f"bench_{text}g"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    return env


def psql(sql: str, *, database: str = "postgres", single_transaction: bool = False) -> str:
    """Run SQL through psql (no driver dependency); returns unaligned, tuples-only output."""
    cmd = ["psql", "-X", "-q", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", database]
    cmd += ["-v", "ON_ERROR_STOP=1", "-At"]
    if single_transaction:
        cmd.append("-1")
    proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=_env(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"psql on {database} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


# --------------------------------------------------------------------------- SQL

SYLLABLES = [
    *("ba", "re", "lo", "mi", "ta", "ken", "sor", "ul", "den", "pa", "ri", "ve", "co", "na", "tis", "ar", "el"),
    *("mon", "gra", "sti", "qu", "ex", "an", "io", "per", "for", "tra", "ly", "ing", "ment", "ion", "ed", "er"),
    *("al", "ic", "ous", "vin", "dal"),
]
SUFFIXES = ["", "s", "ed", "ing", "er", "ly", "tion", "al", "ness", "", "", ""]

SCHEMA_SQL = """
create extension if not exists pgcrypto;
create table if not exists bench_meta (key text primary key, value text not null);
create table if not exists bench_progress (chunk int primary key, done_at timestamptz not null default now());

create table if not exists words (id int primary key, w text not null);
create table if not exists phrases (id int primary key, t text not null);

create table if not exists customers (
    id bigint primary key,
    full_name text not null,
    email text not null,
    country char(2) not null,
    city text,
    created_at timestamptz not null,
    last_login_ip inet,
    lifetime_value numeric(12,2) not null,
    is_active boolean not null,
    preferences jsonb not null,
    tags text[]
);
create table if not exists orders (
    id bigint primary key,
    customer_id bigint not null,
    placed_at timestamptz not null,
    status text not null,
    total numeric(12,2) not null,
    currency char(3) not null,
    shipping jsonb not null,
    items jsonb not null,
    note text
);
create table if not exists events (
    id bigint primary key,
    occurred_at timestamptz not null,
    customer_id bigint,
    session_id uuid not null,
    client_ip inet not null,
    user_agent text not null,
    kind text not null,
    path text not null,
    status_code smallint not null,
    duration_ms integer not null,
    payload jsonb,
    message text
);
create table if not exists documents (
    id bigint primary key,
    order_id bigint not null,
    filename text not null,
    mime text not null,
    created_at timestamptz not null,
    sha1 text not null,
    body bytea not null
);
create index if not exists customers_email_idx on customers (lower(email));
create index if not exists orders_customer_placed_idx on orders (customer_id, placed_at);
create index if not exists events_occurred_idx on events (occurred_at);
"""


def _vocab_sql() -> str:
    syl = "array[" + ",".join(f"'{s}'" for s in SYLLABLES) + "]"
    suf = "array[" + ",".join(f"'{s}'" for s in SUFFIXES) + "]"
    n = len(SYLLABLES)
    return f"""
select setseed(0.4242);
insert into words (id, w)
select i, (s)[1 + floor(random()*{n})::int] || (s)[1 + floor(random()*{n})::int]
          || case when i % 3 = 0 then (s)[1 + floor(random()*{n})::int] else '' end
          || (x)[1 + floor(random()*{len(SUFFIXES)})::int]
from generate_series(1, {WORDS}) i, (select {syl} as s, {suf} as x) a
on conflict (id) do nothing;

-- phrases: 2..7 words, Zipf-like word frequencies (common words are common)
insert into phrases (id, t)
select p.id, string_agg(w.w, ' ' order by p.pos)
from (
    select id, pos, 1 + floor({WORDS - 1} * power(random(), 2.2))::int as wid
    from generate_series(1, {PHRASES}) id, generate_series(1, 2 + (id::bigint * 7919) % 6) pos
) p join words w on w.id = p.wid
group by p.id
on conflict (id) do nothing;
analyze words; analyze phrases;
"""


def _pick(alias: str) -> str:
    """A phrase id with a mild skew (some phrases recur, like templates in real text)."""
    return f"1 + floor({PHRASES - 1} * power(random(), 1.15))::int as {alias}"


def _array(items: list[str]) -> str:
    return "array[" + ",".join(f"'{i}'" for i in items) + "]"


COUNTRIES = [
    "US",
    "US",
    "US",
    "DE",
    "DE",
    "GB",
    "FR",
    "FR",
    "NL",
    "SE",
    "ES",
    "IT",
    "PL",
    "CA",
    "CA",
    "BR",
    "IN",
    "JP",
    "AU",
    "IE",
    "AT",
    "CH",
    "BE",
    "DK",
    "NO",
    "FI",
    "PT",
    "CZ",
    "MX",
    "ZA",
]
DOMAINS = [
    "gmail.com",
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "proton.me",
    "icloud.com",
    "gmx.de",
    "web.de",
    "example.org",
    "fastmail.com",
    "hey.com",
    "company.io",
]
LANGS = ["en", "en", "en", "de", "fr", "es", "nl", "sv", "it", "pl", "pt", "ja"]
TZS = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Europe/Paris",
    "Australia/Sydney",
]
STATUSES = [
    "delivered",
    "delivered",
    "delivered",
    "delivered",
    "shipped",
    "shipped",
    "paid",
    "pending",
    "cancelled",
    "refunded",
]
CURRENCIES = ["USD", "USD", "USD", "EUR", "EUR", "GBP", "SEK", "CAD"]
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",  # noqa: E501
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",  # noqa: E501
    "okhttp/4.12.0",
    "python-requests/2.31.0",
    "curl/8.4.0",
    "Go-http-client/2.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
]
KINDS = [
    "page_view",
    "page_view",
    "page_view",
    "api_call",
    "api_call",
    "search",
    "add_to_cart",
    "checkout",
    "login",
    "logout",
    "error",
]
RESOURCES = [
    "products",
    "orders",
    "cart",
    "users",
    "search",
    "reviews",
    "categories",
    "invoices",
    "sessions",
    "wishlist",
]
MIMES = ["application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv", "application/json"]


def chunk_sql(chunk: int) -> str:
    """One chunk: rows of every table with ids in the chunk's range, plus its progress row."""
    c_lo, c_hi = chunk * CUSTOMERS_PER_CHUNK + 1, (chunk + 1) * CUSTOMERS_PER_CHUNK
    o_lo, o_hi = chunk * ORDERS_PER_CHUNK + 1, (chunk + 1) * ORDERS_PER_CHUNK
    e_lo, e_hi = chunk * EVENTS_PER_CHUNK + 1, (chunk + 1) * EVENTS_PER_CHUNK
    d_lo, d_hi = chunk * DOCUMENTS_PER_CHUNK + 1, (chunk + 1) * DOCUMENTS_PER_CHUNK
    seed = ((chunk * 7919) % 20000) / 10000.0 - 1.0
    countries = _array(COUNTRIES)
    domains = _array(DOMAINS)
    langs = _array(LANGS)
    tzs = _array(TZS)
    statuses = _array(STATUSES)
    currencies = _array(CURRENCIES)
    uas = _array(UAS)
    kinds = _array(KINDS)
    resources = _array(RESOURCES)
    mimes = _array(MIMES)
    return f"""
select setseed({seed});

insert into customers
select s.g,
       initcap(w1.w) || ' ' || initcap(w2.w),
       lower(w1.w) || case when s.g % 3 = 0 then '.' else '_' end || lower(w2.w) || (s.g % 997)::text
           || '@' || ({domains})[1 + s.g % 12],
       ({countries})[1 + floor(30 * power(random(), 1.6))::int],
       initcap(w3.w),
       timestamptz '2017-01-01 00:00:00+00' + s.g * interval '97 seconds' + random() * interval '1 hour',
       '1.0.0.0'::inet + floor(random() * 3700000000)::bigint,
       round((power(random(), 3) * 25000)::numeric, 2),
       random() < 0.82,
       jsonb_build_object(
           'lang', ({langs})[1 + floor(random() * 12)::int],
           'timezone', ({tzs})[1 + floor(random() * 9)::int],
           'newsletter', random() < 0.4,
           'theme', case when random() < 0.3 then 'dark' else 'light' end,
           'notifications', jsonb_build_object('email', random() < 0.7, 'sms', random() < 0.2, 'push', random() < 0.5),
           'marketing_source', w4.w,
           'bio', p1.t),
       case when random() < 0.6 then array[w3.w, w4.w] else array[w4.w] end
from (select g,
             1 + floor({WORDS - 1} * random())::int as a, 1 + floor({WORDS - 1} * random())::int as b,
             1 + floor({WORDS - 1} * power(random(), 2))::int as c,
             1 + floor({WORDS - 1} * power(random(), 3))::int as d, {_pick("p")}
      from generate_series({c_lo}::bigint, {c_hi}) g) s
join words w1 on w1.id = s.a join words w2 on w2.id = s.b join words w3 on w3.id = s.c
join words w4 on w4.id = s.d join phrases p1 on p1.id = s.p;

insert into orders
select s.g,
       1 + floor(random() * {c_hi})::bigint,
       timestamptz '2019-01-01 00:00:00+00' + s.g * interval '29 seconds' + random() * interval '20 minutes',
       ({statuses})[1 + floor(random() * 10)::int],
       round((5 + power(random(), 2) * 900)::numeric, 2),
       ({currencies})[1 + floor(random() * 8)::int],
       jsonb_build_object(
           'name', initcap(w1.w) || ' ' || initcap(w2.w),
           'street', (1 + floor(random() * 400))::int || ' ' || initcap(p1.t),
           'city', initcap(w2.w) || case when random() < 0.5 then 'burg' else 'ton' end,
           'zip', lpad(floor(random() * 99999)::int::text, 5, '0'),
           'country', ({countries})[1 + floor(30 * power(random(), 1.6))::int],
           'carrier', (array['ups','dhl','fedex','usps','postnl'])[1 + floor(random() * 5)::int],
           'tracking', upper(substr(md5(s.g::text), 1, 18))),
       (select jsonb_agg(jsonb_build_object(
                  'sku', 'SKU-' || lpad(((s.g * 31 + i * 7919) % 250000)::text, 6, '0'),
                  'qty', 1 + floor(power(random(), 3) * 5)::int,
                  'unit_price', round((2 + random() * 300)::numeric, 2),
                  'title', initcap(w3.w) || ' ' || w1.w))
          from generate_series(1, 1 + (s.g % 4)) i),
       case when random() < 0.35 then p2.t || '. ' || p1.t else null end
from (select g,
             1 + floor({WORDS - 1} * random())::int as a, 1 + floor({WORDS - 1} * random())::int as b,
             1 + floor({WORDS - 1} * power(random(), 2))::int as c, {_pick("p")}, {_pick("q")}
      from generate_series({o_lo}::bigint, {o_hi}) g) s
join words w1 on w1.id = s.a join words w2 on w2.id = s.b join words w3 on w3.id = s.c
join phrases p1 on p1.id = s.p join phrases p2 on p2.id = s.q;

insert into events
select s.g,
       timestamptz '2023-01-01 00:00:00+00' + s.g * interval '530 milliseconds' + random() * interval '2 seconds',
       case when random() < 0.85 then 1 + floor(random() * {c_hi})::bigint end,
       md5('session' || (s.g / 23)::text)::uuid,
       '1.0.0.0'::inet + (((s.g / 23) * 2654435761) % 3700000000)::bigint,
       ({uas})[1 + floor(10 * power(random(), 1.5))::int],
       ({kinds})[1 + floor(random() * 11)::int],
       '/api/v2/' || ({resources})[1 + floor(random() * 10)::int] || '/' || floor(random() * 500000)::int
           || case when random() < 0.3 then '?q=' || replace(w1.w, ' ', '+') else '' end,
       (array[200,200,200,200,200,200,201,204,301,304,400,401,403,404,404,500,502])[1 + floor(random() * 17)::int],
       floor(exp(random() * 8.5))::int,
       case when random() < 0.8 then jsonb_build_object(
           'request_id', md5(s.g::text || 'r'),
           'bytes', floor(exp(random() * 12))::int,
           'referrer', case when random() < 0.5 then 'https://' || w1.w || '.example.com/' || w2.w else null end,
           'region', (array['us-east-1','eu-west-1','eu-central-1','ap-northeast-1'])[1 + floor(random() * 4)::int],
           'cache', random() < 0.6,
           'latency_us', floor(random() * 1000000)::int) end,
       case when random() < 0.7 then p1.t || case when random() < 0.5 then ' ' || p2.t else '' end end
from (select g,
             1 + floor({WORDS - 1} * power(random(), 1.5))::int as a,
             1 + floor({WORDS - 1} * random())::int as b, {_pick("p")}, {_pick("q")}
      from generate_series({e_lo}::bigint, {e_hi}) g) s
join words w1 on w1.id = s.a join words w2 on w2.id = s.b
join phrases p1 on p1.id = s.p join phrases p2 on p2.id = s.q;

insert into documents
select s.g,
       1 + floor(random() * {o_hi})::bigint,
       replace(w1.w, ' ', '-') || '-' || s.g || '.' || split_part(s.mime, '/', 2),
       s.mime,
       timestamptz '2019-01-01 00:00:00+00' + s.g * interval '6 minutes',
       md5(s.g::text || 'doc'),
       case when s.mime in ('application/pdf', 'image/png', 'image/jpeg')
            -- already-compressed media: random bytes after a small structured header
            then convert_to(s.mime || ' v1.' || (s.g % 7) || E'\\n', 'UTF8')
                 || gen_random_bytes(1024) || gen_random_bytes(1024)
                 || case when random() < 0.5 then gen_random_bytes(1024) || gen_random_bytes(512) else ''::bytea end
            -- structured attachments: text / csv / json rendered from the data
            else convert_to((select string_agg(
                     case s.mime when 'text/csv' then i || ',' || p.t || ',' || round((random() * 1000)::numeric, 2)
                                 when 'application/json' then '{{"line":' || i || ',"text":"' || p.t || '"}}'
                                 else p.t || '.' end, E'\\n')
                  from generate_series(1, 20 + (s.g % 40)) i
                  join phrases p on p.id = 1 + ((s.g * 104729 + i * 7919) % {PHRASES})), 'UTF8')
       end
from (select g, ({mimes})[1 + floor(random() * 6)::int] as mime,
             1 + floor({WORDS - 1} * random())::int as a
      from generate_series({d_lo}::bigint, {d_hi}) g) s
join words w1 on w1.id = s.a;

insert into bench_progress (chunk) values ({chunk});
"""


# --------------------------------------------------------------------------- orchestration


@dataclass
class DatasetInfo:
    database: str
    size_bytes: int
    chunks: int
    rows: dict[str, int] = field(default_factory=dict)
    table_bytes: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        rows = ", ".join(f"{t} {n:,}" for t, n in self.rows.items())
        return f"{self.database}: {self.size_bytes / GIB:.2f} GiB on disk, {self.chunks} chunks; rows: {rows}"


def exists(database: str) -> bool:
    return psql(f"select 1 from pg_database where datname = '{database}'") == "1"


def meta(database: str) -> dict[str, str]:
    out = psql("select key || '=' || value from bench_meta", database=database)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def size_bytes(database: str) -> int:
    return int(psql(f"select pg_database_size('{database}')"))


def info(database: str) -> DatasetInfo:
    counts = psql(
        " union all ".join(f"select '{t}', count(*) from {t}" for t in TABLES)
        + "; select 'chunks', count(*) from bench_progress;",
        database=database,
    )
    rows: dict[str, int] = {}
    chunks = 0
    for line in counts.splitlines():
        name, n = line.split("|")
        if name == "chunks":
            chunks = int(n)
        else:
            rows[name] = int(n)
    sizes = psql(
        " union all ".join(f"select '{t}', pg_total_relation_size('{t}')" for t in TABLES),
        database=database,
    )
    table_bytes = {line.split("|")[0]: int(line.split("|")[1]) for line in sizes.splitlines()}
    return DatasetInfo(database, size_bytes(database), chunks, rows, table_bytes)


def _complete_for(database: str) -> float:
    if not exists(database):
        return 0.0
    try:
        return float(meta(database).get("complete_gb", "0"))
    except RuntimeError:
        return 0.0


def ensure(size_gb: float, *, template: str | None = None, log: bool = True) -> DatasetInfo:
    """Make ``bench_<size>g`` at least ``size_gb`` GiB on disk; resumes, and is a no-op when done."""
    database = database_name(size_gb)
    target = int(size_gb * GIB)
    if _complete_for(database) >= size_gb:
        return info(database)
    if not exists(database):
        if template and _complete_for(template) > 0:
            if log:
                print(f"[datasets] {database}: copying {template} as a starting point", flush=True)
            psql(f'create database "{database}" template "{template}"')
        else:
            psql(f'create database "{database}"')
    psql(SCHEMA_SQL, database=database)
    if psql("select count(*) from phrases", database=database) != str(PHRASES):
        if log:
            print(f"[datasets] {database}: building the word and phrase pool", flush=True)
        psql(_vocab_sql(), database=database, single_transaction=True)
    done = {int(x) for x in psql("select chunk from bench_progress", database=database).split()}
    chunk = 0
    started = time.monotonic()
    while True:
        current = size_bytes(database)
        if current >= target:
            break
        while chunk in done:
            chunk += 1
        t0 = time.monotonic()
        psql(chunk_sql(chunk), database=database, single_transaction=True)
        done.add(chunk)
        if log:
            print(
                f"[datasets] {database}: chunk {chunk} in {time.monotonic() - t0:.1f}s, "
                f"{current / GIB:.2f} -> {size_bytes(database) / GIB:.2f} GiB of {size_gb:g}",
                flush=True,
            )
    psql("vacuum analyze", database=database)
    psql(
        f"insert into bench_meta values ('complete_gb', '{size_gb:g}') "
        "on conflict (key) do update set value = excluded.value",
        database=database,
    )
    if log:
        print(f"[datasets] {database}: complete in {time.monotonic() - started:.0f}s", flush=True)
    return info(database)


def ensure_all(sizes: list[float], *, log: bool = True) -> list[DatasetInfo]:
    """Create the databases smallest first; each larger one grows from the previous one."""
    infos = []
    previous: str | None = None
    for size in sorted(sizes):
        infos.append(ensure(size, template=previous, log=log))
        previous = database_name(size)
    return infos


def parse_sizes(text: str) -> list[float]:
    sizes = [float(x) for x in text.split(",") if x.strip()]
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"--sizes wants positive GiB values like 1,4; got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.datasets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[1.0, 4.0], help="GiB on disk, e.g. 1,4")
    parser.add_argument("--status", action="store_true", help="only show what exists")
    args = parser.parse_args(argv)
    if args.status:
        for size in args.sizes:
            name = database_name(size)
            print(info(name).describe() if exists(name) else f"{name}: missing")
        return 0
    for dataset in ensure_all(args.sizes):
        print(dataset.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
