"""Packages that export names lazily (verifiers.lazy) give the same objects as eager imports.

A lazily exported name equal to one of the package's submodules would turn into that module
as soon as anything imports the submodule (the import system sets the attribute): the name
a caller gets would depend on import order."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

LAZY = ("verifiers", "verifiers.attacks", "verifiers.model", "verifiers.ood",
        "verifiers.smoothing")


@pytest.mark.parametrize("name", LAZY)
def test_exports_name_no_submodule_and_resolve_to_their_definitions(name):
    package = importlib.import_module(name)
    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    for export, where in package._EXPORTS.items():
        assert export == where or export not in submodules, (name, export)
        importlib.import_module(f"{name}.{where}")  # as any other import might, first
        got = getattr(package, export)
        if export == where:
            assert isinstance(got, types.ModuleType)
        else:
            assert got is getattr(importlib.import_module(f"{name}.{where}"), export)
    assert sorted(package.__all__) == sorted(package._EXPORTS)
