"""The database fixtures skip only where a server is not installed; an installed, unreachable one fails."""

from __future__ import annotations

import re

import pytest

from .real_databases import unreachable

pytestmark = pytest.mark.unit


def test_an_installed_but_unreachable_server_fails_instead_of_skipping() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"installed on this machine but .* must run here, not skip"):
        unreachable("PostgreSQL", "127.0.0.1:5432 is unreachable: refused", installed=True)


def test_a_server_that_is_not_installed_skips_with_the_reason() -> None:
    with pytest.raises(
        pytest.skip.Exception, match=re.escape("not installed on this machine and 127.0.0.1:3306 is unreachable")
    ):
        unreachable("MariaDB", "127.0.0.1:3306 is unreachable: refused", installed=False)
