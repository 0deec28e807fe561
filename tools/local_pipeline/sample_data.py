"""A small but realistic application database for the demo and the end-to-end tests."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path


def create_app_database(path: Path, *, customers: int = 300, orders: int = 2000, seed: int = 7) -> int:
    """Write customers, orders and an audit log with text, numbers, timestamps, JSON and blobs.
    Returns the number of rows written."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    start = datetime(2026, 1, 1, tzinfo=UTC)
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(
            """
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, created_at TEXT);
            CREATE TABLE orders (
                id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                total_cents INTEGER, currency TEXT, placed_at TEXT, items TEXT, receipt BLOB);
            CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at TEXT, actor TEXT, action TEXT, note TEXT);
            CREATE INDEX orders_by_customer ON orders(customer_id);
            """
        )
        connection.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?)",
            [
                (i, f"Customer {i} — Ünïcødé", f"c{i}@example.com", (start + timedelta(hours=i)).isoformat())
                for i in range(1, customers + 1)
            ],
        )
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    rng.randint(1, customers),
                    rng.randint(100, 500_000),
                    rng.choice(["EUR", "USD", "GBP"]),
                    (start + timedelta(minutes=17 * i)).isoformat(),
                    json.dumps([{"sku": f"SKU-{rng.randint(1, 999)}", "qty": rng.randint(1, 5)}]),
                    rng.randbytes(rng.randint(0, 256)),
                )
                for i in range(1, orders + 1)
            ],
        )
        connection.executemany(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
            [(i, (start + timedelta(seconds=i)).isoformat(), "system", "seed", None) for i in range(1, 201)],
        )
        connection.commit()
    finally:
        connection.close()
    return customers + orders + 200


def create_empty_database(path: Path) -> None:
    """A destination database that exists but holds nothing yet (a clone or drill target)."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS placeholder (id INTEGER PRIMARY KEY)")
        connection.commit()
    finally:
        connection.close()
