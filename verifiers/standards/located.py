"""YAML with line numbers: a document's plain values plus the line each field is written on.

``yaml.safe_load`` drops positions; composing the node tree and building the values ourselves
keeps them, so every StandardError can say "line N: field X ...". Aliases are refused (a
standard has no use for them, and expanding them is how YAML bombs work), and so are duplicate
keys (PyYAML would silently keep the last one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from verifiers.errors import StandardError

Path = tuple[str | int, ...]


def field_name(path: Path) -> str:
    """("threat_model", 0, "eps", 1) -> "threat_model[0].eps[1]"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out or "document"


@dataclass(frozen=True)
class Located:
    data: Any
    lines: dict[Path, int]

    def line(self, path: Path) -> int:
        """The line ``path`` is written on, else that of its nearest written ancestor."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: Path, problem: str) -> StandardError:
        """``line N: field <path> <problem>``."""
        return StandardError(f"line {self.line(path)}: field {field_name(path)} {problem}")

    def at(self, path: Path, message: str) -> StandardError:
        """``line N: <message>``, for messages that name their field themselves."""
        return StandardError(f"line {self.line(path)}: {message}")


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):  # refused where it is written
            event = self.peek_event()
            raise StandardError(f"line {event.start_mark.line + 1}: YAML aliases "
                                f"(*{event.anchor}) are not allowed in a standard")
        return super().compose_node(parent, index)


def load(document: str) -> Located:
    try:
        node = yaml.compose(document, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise StandardError(f"line {line}: not valid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise StandardError(f"line 1: not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise StandardError("line 1: the YAML is nested too deeply") from exc
    if node is None:
        raise StandardError("line 1: the standard is empty; it must be a YAML mapping")
    lines: dict[Path, int] = {(): node.start_mark.line + 1}
    try:
        data = _Builder(lines).value(node, ())
    except RecursionError as exc:
        raise StandardError("line 1: the YAML is nested too deeply") from exc
    return Located(data, lines)


class _Builder:
    def __init__(self, lines: dict[Path, int]) -> None:
        self.lines = lines
        self.scalars = SafeConstructor()

    def value(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                items.append(self.value(item, (*path, i)))
            return items
        try:
            return self.scalars.construct_object(node)
        except yaml.YAMLError as exc:
            line = node.start_mark.line + 1
            raise StandardError(f"line {line}: field {field_name(path)} cannot be read: "
                                f"{getattr(exc, 'problem', None) or exc}") from exc

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise StandardError(f"line {line}: field names must be plain scalars")
            key = str(self.value(key_node, (*path, "?")))
            if key in out:
                first = self.lines[(*path, key)]
                raise StandardError(f"line {line}: field {field_name((*path, key))} is given "
                                    f"twice (first on line {first})")
            self.lines[(*path, key)] = line
            out[key] = self.value(value_node, (*path, key))
        return out
