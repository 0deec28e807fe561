"""A PostgreSQL database's own properties: read at backup time, recreated on a clone, compared after it.

``pg_dump`` without ``--create`` carries none of what lives on the database itself, so a clone made
``TEMPLATE template0`` with defaults would lose the encoding, the locale (and its provider), the
``ALTER DATABASE … SET`` settings (an application's ``search_path``), the comment and the owner. The
backup records them in the manifest (``database_properties``); a clone or drill into a database the
restore creates recreates them; an in-place restore keeps the destination's own.

Values reach SQL only as psql variables (``:'name'`` quotes a literal, ``:"name"`` an identifier),
never spliced into the text. Setting names are checked against the GUC name syntax first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from backup_contracts.bounds import FACTS_ENTRIES, FACTS_TEXT_MAX

# One JSON object: version-independent (row_to_json keeps whichever locale columns this major has).
READ_SQL = """
SELECT json_build_object(
  'encoding', pg_encoding_to_char(d.encoding),
  'row', row_to_json(d),
  'comment', shobj_description(d.oid, 'pg_database'),
  'owner', pg_get_userbyid(d.datdba),
  'settings', (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0))
FROM pg_database d WHERE d.datname = :'dbname';
"""

_PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin"}
# pg_dump's variable_is_guc_list_quote: their value is a list whose elements are quoted one by one
_LIST_SETTINGS = frozenset(
    {
        "local_preload_libraries",
        "search_path",
        "session_preload_libraries",
        "shared_preload_libraries",
        "temp_tablespaces",
        "unix_socket_directories",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*$")
COMPARED = ("encoding", "locale_provider", "collate", "ctype", "locale", "icu_rules", "settings", "comment")


def parse(output: str) -> dict[str, Any]:
    """The properties from ``READ_SQL``'s output; texts longer than the manifest facts allow are cut
    (and say so in ``cut``)."""
    data = json.loads(output)
    row = data.get("row") or {}
    provider = _PROVIDERS.get(str(row.get("datlocprovider") or "c"), "libc")
    properties: dict[str, Any] = {
        "encoding": data.get("encoding"),
        "locale_provider": provider,
        "collate": row.get("datcollate"),
        "ctype": row.get("datctype"),
        "locale": row.get("datlocale") or row.get("daticulocale"),
        "icu_rules": row.get("daticurules"),
        "settings": sorted(data.get("settings") or [])[:FACTS_ENTRIES],
        "comment": data.get("comment"),
        "owner": data.get("owner"),
    }
    cut = [name for name, value in properties.items() if isinstance(value, str) and len(value) > FACTS_TEXT_MAX]
    cut += ["settings"] if any(len(s) > FACTS_TEXT_MAX for s in properties["settings"]) else []
    for name in cut:
        if name == "settings":
            properties["settings"] = [s for s in properties["settings"] if len(s) <= FACTS_TEXT_MAX]
        else:
            properties[name] = properties[name][:FACTS_TEXT_MAX]
    if cut:
        properties["cut"] = sorted(cut)
    return {name: value for name, value in properties.items() if value is not None}


def create_sql(properties: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """``CREATE DATABASE :"dbname"`` with the source's encoding and locale, and its psql variables."""
    variables: dict[str, str] = {}
    clauses = ["TEMPLATE template0"]
    for clause, name in (("ENCODING", "encoding"), ("LC_COLLATE", "collate"), ("LC_CTYPE", "ctype")):
        if properties.get(name):
            variables[name] = str(properties[name])
            clauses.append(f"{clause} :'{name}'")
    provider = properties.get("locale_provider", "libc")
    if provider in ("icu", "builtin"):
        clauses.append(f"LOCALE_PROVIDER {provider}")
        if properties.get("locale"):
            variables["locale"] = str(properties["locale"])
            clauses.append(("ICU_LOCALE" if provider == "icu" else "BUILTIN_LOCALE") + " :'locale'")
        if provider == "icu" and properties.get("icu_rules"):
            variables["icu_rules"] = str(properties["icu_rules"])
            clauses.append("ICU_RULES :'icu_rules'")
    return f'CREATE DATABASE :"dbname" {" ".join(clauses)};', variables


def describe_sql(properties: Mapping[str, Any]) -> tuple[str, dict[str, str], list[str]]:
    """``COMMENT ON DATABASE`` and ``ALTER DATABASE … SET`` for the source's comment and settings,
    their psql variables, and the settings that could not be recreated (in words)."""
    statements: list[str] = []
    variables: dict[str, str] = {}
    skipped: list[str] = []
    if properties.get("comment"):
        variables["comment"] = str(properties["comment"])
        statements.append("COMMENT ON DATABASE :\"dbname\" IS :'comment';")
    for index, setting in enumerate(properties.get("settings") or []):
        name, sep, value = str(setting).partition("=")
        if not sep or not _SETTING_NAME.match(name):
            skipped.append(f"setting {setting[:80]!r} (not name=value)")
            continue
        values = split_list(value) if name.lower() in _LIST_SETTINGS else [value]
        names = []
        for position, item in enumerate(values):
            variables[f"s{index}_{position}"] = item
            names.append(f":'s{index}_{position}'")
        quoted_name = ".".join(f'"{part}"' for part in name.split("."))
        statements.append(f'ALTER DATABASE :"dbname" SET {quoted_name} TO {", ".join(names) or "DEFAULT"};')
    return "\n".join(statements), variables, skipped


def split_list(value: str) -> list[str]:
    """A list setting's elements as pg_dump's SplitGUCList reads them: comma separated, a double-quoted
    element kept as written (its doubled quotes undone)."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(value):
        char = value[index]
        if quoted:
            if char == '"' and value[index + 1 : index + 2] == '"':
                current.append('"')
                index += 1
            elif char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = True
        elif char == ",":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    last = "".join(current).strip()
    if last or items:
        items.append(last)
    return items


def differences(source: Mapping[str, Any], restored: Mapping[str, Any]) -> list[str]:
    """What of the source's properties the restored database does not have, in words (empty: equal)."""
    cut = set(source.get("cut") or [])
    found = []
    for name in COMPARED:
        if name in cut:
            continue
        want, have = source.get(name), restored.get(name)
        if name == "settings":
            want, have = sorted(want or []), sorted(have or [])
        if (want or None) != (have or None):
            found.append(f"{name} {have!r} (the source had {want!r})")
    return found
