"""Package exports imported on first use (PEP 562).

A package whose ``__init__`` imports its heavy modules makes every light submodule heavy too:
importing ``verifiers.attacks.budget`` (which the standards parser needs, and so the API, the
CLI and ``verify-certificate``) would load torch. Packages list their exports here instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a public name to the
    submodule (relative to the package) that defines it, or to itself for a submodule."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{where}")
        value = module if where == name else getattr(module, name)
        namespace[name] = value  # later look-ups skip this function
        return value

    return __getattr__
