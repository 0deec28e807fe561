"""pipeline.alerts: webhooks and chat channels are validated at synth, as ``file:line: entry: problem. Fix: ...``,
and a webhook URL that carries a credential never stands in the fleet file (or the template)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backup_contracts.fleet import FleetConfigError, load_fleet
from backup_contracts.fleet_alerts import AlertFilter, credential_in_url

pytestmark = pytest.mark.unit

FLEET = """\
version: 1
retention_classes:
  standard: { daily_days: 7 }
agents:
  - name: db-1
    targets:
      - name: orders
        engine: postgresql
        schedule: cron(0 2 * * *)
        rpo: 26h
pipeline:
  alerts:
"""


def _load(tmp_path: Path, alerts: str) -> object:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET + alerts)
    return load_fleet(path)


def _problem(tmp_path: Path, alerts: str) -> tuple[int, str]:
    with pytest.raises(FleetConfigError) as caught:
        _load(tmp_path, alerts)
    (line,) = [text.removeprefix("  - ") for text in str(caught.value).splitlines()[1:]]
    found = re.match(rf"^{re.escape(str(tmp_path / 'fleet.yaml'))}:(\d+): (.+ Fix: .+)$", line)
    assert found, line
    return int(found.group(1)), found.group(2)


def test_webhooks_chat_and_canary_load(tmp_path: Path) -> None:
    fleet = _load(
        tmp_path,
        "    webhooks:\n"
        "      - { name: pager, url_secret: backup/pager-url, filter: { severity: [critical] } }\n"
        "      - { name: ticketing, url: 'https://tickets.example.com/backup-alerts', raw_message: true }\n"
        "    chat:\n"
        "      - { name: ops-slack, slack: { workspace_id: T0123ABC, channel_id: C0123ABC } }\n"
        "      - name: ops-teams\n"
        "        teams: { team_id: 0a1b2c3d-0000-4000-8000-000000000001, channel_id: '19:abc@thread.tacv2',"
        " tenant_id: 0a1b2c3d-0000-4000-8000-000000000002 }\n"
        "    canary: { hour_utc: 7 }\n",
    )
    alerts = fleet.pipeline.alerts  # type: ignore[attr-defined]
    assert alerts.destination_names() == ["pager", "ticketing", "ops-slack", "ops-teams"]
    assert alerts.webhooks[0].filter.policy() == {"severity": ["critical"]}
    assert alerts.canary.hour_utc == 7


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
        "https://example.webhook.office.com/webhookb2/abc",
        "https://user:pass@alerts.example.com/hook",
        "https://alerts.example.com/hook?token=abc",
        "https://alerts.example.com/hook/4f9a8c7d6e5b4a3c2d1e0f9a",
    ],
)
def test_a_webhook_url_with_a_credential_is_refused_with_the_secrets_manager_fix(tmp_path: Path, url: str) -> None:
    line, text = _problem(tmp_path, f"    webhooks:\n      - name: pager\n        url: '{url}'\n")
    assert line == 15
    assert text.startswith("pipeline > alerts > webhooks[0] 'pager' > url: the URL must not stand in the fleet file")
    assert "Fix: store the URL in Secrets Manager and write url_secret" in text
    assert url not in text  # the refusal does not repeat the credential either


def test_credential_free_urls_pass() -> None:
    assert credential_in_url("https://tickets.example.com/backup-alerts") is None
    assert credential_in_url("https://events.pagerduty.example/v2/enqueue") is None


def test_plain_http_is_refused(tmp_path: Path) -> None:
    line, text = _problem(tmp_path, "    webhooks:\n      - { name: pager, url: 'http://alerts.example.com/hook' }\n")
    assert line == 14
    assert "https://" in text


def test_a_webhook_needs_exactly_one_of_url_and_url_secret(tmp_path: Path) -> None:
    _, text = _problem(
        tmp_path, "    webhooks:\n      - { name: pager, url: 'https://a.example.com/h', url_secret: backup/x }\n"
    )
    assert "exactly one of url" in text


def test_an_unknown_severity_names_the_line(tmp_path: Path) -> None:
    line, text = _problem(
        tmp_path,
        "    webhooks:\n      - name: pager\n        url_secret: backup/x\n        filter: { severity: [page] }\n",
    )
    assert line == 16
    assert "filter > severity[0]: 'page' is not allowed here. Fix: use one of" in text


def test_a_filter_naming_a_target_not_in_the_fleet_is_refused(tmp_path: Path) -> None:
    line, text = _problem(
        tmp_path,
        "    webhooks:\n      - name: pager\n        url_secret: backup/x\n        filter:\n"
        "          target: [payments]\n",
    )
    assert line == 17
    assert "target 'payments' is not in this fleet" in text


def test_a_chat_channel_is_slack_or_teams_and_takes_no_filter(tmp_path: Path) -> None:
    _, text = _problem(tmp_path, "    chat:\n      - { name: ops }\n")
    assert "either slack or teams" in text
    _, text = _problem(
        tmp_path,
        "    chat:\n      - name: ops\n        slack: { workspace_id: T01, channel_id: C01 }\n"
        "        filter: { severity: [critical] }\n",
    )
    assert "unknown key" in text


def test_two_destinations_with_one_name_are_refused(tmp_path: Path) -> None:
    line, text = _problem(
        tmp_path,
        "    webhooks:\n      - { name: ops, url_secret: backup/x }\n"
        "    chat:\n      - { name: ops, slack: { workspace_id: T01, channel_id: C01 } }\n",
    )
    assert line == 16
    assert "declared twice" in text


def test_the_canary_hour_is_bounded(tmp_path: Path) -> None:
    _, text = _problem(tmp_path, "    canary: { hour_utc: 24 }\n")
    assert "out of range" in text


def test_a_filter_policy_lists_only_the_attributes_it_names() -> None:
    assert AlertFilter(kind=["rpo"], agent=["db-1"]).policy() == {"kind": ["rpo"], "agent": ["db-1"]}
