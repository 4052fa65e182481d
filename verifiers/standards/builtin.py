"""The built-in standards shipped in the top-level ``standards`` package (one YAML each)."""

from __future__ import annotations

from pathlib import Path

from verifiers.errors import StandardError
from verifiers.standards.parse import parse_standard
from verifiers.standards.spec import Standard


def builtin_dir() -> Path:
    import standards  # the catalogue shipped with the distribution

    return Path(standards.__file__).parent


def builtin_standards() -> dict[str, Standard]:
    found: dict[str, Standard] = {}
    for path in sorted(builtin_dir().glob("*.yaml")):
        try:
            std = parse_standard(path.read_text())
        except StandardError as exc:  # a broken built-in is a packaging bug: say which file
            raise StandardError(f"built-in standard {path.name}: {exc}") from exc
        if std.name in found:
            raise StandardError(f"built-in standard {path.name}: name {std.name!r} is taken")
        found[std.name] = std
    return found


def get_builtin(name: str) -> Standard:
    catalogue = builtin_standards()
    if name not in catalogue:
        raise StandardError(
            f"unknown standard {name!r}; known: {', '.join(sorted(catalogue)) or 'none'}"
        )
    return catalogue[name]
