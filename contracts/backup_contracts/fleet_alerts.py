"""Where alerts go besides e-mail: the fleet's ``pipeline.alerts`` section (webhooks, chat, the canary).

Every destination subscribes to the one alert topic; a ``filter`` makes SNS deliver only the alerts whose
message attributes match it (an SNS subscription filter policy, synthesized by ``stacks/alerting.py``).
The attributes every alert carries are ``FILTER_ATTRIBUTES`` (see ``backup_functions.alerts``).

Secrets never reach the template: a webhook URL that carries a credential (userinfo, a query string, a
token-like path segment, or a known chat-webhook host) is refused; store it in Secrets Manager and name
the secret in ``url_secret`` (CloudFormation resolves it at deploy time, the template holds only its name).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from backup_contracts.naming import NAME_PATTERN
from backup_contracts.schedule import bounded_duration, parse_duration

SILENCE_MAX_LIMIT = timedelta(days=30)  # no fleet may allow a longer silence than this
SEVERITIES = ("info", "warning", "critical")
FILTER_ATTRIBUTES = ("severity", "kind", "phase", "target", "agent")
PHASES = ("open", "reminder", "resolved")
# hosts whose webhook URLs are bearer credentials (the path is the token)
TOKEN_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "webhook.office.com", "outlook.office.com")
TOKEN_SEGMENT = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-]{16,}$")
SECRETS_MANAGER_ID = r"^[A-Za-z0-9/_+=.@\-]{1,512}$"  # a name pattern, not a secret
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertFilter(_Model):
    """Deliver only alerts whose attribute is one of the listed values (every listed attribute must match)."""

    severity: list[Literal["info", "warning", "critical"]] | None = Field(default=None, min_length=1)
    kind: list[Name] | None = Field(default=None, min_length=1)
    phase: list[Literal["open", "reminder", "resolved"]] | None = Field(default=None, min_length=1)
    target: list[Name] | None = Field(default=None, min_length=1)
    agent: list[Name] | None = Field(default=None, min_length=1)

    def policy(self) -> dict[str, list[str]]:
        """The SNS filter policy (attribute-based): ``{"severity": ["critical"], ...}``."""
        return {name: list(values) for name in FILTER_ATTRIBUTES if (values := getattr(self, name))}


def credential_in_url(url: str) -> str | None:
    """Why ``url`` carries a credential, or None when it may stand in the fleet file (and the template)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.username or parts.password:
        return "it carries a user name or password"
    if parts.query or parts.fragment:
        return "it has a query string or fragment (where tokens usually travel)"
    if any(host == known or host.endswith(f".{known}") for known in TOKEN_HOSTS):
        return f"{host} webhook URLs are themselves the credential"
    if any(TOKEN_SEGMENT.match(segment) for segment in parts.path.split("/")):
        return "a path segment looks like a token"
    return None


class Webhook(_Model):
    """An HTTPS endpoint subscribed to the alert topic (SNS HTTPS subscription, retried, with a DLQ)."""

    name: Name
    url: str | None = None
    url_secret: Annotated[str, StringConstraints(pattern=SECRETS_MANAGER_ID)] | None = Field(
        default=None, description="Secrets Manager secret (name or ARN) whose SecretString is the URL"
    )
    filter: AlertFilter | None = None
    raw_message: bool = Field(default=False, description="deliver the body only, without SNS's JSON envelope")

    @field_validator("url")
    @classmethod
    def _https_without_credentials(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                "a webhook must be an https:// URL with a host (SNS delivers alerts only over TLS here)."
                " Fix: use https://host/path"
            )
        reason = credential_in_url(value)
        if reason:
            raise ValueError(
                f"the URL must not stand in the fleet file: {reason}, and the template would hold it."
                " Fix: store the URL in Secrets Manager and write url_secret: <secret name> instead of url"
            )
        return value

    @model_validator(mode="after")
    def _one_url(self) -> Webhook:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError(
                "a webhook needs exactly one of url (no credential in it) or url_secret (a Secrets Manager"
                " secret holding the URL). Fix: keep one of them"
            )
        return self


class SlackChannel(_Model):
    workspace_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{1,255}$")]
    channel_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]+$")]


class TeamsChannel(_Model):
    team_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F-]{36}$")]
    channel_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    tenant_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F-]{36}$")]


class ChatChannel(_Model):
    """A Slack or Microsoft Teams channel through AWS Chatbot (its client must be authorised once in the
    Chatbot console). Chatbot subscribes itself to the topic, so a chat channel takes no ``filter``."""

    name: Name
    slack: SlackChannel | None = None
    teams: TeamsChannel | None = None

    @model_validator(mode="after")
    def _one_client(self) -> ChatChannel:
        if (self.slack is None) == (self.teams is None):
            raise ValueError("a chat channel is either slack or teams. Fix: keep exactly one of them")
        return self


class Canary(_Model):
    """A synthetic ``canary`` alert (severity info) sent by the watchdog once a day at ``hour_utc``."""

    enabled: bool = True
    hour_utc: int = Field(default=9, ge=0, le=23)


class AlertRouting(_Model):
    webhooks: list[Webhook] = Field(default_factory=list)
    chat: list[ChatChannel] = Field(default_factory=list)
    canary: Canary = Canary()
    silence_max: Annotated[str, StringConstraints(pattern=r"^\d+\s*[mhd]$")] = Field(
        default="7d", description="the longest silence a Silence Requested may ask for (at most 30d)"
    )

    @field_validator("silence_max")
    @classmethod
    def _silence_max_bounded(cls, value: str) -> str:
        return bounded_duration("silence_max", value, SILENCE_MAX_LIMIT)

    @property
    def silence_max_delta(self) -> timedelta:
        return parse_duration(self.silence_max, SILENCE_MAX_LIMIT)

    def destination_names(self) -> list[str]:
        return [webhook.name for webhook in self.webhooks] + [channel.name for channel in self.chat]


def routing_problems(
    routing: AlertRouting, targets: set[str], agents: set[str]
) -> list[tuple[tuple[int | str, ...], str]]:
    """Cross-entry rules: unique destination names; a filter names only targets and agents of the fleet."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    base: tuple[int | str, ...] = ("pipeline", "alerts")
    seen: set[str] = set()
    entries = [("webhooks", i, w.name, w.filter) for i, w in enumerate(routing.webhooks)]
    entries += [("chat", i, c.name, None) for i, c in enumerate(routing.chat)]
    for section, index, name, alert_filter in entries:
        if name in seen:
            problems.append(
                ((*base, section, index, "name"), f"destination {name!r} is declared twice. Fix: rename one of them")
            )
        seen.add(name)
        if alert_filter is None:
            continue
        for attribute, known in (("target", targets), ("agent", agents)):
            for vi, value in enumerate(getattr(alert_filter, attribute) or []):
                if value not in known:
                    problems.append(
                        (
                            (*base, section, index, "filter", attribute, vi),
                            f"{attribute} {value!r} is not in this fleet, so the filter would never match it."
                            f" Fix: name a {attribute} of the fleet or remove it",
                        )
                    )
    return problems
