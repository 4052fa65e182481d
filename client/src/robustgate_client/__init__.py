"""Light client for a Robustgate server (dependencies: httpx and cryptography).

    from robustgate_client import Client
    result = Client(url, token).submit("model.onnx", "eval.npz", "demo-digits").wait()
    result.verdict       # "PASS" | "FAIL" | "INCONCLUSIVE"
    result.scorecard     # the full scorecard (dict)
"""

from __future__ import annotations

from robustgate_client.api import (
    ApiError,
    Certification,
    CertificationFailed,
    Client,
    Result,
    RobustgateError,
    ServerUnreachable,
    WaitTimeout,
)
from robustgate_client.certificate import CertificateError, Verified, verify_file

__all__ = ["ApiError", "CertificateError", "Certification", "CertificationFailed", "Client",
           "Result", "RobustgateError", "ServerUnreachable", "Verified", "WaitTimeout",
           "__version__", "verify_file"]


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return "0.1.0"
    try:
        return version("robustgate-client")
    except PackageNotFoundError:
        return "0.1.0"


__version__ = _version()
