"""Robustgate's service: HTTP API, tenants and tokens, persistence, storage, CLI."""
