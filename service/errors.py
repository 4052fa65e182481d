"""Errors the API turns into 4xx/5xx JSON bodies: {"error": {"code", "message"}}."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *,
                 details: dict | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}   # extra fields of the error object (e.g. a quota's)
        self.headers = headers or {}   # e.g. Retry-After

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.details}}
