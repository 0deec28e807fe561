"""JSON Schema for the events people send (and the rest of the contract), generated from the models.

python -m backup_contracts.schemas write schemas     # regenerate schemas/*.schema.json
python -m backup_contracts.schemas check schemas     # fail if the committed files are stale
python -m backup_contracts.schemas validate "Restore Requested" request.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backup_contracts.bounds import END
from backup_contracts.events import EVENT_TYPES, UnknownEventError, parse_event
from backup_contracts.naming import AGENT_SOURCE_PREFIX, SOURCE_AGENT


def strict_end(schema: Any) -> Any:
    """``schema`` with every ``pattern`` ending in ``$`` followed by ``bounds.END``: Python's ``$`` (and so
    Python JSON Schema validators) would let a final newline through, which the model refuses."""
    if isinstance(schema, dict):
        return {key: _end_pattern(value) if key == "pattern" else strict_end(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [strict_end(value) for value in schema]
    return schema


def _end_pattern(pattern: Any) -> Any:
    return pattern + END if isinstance(pattern, str) and pattern.endswith("$") else pattern


def _file_name(detail_type: str) -> str:
    return detail_type.lower().replace(" ", "-") + ".schema.json"


def schema_documents() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema of the event's ``detail``, with its source and detail-type recorded."""
    documents: dict[str, dict[str, Any]] = {}
    for (family, detail_type), model in EVENT_TYPES.items():
        source = f"{AGENT_SOURCE_PREFIX}<agent>" if family == SOURCE_AGENT else family
        schema = strict_end(model.model_json_schema(mode="validation"))
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = str(detail_type)
        schema["description"] = (
            f"`detail` of an EventBridge event with source {source!r} and detail-type {str(detail_type)!r}."
            + (f" {model.__doc__.strip()}" if model.__doc__ else "")
        )
        schema["x-event-source"] = source
        schema["x-event-detail-type"] = str(detail_type)
        documents[_file_name(detail_type)] = schema
    return documents


def _render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, schema in schema_documents().items():
        (directory / name).write_text(_render(schema), encoding="utf-8")


def stale_files(directory: Path) -> list[str]:
    stale = []
    for name, schema in schema_documents().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != _render(schema):
            stale.append(name)
    return stale


def validate(detail_type: str, document: Path) -> str | None:
    """None when ``document`` is a valid detail for ``detail_type``; otherwise the reasons."""
    sources = [
        f"{AGENT_SOURCE_PREFIX}any" if s == SOURCE_AGENT else s for (s, kind) in EVENT_TYPES if kind == detail_type
    ]
    if not sources:
        known = ", ".join(sorted({kind for (_, kind) in EVENT_TYPES}))
        return f"unknown detail-type {detail_type!r}; known: {known}"
    try:
        parse_event(sources[0], detail_type, json.loads(document.read_text(encoding="utf-8")))
    except (ValidationError, UnknownEventError, json.JSONDecodeError) as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backup_contracts.schemas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write").add_argument("directory", type=Path)
    sub.add_parser("check").add_argument("directory", type=Path)
    check = sub.add_parser("validate")
    check.add_argument("detail_type")
    check.add_argument("document", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write":
        write(args.directory)
        return 0
    if args.command == "check":
        stale = stale_files(args.directory)
        if stale:
            sys.stderr.write(f"stale JSON Schema files in {args.directory}: {', '.join(stale)}; run `make schemas`\n")
            return 1
        return 0
    problem = validate(args.detail_type, args.document)
    if problem:
        sys.stderr.write(f"{args.document}: not a valid {args.detail_type!r} detail:\n{problem}\n")
        return 1
    sys.stdout.write(f"{args.document}: valid {args.detail_type!r} detail\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
