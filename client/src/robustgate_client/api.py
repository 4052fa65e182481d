"""The typed Python API: ``Client(url, token).submit(model, data, standard).wait()``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PathLike = str | Path

FINISHED = ("succeeded", "errored", "cancelled")
REPORT_FORMATS = ("html", "md", "xml", "svg")
EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 2}
EXIT_ERROR = 2


class RobustgateError(Exception):
    """Base of every error this package raises."""


class ServerUnreachable(RobustgateError):
    """No HTTP answer: wrong URL, server down, network."""


class ApiError(RobustgateError):
    """The server answered with an error: ``status`` (HTTP) and ``code`` (from the body)."""

    def __init__(self, message: str, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class CertificationFailed(RobustgateError):
    """The certification finished without a scorecard (errored or cancelled)."""

    def __init__(self, message: str, job: dict[str, Any]) -> None:
        super().__init__(message)
        self.job = job


class WaitTimeout(RobustgateError):
    """``wait`` gave up before the certification finished."""


@dataclass(frozen=True)
class Result:
    """A finished certification: its verdict and scorecard."""

    id: str
    verdict: str
    scorecard: dict[str, Any]
    job: dict[str, Any] = field(repr=False)

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"

    @property
    def exit_code(self) -> int:
        """0 PASS, 1 FAIL, 2 INCONCLUSIVE (the CLI's exit codes)."""
        return EXIT_CODES.get(self.verdict, EXIT_ERROR)

    @property
    def criteria(self) -> list[dict[str, Any]]:
        return list(self.scorecard.get("criteria", []))


class Certification:
    """A submitted certification; ``wait()`` polls until its verdict."""

    def __init__(self, client: Client, job: dict[str, Any]) -> None:
        self.client = client
        self.job = job

    @property
    def id(self) -> str:
        return str(self.job["id"])

    @property
    def status(self) -> str:
        return str(self.job["status"])

    @property
    def reused(self) -> bool:
        """True when the server returned an earlier identical certification."""
        return bool(self.job.get("_reused", False))

    def refresh(self) -> dict[str, Any]:
        self.job = self.client.status(self.id)
        return self.job

    def wait(self, timeout: float = 3600.0, poll: float = 1.0,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> Result:
        """Poll until finished; the :class:`Result`, or :class:`CertificationFailed`."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.refresh()
            if on_progress is not None:
                on_progress(job)
            if job["status"] in FINISHED:
                break
            if time.monotonic() > deadline:
                raise WaitTimeout(f"certification {self.id} still {job['status']} after "
                                  f"{timeout:.0f} s")
            time.sleep(poll)
        if job["status"] != "succeeded":
            raise CertificationFailed(f"certification {self.id} {job['status']}: "
                                      f"{job.get('error')}", job)
        card = self.client.scorecard(self.id)
        return Result(id=self.id, verdict=str(card.get("verdict")), scorecard=card, job=job)

    def download_reports(self, folder: PathLike) -> list[Path]:
        return self.client.download_reports(self.id, folder)

    def __repr__(self) -> str:
        return f"Certification(id={self.id!r}, status={self.status!r})"


class Client:
    """A Robustgate server's v1 API.

    >>> with Client("https://robustgate.example", token) as rg:   # doctest: +SKIP
    ...     result = rg.submit("model.onnx", "eval.npz", "demo-digits").wait()
    ...     result.verdict, result.scorecard["metrics"]["clean.accuracy"]
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 300.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  transport=transport)
        self._seen: dict[str, tuple[str, dict[str, Any]]] = {}  # job id -> (ETag, status)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; HTTP errors become :class:`ApiError` with the server's message."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot reach the server at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            code = ""
            try:
                err = response.json()["error"]
                message, code = err["message"], err.get("code", "")
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            if response.status_code == 401:
                message += (" (check the token: ROBUSTGATE_TOKEN or --token; an admin creates "
                            "one with POST /v1/tokens or `robustgate token create`)")
            raise ApiError(f"HTTP {response.status_code}: {message}", response.status_code,
                           code)
        return response

    # -- certifications -------------------------------------------------------------------
    def submit(self, model: PathLike, data: PathLike, standard: str, *, seed: int = 0,
               input_range: tuple[float, float] | None = None,
               mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
               ood: PathLike | None = None) -> Certification:
        """Upload a model and evaluation set for certification against ``standard``."""
        form: dict[str, str] = {"standard": standard, "seed": str(seed)}
        if mean is not None:
            form["input_mean"] = ",".join(repr(float(v)) for v in mean)
        if std is not None:
            form["input_std"] = ",".join(repr(float(v)) for v in std)
        if input_range is not None:
            form["input_low"], form["input_high"] = (str(float(v)) for v in input_range)
        with ExitStack() as stack:
            files = {}
            for name, path in (("model", model), ("data", data), ("ood", ood)):
                if path is not None:
                    p = Path(path)
                    files[name] = (p.name, stack.enter_context(p.open("rb")),
                                   "application/octet-stream")
            response = self.request("POST", "/v1/certifications", data=form, files=files)
        job = response.json()
        job["_reused"] = response.headers.get("X-Robustgate-Reused") == "true"
        return Certification(self, job)

    def certification(self, job_id: str) -> Certification:
        return Certification(self, self.status(job_id))

    def status(self, job_id: str) -> dict[str, Any]:
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

    def list_certifications(self, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        return self.request("GET", "/v1/certifications",
                            params={"limit": limit, "offset": offset}).json()

    def scorecard(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/certifications/{job_id}/scorecard").json()

    def certificate(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/certifications/{job_id}/certificate").json()

    def report(self, job_id: str, fmt: str) -> bytes:
        """A rendering: ``html``, ``md`` (PR comment), ``xml`` (JUnit) or ``svg`` (badge)."""
        if fmt not in REPORT_FORMATS:
            raise ValueError(f"report format must be one of {', '.join(REPORT_FORMATS)}")
        return self.request("GET", f"/v1/certifications/{job_id}/report.{fmt}").content

    def cancel(self, job_id: str) -> int:
        """Cancel a running certification (202) or remove a finished one (204)."""
        return self.request("DELETE", f"/v1/certifications/{job_id}").status_code

    def download_reports(self, job_id: str, folder: PathLike) -> list[Path]:
        """report.{html,md,xml,svg}, scorecard.json and certificate.json into ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for fmt in REPORT_FORMATS:
            path = out / f"report.{fmt}"
            path.write_bytes(self.report(job_id, fmt))
            written.append(path)
        path = out / "scorecard.json"
        path.write_text(json.dumps(self.scorecard(job_id), indent=2, sort_keys=True))
        written.append(path)
        try:
            cert = self.certificate(job_id)
        except ApiError as exc:
            if exc.status != 409:  # 409: finished before the service signed scorecards
                raise
        else:
            path = out / "certificate.json"
            path.write_text(json.dumps(cert, indent=2, sort_keys=True, ensure_ascii=False)
                            + "\n", encoding="utf-8")
            written.append(path)
        return written

    # -- public reads -----------------------------------------------------------------------
    def keys(self) -> dict[str, Any]:
        """The signing public keys (``GET /v1/keys``): pin them for offline verification."""
        return self.request("GET", "/v1/keys").json()

    def standards(self) -> list[dict[str, Any]]:
        body = self.request("GET", "/v1/standards").json()
        return body.get("standards", body) if isinstance(body, dict) else body

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/healthz").json()

    # -- tokens (admin) ---------------------------------------------------------------------
    def create_token(self, tenant: str, name: str = "", expires_in_days: float | None = None,
                     admin: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"tenant": tenant, "name": name, "admin": admin}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return self.request("POST", "/v1/tokens", json=body).json()

    def tokens(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/tokens").json()["tokens"]

    def revoke_token(self, token_id: int) -> None:
        self.request("DELETE", f"/v1/tokens/{token_id}")
