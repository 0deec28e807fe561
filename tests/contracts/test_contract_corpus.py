"""The published JSON Schemas (schemas/) and the pydantic models accept and refuse the same details.

``corpus/<schema-name>.json`` holds, per detail-type, a good ``base`` detail and variations of it
(``set`` fields, ``drop`` fields, make a text ``long`` or a list ``many``): every ``good`` one is accepted
by both the model and the schema, every ``bad`` one refused by both. A differential test then changes
one field of each base to arbitrary JSON and requires both to give the same answer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from backup_contracts.events import EVENT_TYPES, parse_event
from backup_contracts.naming import SOURCE_AGENT, agent_event_source

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
SCHEMAS = REPO / "schemas"


def _file_name(detail_type: str) -> str:
    return detail_type.lower().replace(" ", "-") + ".schema.json"


SOURCES = {
    str(detail_type): (agent_event_source("db-1") if family == SOURCE_AGENT else family)
    for family, detail_type in EVENT_TYPES
}
BY_FILE = {_file_name(detail_type).removesuffix(".schema.json"): detail_type for detail_type in SOURCES}


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _variant(base: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    detail = copy.deepcopy(base)
    for name in case.get("drop", []):
        detail.pop(name, None)
    detail.update(copy.deepcopy(case.get("set", {})))
    for name, length in case.get("long", {}).items():
        detail[name] = ("a@example.com" * (length // 13 + 1))[:length]
    for name, count in case.get("many", {}).items():
        detail[name] = [f"t-{i}" for i in range(count)]
    return detail


def _model_accepts(name: str, detail: dict[str, Any]) -> bool:
    detail_type = BY_FILE[name]
    try:
        parse_event(SOURCES[detail_type], detail_type, detail)
    except ValidationError:
        return False
    return True


def _cases(kind: str) -> list[Any]:
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        corpus = json.loads(path.read_text(encoding="utf-8"))
        for case in corpus[kind]:
            cases.append(pytest.param(path.stem, _variant(corpus["base"], case), id=f"{path.stem}: {case['why']}"))
    return cases


def test_every_published_schema_has_a_corpus() -> None:
    assert sorted(p.name.removesuffix(".json") for p in CORPUS.glob("*.json")) == sorted(BY_FILE)


@pytest.mark.parametrize(("name", "detail"), _cases("good"))
def test_a_good_detail_is_accepted_by_the_model_and_its_schema(name: str, detail: dict[str, Any]) -> None:
    assert _model_accepts(name, detail), "the model refuses it"
    errors = [error.message for error in _validator(name).iter_errors(detail)]
    assert not errors, f"the schema refuses it: {errors}"


@pytest.mark.parametrize(("name", "detail"), _cases("bad"))
def test_a_bad_detail_is_refused_by_the_model_and_its_schema(name: str, detail: dict[str, Any]) -> None:
    assert not _model_accepts(name, detail), "the model accepts it"
    assert not _validator(name).is_valid(detail), "the schema accepts it"


@pytest.mark.parametrize(("name", "detail"), _cases("good"))
def test_what_the_model_emits_is_valid_against_its_schema(name: str, detail: dict[str, Any]) -> None:
    detail_type = BY_FILE[name]
    emitted = json.loads(parse_event(SOURCES[detail_type], detail_type, detail).model_dump_json(exclude_none=True))
    assert _validator(name).is_valid(emitted)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "db-1", "db-1\n", "2026-11-22T12:00:00Z", "in-place", "clone", "a" * 300]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def _bases() -> list[tuple[str, dict[str, Any]]]:
    return [(path.stem, json.loads(path.read_text(encoding="utf-8"))["base"]) for path in sorted(CORPUS.glob("*.json"))]


@settings(derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_model_and_its_schema_agree_on_any_change_of_one_field(data: st.DataObject) -> None:
    name, base = data.draw(st.sampled_from(_bases()), label="detail type")
    detail = copy.deepcopy(base)
    field = data.draw(st.sampled_from([*sorted(detail), "unknown"]), label="field")
    if data.draw(st.booleans(), label="drop") and field in detail:
        del detail[field]
    else:
        detail[field] = data.draw(json_values, label="value")
    model, schema = _model_accepts(name, detail), _validator(name).is_valid(detail)
    assert model == schema, f"model {'accepts' if model else 'refuses'}, schema {'accepts' if schema else 'refuses'}"
