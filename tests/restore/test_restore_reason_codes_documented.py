"""Every reason a restore can be rejected for is explained to people the same way in the SNS message and
the runbook: each code of ``messages.REASON_HELP`` has its row (and anchor) in docs/runbook.md §5, and the
runbook documents no code the coordinator never sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backup_functions.restore.messages import REASON_HELP

pytestmark = pytest.mark.unit

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"


def test_every_reason_code_has_its_row_in_the_runbook_and_no_other_is_documented() -> None:
    table = RUNBOOK.read_text(encoding="utf-8").split("## 5. What each rejection means", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r'^\| <a id="([a-z-]+)"></a>`\1` \|', table, flags=re.MULTILINE)
    assert sorted(documented) == sorted(REASON_HELP)


def test_the_approval_codes_are_their_own() -> None:
    for code in ("self-approval", "not-an-approver", "approval-not-authenticated", "authenticated-request-required"):
        assert code in REASON_HELP
    assert "approval-invalid" not in REASON_HELP  # there is no token to get wrong any more
