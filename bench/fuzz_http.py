"""Fuzz the HTTP layer of a live API: malformed multipart bodies, headers and JSON fields.

Every answer must be a JSON error (4xx) or a success, promptly; the failures counted are a 5xx,
a non-JSON error body under /v1, no answer (reset, timeout), the server dying, and an
accepted request after which the server's peak memory (VmHWM) went over the cap ("accepted,
costly").
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class HttpCase:
    index: int
    what: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str,
               rng: random.Random) -> bytes:
    out = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"'
                                                      if filename is not None else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
                   + data + b"\r\n")
    body = b"".join(out) + f"--{boundary}--\r\n".encode()
    if rng.random() < 0.3:  # break the framing
        cut = rng.randrange(len(body))
        body = rng.choice([body[:cut], body[:cut] + body[cut + 1:],
                           body.replace(b"\r\n", b"\n", rng.randint(1, 4)),
                           body.replace(boundary.encode(), b"x" * 8, 1)])
    return body


HOSTILE_VALUES = ["", " ", "0", "-1", "1e309", "nan", "inf", "9" * 400, "\x00", "é" * 50,
                  "demo-digits\r\nX-Injected: 1", "../../etc/passwd", "{}", "[]", "null",
                  "A" * 70_000]


def http_cases(n: int, token: str, seed: int = 0) -> Iterator[HttpCase]:
    rng = random.Random(seed)
    model = (ROOT / "examples/digits_cnn.onnx").read_bytes()
    data = (ROOT / "examples/digits_eval.npz").read_bytes()
    auth = {"Authorization": f"Bearer {token}"}
    for i in range(n):
        kind = rng.choice(["multipart", "multipart", "multipart", "headers", "json",
                           "standard", "path", "query"])
        boundary = rng.choice([uuid.uuid4().hex, "x", "-" * 70, "a b", "\u00e9"])
        if kind == "multipart":
            fields: list[tuple[str, str | None, bytes]] = [
                ("model", "m.onnx", model), ("data", "d.npz", data),
                ("standard", None, b"demo-digits")]
            for _ in range(rng.randint(1, 3)):
                op = rng.choice(["drop", "dup", "value", "filename", "junk-file", "many"])
                if op == "drop" and fields:
                    fields.pop(rng.randrange(len(fields)))
                elif op == "dup" and fields:
                    fields.append(rng.choice(fields))
                elif op == "value":
                    name = rng.choice(["standard", "seed", "input_low", "input_high",
                                       "input_mean", "input_std"])
                    fields.append((name, None, rng.choice(HOSTILE_VALUES).encode(
                        "utf-8", "surrogatepass")))
                elif op == "filename" and fields:
                    name, _, value = fields.pop(0)
                    fields.append((name, rng.choice(["", "../../x", "a\x00b", "é" * 300]),
                                   value))
                elif op == "junk-file":
                    fields.append((rng.choice(["model", "data", "ood"]), "j.bin",
                                   rng.randbytes(rng.choice([0, 1, 100, 50_000]))))
                else:
                    fields += [(f"f{k}", None, b"v") for k in range(rng.choice([50, 2000]))]
            body = _multipart(fields, boundary, rng)
            ctype = rng.choice([f"multipart/form-data; boundary={boundary}",
                                "multipart/form-data", "multipart/form-data; boundary=",
                                "application/json", "text/plain", ""])
            yield HttpCase(i, f"multipart ({ctype[:30]})", "POST", "/v1/certifications",
                           auth | {"Content-Type": ctype}, body)
        elif kind == "headers":
            headers = rng.choice([
                {"Authorization": "Bearer"}, {"Authorization": "Bearer " + "x" * 10_000},
                {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "bearer  " + token},
                auth | {"Content-Length": "-5"}, auth | {"Content-Length": "99999999999999"},
                auth | {"Content-Length": "abc"}, auth | {"If-None-Match": "*" * 5000},
                auth | {"Transfer-Encoding": "chunked, gzip"}, auth | {"Accept": "\x7f"},
                {"Authorization": f"Bearer {token}\u00e9"}])
            method, path = rng.choice([("GET", "/v1/certifications"),
                                       ("POST", "/v1/certifications"),
                                       ("GET", f"/v1/certifications/{uuid.uuid4()}")])
            yield HttpCase(i, f"headers {sorted(headers)}", method, path, headers,
                           b"" if method == "GET" else b"x" * rng.choice([0, 10]))
        elif kind == "json":
            body = rng.choice([{"tenant": rng.choice(HOSTILE_VALUES)},
                               {"tenant": "t", "expires_in_days": rng.choice(
                                   [-1, 0, 10**12, 1e309, "x", None])},
                               {"tenant": ["a"]}, [], "x", {"tenant": "t", "admin": "yes"}])
            raw = json.dumps(body).encode() if rng.random() < 0.8 else b'{"tenant": "t"'
            yield HttpCase(i, "json /v1/tokens", "POST", "/v1/tokens",
                           auth | {"Content-Type": "application/json"}, raw)
        elif kind == "standard":
            text = rng.choice(["name: [", "a: &a [*a]", "\x00", "name: x\nversion: 1e400",
                               "version: 99999999999999999999999\nname: x",
                               "é" * 100_000, "- " * 50_000])
            yield HttpCase(i, "yaml /v1/standards", "POST", "/v1/standards",
                           auth | {"Content-Type": "application/yaml"},
                           text.encode("utf-8", "surrogatepass"))
        elif kind == "path":
            path = rng.choice(["/v1/certifications/" + "a" * 5000, "/v1/certifications/%00",
                               "/v1/certifications/..%2F..%2Fetc", "/v1/certifications/'; --",
                               "/v1/standards/" + "é" * 100, "/v1/certifications/x/scorecard"])
            yield HttpCase(i, "path", rng.choice(["GET", "DELETE"]), path, auth, b"")
        else:
            query = rng.choice(["limit=-1", "limit=99999999999999999999", "offset=-5",
                                "limit=nan", "limit=1&limit=2", "offset=" + "9" * 100])
            yield HttpCase(i, "query", "GET", f"/v1/certifications?{query}", auth, b"")


def send(url: str, case: HttpCase, timeout: float) -> tuple[str, str, str]:
    """(status, reason, message) for one request, written byte for byte on a socket (an HTTP
    client library would refuse to send half of these: bad lengths, raw control bytes)."""
    host, port = url.removeprefix("http://").split(":")
    head = [f"{case.method} {case.path} HTTP/1.1", f"Host: {host}:{port}",
            "Connection: close"]
    if "Content-Length" not in case.headers and "Transfer-Encoding" not in case.headers:
        head.append(f"Content-Length: {len(case.body)}")
    head += [f"{k}: {v}" for k, v in case.headers.items()]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogatepass") + case.body
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            # The server may answer (413) and close before reading everything.
            with contextlib.suppress(OSError):
                sock.sendall(raw)
            answer = _read_all(sock)
    except OSError as exc:
        return "error", f"no answer ({type(exc).__name__})", str(exc)[:200]
    if not answer:
        return "error", "no answer (closed)", ""
    try:
        status = int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return "error", "not HTTP", answer[:200].decode("latin-1")
    body = answer.partition(b"\r\n\r\n")[2]
    text = body[:200].decode("utf-8", "replace")
    if status >= 500:
        return "error", f"HTTP {status}", text
    if status >= 400:
        if status == 400 and body.startswith(b"Invalid HTTP request"):
            # the HTTP server's own refusal of bytes it cannot parse: the app never saw them
            return "refused", "HTTP 400 by the HTTP server", text
        try:
            json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return "error", f"HTTP {status}, not a JSON error", text
        return "refused", f"HTTP {status}", text
    return "accepted", f"HTTP {status}", text[:120]


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass  # after a complete answer, a reset is the server dropping unread bytes
    return b"".join(chunks)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident memory so far (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
