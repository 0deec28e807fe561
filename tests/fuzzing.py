"""The fuzz suites' budget and hostile values (hypothesis), shared by every handler's fuzz test.

``make test`` runs each fuzz test with a fixed, derandomized budget (the ``ci`` profile: the same cases on
every run, more than 2,000 in all, under a minute); ``make fuzz`` sets ``BACKUP_FUZZ=fuzz`` for ten times
as many fresh random cases. Each test counts the cases it ran (``record``); the session prints the
counts and times at its end (``tests/conftest.py``).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROFILE = os.environ.get("BACKUP_FUZZ", "ci")
SCALE = {"ci": 1, "fuzz": 10}[PROFILE]
_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,  # one moto world per test, shared by its cases on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("fuzz", derandomize=False, **_COMMON)

COUNTS: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])  # entry point -> [cases, seconds]


def budget(cases: int) -> settings:
    """The settings of a fuzz test whose ``ci`` budget is ``cases`` (times ten under ``make fuzz``)."""
    return settings(settings.get_profile(PROFILE), max_examples=cases * SCALE)


@contextmanager
def case(entry_point: str) -> Iterator[None]:
    """Count one case of ``entry_point`` and the time it took."""
    started = time.perf_counter()
    try:
        yield
    finally:
        COUNTS[entry_point][0] += 1
        COUNTS[entry_point][1] += time.perf_counter() - started


# --------------------------------------------------------------------------- hostile values

HOSTILE_TEXT = [
    "",
    " ",
    "db-1\n",
    "a\nOne-time approval token: 424242",
    "\x00",
    "\u202e",
    "x" * 300,
    "x" * 2000,
    "../../etc/passwd",
    "Not A Bucket!",
    "someone-elses-bucket",
    "2026-11-22T12:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "2026-11-22T12:00:00",
]
HOSTILE_NUMBERS = [0, -1, 1, 2**31, 2**53, 10**38, 10**40, 1e300, float("inf"), float("-inf"), 0.5, -0.0]

hostile_scalars = (
    st.none()
    | st.booleans()
    | st.sampled_from(HOSTILE_NUMBERS)
    | st.integers()
    | st.floats()
    | st.sampled_from(HOSTILE_TEXT)
    | st.text(max_size=30)
)
json_values = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def times_around(moment: datetime) -> st.SearchStrategy[datetime]:
    """Aware instants from a year before to a year after ``moment``, and a few absurd ones."""
    near = st.integers(min_value=-366 * 24 * 3600, max_value=366 * 24 * 3600).map(
        lambda s: moment + timedelta(seconds=s)
    )
    far = st.sampled_from(
        [datetime(2000, 1, 1, tzinfo=UTC), datetime(2999, 12, 31, 23, 59, tzinfo=UTC), moment + timedelta(days=3650)]
    )
    return near | far


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with a few of its fields (or new ones) replaced by hostile values or dropped."""
    names = [*sorted(base), "unknown"]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        detail = dict(base)
        for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
            if draw(st.booleans()) and name in detail:
                del detail[name]
            else:
                detail[name] = draw(json_values)
        return detail

    return build()


def iso(moment: datetime) -> str:
    return moment.isoformat()


def summary_lines() -> list[str]:
    if not COUNTS:
        return []
    total = sum(int(cases) for cases, _ in COUNTS.values())
    seconds = sum(spent for _, spent in COUNTS.values())
    lines = [f"fuzz ({PROFILE} profile): {total} cases in {seconds:.1f} s"]
    lines += [f"  {name}: {int(cases)} cases, {spent:.1f} s" for name, (cases, spent) in sorted(COUNTS.items())]
    return lines
