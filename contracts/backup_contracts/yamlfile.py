"""Reading a YAML config file so that every problem can name its line: the fleet file and the agent config.

``read_yaml`` parses once into the composed node tree and the plain data, and refuses what PyYAML would
silently accept: a key given twice in one mapping (PyYAML keeps the last, so a second ``agents:``
replaced every agent). ``YamlDocument.line_of`` maps a path into the data, as a pydantic error location
gives it (``("agents", 0, "targets", 2, "schedule")``), to the line that path starts on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlProblem(ValueError):
    """The text is not a usable YAML document; ``problems`` pairs each line (or None) with what is wrong."""

    def __init__(self, problems: list[tuple[int | None, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"line {line}: {text}" if line else text for line, text in problems))


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Sequence[int | str]) -> int | None:
        """The 1-based line of the deepest node along ``loc`` (parts that match nothing, such as a pydantic
        union tag or a missing key, are skipped, so the enclosing entry's line is given)."""
        node = self.root
        best = node
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next(
                    (value for key, value in node.value if isinstance(key, yaml.ScalarNode) and key.value == str(part)),
                    None,
                )
                if match is not None:
                    node = best = match
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = best = node.value[part]
        return best.start_mark.line + 1 if best is not None else None


def _mappings(root: yaml.Node | None) -> Iterator[tuple[str, yaml.MappingNode]]:
    """Every mapping with its path (``agents[0] > targets``), each node once (an alias shares its node)."""
    stack: list[tuple[str, yaml.Node | None]] = [("", root)]
    seen: set[int] = set()
    while stack:
        path, current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            yield path, current
            for key, value in current.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                stack.append((f"{path} > {name}" if path else name, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(current.value))


def duplicate_keys(root: yaml.Node | None) -> list[tuple[int, str]]:
    """Every key written twice in one mapping, with the line of its second and of its first occurrence.

    Keys pulled in by a merge (``<<: *defaults``) may be overridden; that is what merges are for."""
    found: list[tuple[int, str]] = []
    for path, mapping in _mappings(root):
        first: dict[tuple[str, str], int] = {}
        for key, _value in mapping.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                continue
            line = key.start_mark.line + 1
            ident = (key.tag, key.value)
            if ident not in first:
                first[ident] = line
                continue
            label = f"{path} > {key.value}" if path else key.value
            found.append(
                (
                    line,
                    f"{label}: key {key.value!r} is given twice, on line {first[ident]} and on line {line}; YAML"
                    " would silently keep only the last one. Fix: remove one or merge them into one entry",
                )
            )
    return sorted(found)


def read_yaml(text: str) -> YamlDocument:
    """Parse ``text``; raises ``YamlProblem`` for a syntax error or a duplicate key (every one, with lines)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlProblem(
            [(mark.line + 1 if mark else None, f"not valid YAML syntax: {exc.problem}. Fix: correct the YAML syntax")]
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem([(None, f"not valid YAML: {exc}. Fix: correct the YAML syntax")]) from None
    duplicates = duplicate_keys(root)
    if duplicates:
        raise YamlProblem(list(duplicates))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # composed fine but cannot be constructed (e.g. an unhashable key)
        mark = getattr(exc, "problem_mark", None)
        raise YamlProblem([(mark.line + 1 if mark else None, f"not valid YAML: {exc}")]) from None
    return YamlDocument(data, root)
