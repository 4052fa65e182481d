"""The scorecard's JSON Schema (draft 2020-12), shipped as ``verifiers/scorecard.schema.json``.

The document is the contract for everything that reads a scorecard: the reports, CI tools, the
certificate verifier. Its ``x-schema-version`` is the :data:`verifiers.scorecard.SCHEMA_VERSION`
the pipeline writes; the service publishes it at ``GET /v1/schema/scorecard``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_RESOURCE = "scorecard.schema.json"


@lru_cache(maxsize=1)
def _text() -> str:
    return resources.files("verifiers").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")


def scorecard_schema() -> dict[str, Any]:
    """A fresh copy of the schema document (callers may modify it)."""
    return json.loads(_text())


def schema_version() -> str:
    return scorecard_schema()["x-schema-version"]
