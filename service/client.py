"""The full CLI's HTTP client for the v1 API (``robustgate submit``, the tests).

Users who only submit and read verdicts want the light client in ``client/``
(``robustgate_client``: httpx and cryptography only), which has the documented Python API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

FINISHED = ("succeeded", "errored", "cancelled")


class ClientError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Client:
    def __init__(self, server: str, token: str | None, timeout: float = 300.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)
        self._seen: dict[str, tuple[str, dict[str, Any]]] = {}  # job id -> (ETag, status)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One API call; an HTTP error or no answer raises :class:`ClientError`."""
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the server at {self._http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise ClientError(f"HTTP {response.status_code}: {message}", response.status_code)
        return response

    def submit(self, model: Path, data: Path, standard: str, *, seed: int = 0,
               input_range: tuple[float, float] | None = None,
               ood: Path | None = None, mean: list[float] | None = None,
               std: list[float] | None = None) -> dict[str, Any]:
        form: dict[str, str] = {"standard": standard, "seed": str(seed)}
        if mean is not None:
            form["input_mean"] = ",".join(repr(float(v)) for v in mean)
        if std is not None:
            form["input_std"] = ",".join(repr(float(v)) for v in std)
        if input_range is not None:
            form["input_low"], form["input_high"] = (str(v) for v in input_range)
        with ExitStack() as stack:
            files = {field: (path.name, stack.enter_context(path.open("rb")),
                             "application/octet-stream")
                     for field, path in (("model", model), ("data", data), ("ood", ood))
                     if path is not None}
            return self.request("POST", "/v1/certifications", data=form, files=files).json()

    def get(self, job_id: str) -> dict[str, Any]:
        # Conditional GET: an unchanged status comes back as a bodiless 304.
        seen = self._seen.get(job_id)
        headers = {"If-None-Match": seen[0]} if seen else {}
        response = self.request("GET", f"/v1/certifications/{job_id}", headers=headers)
        if response.status_code == 304 and seen:
            return dict(seen[1])
        body = response.json()
        if "etag" in response.headers:
            self._seen[job_id] = (response.headers["etag"], dict(body))
        return body

    def scorecard(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/certifications/{job_id}/scorecard").json()

    def report(self, job_id: str, fmt: str) -> bytes:
        """A rendering of the scorecard: html, md, xml (JUnit) or svg (badge)."""
        return self.request("GET", f"/v1/certifications/{job_id}/report.{fmt}").content

    def adversarial(self, job_id: str) -> bytes:
        """The confirmed adversarial examples as an .npz (404 when the scorecard keeps none)."""
        return self.request("GET", f"/v1/certifications/{job_id}/adversarial.npz").content

    def certificate(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/certifications/{job_id}/certificate").json()

    def list_certifications(self, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        return self.request("GET", "/v1/certifications",
                            params={"limit": limit, "offset": offset}).json()

    def delete(self, job_id: str) -> int:
        return self.request("DELETE", f"/v1/certifications/{job_id}").status_code

    def wait(self, job_id: str, on_progress: Callable[[dict[str, Any]], None] | None = None,
             timeout: float = 3600.0, poll: float = 0.5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["status"] in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise ClientError(f"certification {job_id} still {job['status']} after "
                                  f"{timeout:.0f} s")
            time.sleep(poll)
