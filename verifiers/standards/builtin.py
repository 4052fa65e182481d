"""The built-in standards shipped in the top-level ``standards`` package.

The latest version of each is ``standards/NAME.yaml``; earlier versions stay, unchanged, as
``standards/history/NAME@VERSION.yaml``, so a pipeline pinned to ``NAME@1`` keeps certifying
against the document it was written for.
"""

from __future__ import annotations

from pathlib import Path

from verifiers.errors import StandardError
from verifiers.standards.parse import parse_standard
from verifiers.standards.spec import Standard


def builtin_dir() -> Path:
    import standards  # the catalogue shipped with the distribution

    return Path(standards.__file__).parent


def builtin_standards() -> dict[str, Standard]:
    """The latest version of every built-in, by name."""
    found: dict[str, Standard] = {}
    for path in sorted(builtin_dir().glob("*.yaml")):
        std = _parse(path)
        if std.name in found:
            raise StandardError(f"built-in standard {path.name}: name {std.name!r} is taken")
        found[std.name] = std
    return found


def builtin_versions(name: str) -> dict[int, Standard]:
    """Every version of one built-in, oldest first (empty if there is no such built-in)."""
    latest = builtin_standards().get(name)
    if latest is None:
        return {}
    versions = {}
    for path in sorted(builtin_dir().glob(f"history/{name}@*.yaml")):
        std = _parse(path)
        if std.name != name or path.stem != f"{name}@{std.version}":
            raise StandardError(f"built-in standard history/{path.name}: the file name must be "
                                f"{std.name}@{std.version}.yaml")
        versions[std.version] = std
    versions[latest.version] = latest
    return dict(sorted(versions.items()))


def get_builtin(name: str) -> Standard:
    """``NAME`` (the latest version) or ``NAME@VERSION``."""
    base, _, pinned = name.partition("@")
    catalogue = builtin_standards()
    if base not in catalogue:
        raise StandardError(
            f"unknown standard {name!r}; known: {', '.join(sorted(catalogue)) or 'none'}"
        )
    if not pinned:
        return catalogue[base]
    versions = builtin_versions(base)
    if not pinned.isdigit() or int(pinned) not in versions:
        raise StandardError(f"standard {base!r} has no version {pinned!r}; versions: "
                            f"{', '.join(map(str, versions))}")
    return versions[int(pinned)]


def _parse(path: Path) -> Standard:
    try:
        return parse_standard(path.read_text())
    except StandardError as exc:  # a broken built-in is a packaging bug: say which file
        raise StandardError(f"built-in standard {path.name}: {exc}") from exc
