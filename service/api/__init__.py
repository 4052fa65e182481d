"""HTTP API v1 (FastAPI); OpenAPI at /docs."""

from service.api.app import create_app

__all__ = ["create_app"]
