"""What a standard can say: ``robustgate standards list|show|lint`` and ``robustgate metrics``.

These read the built-in standards and the metric catalogue shipped with this installation;
``standards list --server URL`` asks a server instead (with ``--token``, the caller's own too).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from service.console import fail


def standards_list(args: argparse.Namespace) -> int:
    if args.server:
        return _server_list(args)
    from verifiers.standards import builtin_standards, builtin_versions

    for name, std in builtin_standards().items():
        versions = ", ".join(f"v{v}" for v in builtin_versions(name))
        domain = std.input_domain.describe() if std.input_domain else "no declared domain"
        print(f"{name:<22} v{std.version}  {std.norm} eps {', '.join(e.label for e in std.eps)}"
              f"  in {domain}  (versions: {versions})")
    return 0


def _server_list(args: argparse.Namespace) -> int:
    import httpx

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        response = httpx.get(f"{args.server.rstrip('/')}/v1/standards", headers=headers,
                             timeout=30)
    except httpx.HTTPError as exc:
        return fail(f"cannot reach the server at {args.server}: {exc}")
    if response.status_code >= 400:
        return fail(f"HTTP {response.status_code}: {response.text[:300]}")
    for std in response.json():
        owner = "built-in" if std.get("builtin") else "yours"
        print(f"{std['name']:<22} v{std['version']}  {owner}  {std['sha256'][:12]}")
    return 0


def standards_show(args: argparse.Namespace) -> int:
    from verifiers import StandardError, get_builtin

    try:
        std = get_builtin(args.name)
    except StandardError as exc:
        return fail(str(exc))
    sys.stdout.write(std.document)
    return 0


def standards_lint(args: argparse.Namespace) -> int:
    """Exit 0: parses, no errors (warnings printed); 1: refused or would be refused on
    upload; 2: the file cannot be read."""
    from verifiers import StandardError, parse_standard
    from verifiers.standards.lint import lint

    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read {path}: {exc}")
    try:
        std = parse_standard(text)
    except StandardError as exc:
        print(f"{path}: {exc}")
        return 1
    findings = lint(std)
    for f in findings:
        print(f"{path}: {f.severity}: {f.message}")
    errors = sum(f.severity == "error" for f in findings)
    print(f"{path}: {std.name} v{std.version}: {len(std.criteria)} criteria, "
          f"{errors} error(s), {len(findings) - errors} warning(s)")
    return 1 if errors else 0


def metrics(args: argparse.Namespace) -> int:
    from verifiers import catalogue

    if args.json:
        print(json.dumps(catalogue_json(), indent=2))
        return 0
    for family in catalogue.catalogue().values():
        print(f"{family.check}: {family.summary}")
        for spec in family.metrics:
            bound = "" if spec.bound == "exact" else f", {spec.bound} bound"
            better = {"higher": "higher is better", "lower": "lower is better",
                      "none": "informational"}[spec.direction]
            print(f"  {family.check}.{spec.pattern:<44} {better}{bound}; {spec.unit}")
            print(f"      {spec.description}")
        print()
    print("placeholders: {eps} a radius the standard lists (as written, e.g. 8/255); "
          "the others take the values below")
    seen: dict[str, tuple[str, ...]] = {}
    for family in catalogue.catalogue().values():
        for spec in family.metrics:
            for p in spec.placeholders:
                if p.values:
                    seen[p.name] = p.values
    for name, values in sorted(seen.items()):
        print(f"  {{{name}}}: {', '.join(values)}")
    return 0


def catalogue_json() -> dict[str, Any]:
    """The catalogue as served at GET /v1/metrics."""
    from verifiers import catalogue

    return {"checks": [
        {"check": f.check, "summary": f.summary, "metrics": [
            {"path": f"{f.check}.{s.pattern}", "direction": s.direction, "bound": s.bound,
             "unit": s.unit, "description": s.description,
             "placeholders": {p.name: {"description": p.description, "values": list(p.values)}
                              for p in s.placeholders}}
            for s in f.metrics]}
        for f in catalogue.catalogue().values()]}
