"""Peak memory of the API process while a 1 GB upload streams in.

    OMP_NUM_THREADS=1 .venv/bin/python bench/upload_rss.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/upload_rss.py --gb 0.25 --cases chunked-over

A real server (``robustgate serve --workers 0``, embedded default) per case, a multipart
``POST /v1/certifications`` whose big part is generated on the fly in 1 MiB chunks (never held
in memory here either), and a thread sampling the server's resident memory (VmRSS, /proc)
every few milliseconds. Cases:

* ``length-over``: a 1 GB body announced by Content-Length, over the upload limit
  (default 256 MiB per file): refused before it is read.
* ``chunked-over``: the same body chunked (no length): counted while it streams, refused at
  the limit.
* ``just-over``: a chunked 1 GB body just over the limit (the limit is set so that the refusal
  comes after ~1 GB has been read): everything before the refusal streams through the parser.
* ``npz-1g``: a valid-looking 1 GB evaluation set (an uncompressed npz written as a streaming
  zip) under a limit raised to 1.1 GiB: the whole body is parsed and staged, then validated.
* ``model-1g``: a sound 1 GB model (an 8x8-digits MLP, 64 -> H -> H -> 10, zero weights;
  written to a file here first) under a limit raised to 1.1 GiB: accepted, after being parsed,
  checked and run by the validator, a child process of its own (service.validation); parsed
  in the API, as before, it took the API to 1.1 GB.

Printed per case: HTTP status, bytes sent, seconds, the server's RSS before, its peak while
the body streamed, and its peak until the answer (validation included). Goal (issue #20):
peak under 300 MB while a 1 GB upload streams.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.serve import stop  # noqa: E402
from tests.fixtures_service import embedded_settings, start_server  # noqa: E402
from tests.wide_mlp import wide_mlp  # noqa: E402

MiB = 1024 * 1024
CHUNK = MiB
GOAL_MB = 300
CASES = ("length-over", "chunked-over", "just-over", "npz-1g", "model-1g")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler(threading.Thread):
    """Peak RSS of one process, sampled every ``period`` seconds; ``mark()`` closes a phase."""

    def __init__(self, pid: int, period: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak = self.phase_peak = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(self.period)

    def mark(self) -> float:
        self.phase_peak = max(self.peak, rss_mb(self.pid))
        return self.phase_peak

    def stop(self) -> float:
        self._done.set()
        self.join()
        return max(self.peak, rss_mb(self.pid))


def zeros(n: int) -> Iterator[bytes]:
    block = bytes(CHUNK)
    while n > 0:
        yield block[:min(n, CHUNK)]
        n -= CHUNK


def streaming_npz(total: int) -> tuple[int, Iterator[bytes]]:
    """(size, chunks) of an uncompressed npz with x float32 (n, 1, 8, 8) in [0, 0] and y
    int64 zeros, about ``total`` bytes, written the way a streaming zip writer does (CRC and
    sizes in a data descriptor after each member, then the central directory)."""
    n = max(1, total // (64 * 4 + 8))
    members = [("x.npy", _npy_header("<f4", (n, 1, 8, 8)), n * 64 * 4),
               ("y.npy", _npy_header("<i8", (n,)), n * 8)]
    size = sum(30 + len(name) + len(head) + body + 16 + 46 + len(name)
               for name, head, body in members) + 22

    def chunks() -> Iterator[bytes]:
        offset, central = 0, []
        for name, head, body in members:
            local = (b"PK\x03\x04" + _u16(20) + _u16(8) + _u16(0) + _u32(0) + _u32(0) * 3
                     + _u16(len(name)) + _u16(0) + name.encode())
            yield local
            crc, length = zlib.crc32(head), len(head) + body
            yield head
            for block in zeros(body):
                crc = zlib.crc32(block, crc)
                yield block
            yield b"PK\x07\x08" + _u32(crc) + _u32(length) + _u32(length)
            central.append(b"PK\x01\x02" + _u16(20) + _u16(20) + _u16(8) + _u16(0) + _u32(0)
                           + _u32(crc) + _u32(length) + _u32(length) + _u16(len(name))
                           + _u16(0) * 3 + _u16(0) + _u32(0) + _u32(offset) + name.encode())
            offset += len(local) + length + 16
        directory = b"".join(central)
        yield directory + (b"PK\x05\x06" + _u16(0) * 2 + _u16(len(central)) * 2
                           + _u32(len(directory)) + _u32(offset) + _u16(0))

    return size, chunks()


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            yield block


def _npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    return b"\x93NUMPY\x01\x00" + _u16(len(text) + pad + 1) + (text + " " * pad + "\n").encode()


def _u16(v: int) -> bytes:
    return v.to_bytes(2, "little")


def _u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def multipart(big_field: str, big_size: int, big_chunks: Iterator[bytes],
              boundary: str) -> tuple[int, Iterator[bytes]]:
    """A multipart body: the standard, the shipped digits model and eval set, with
    ``big_field`` replaced by the generated part."""
    small = {"model": (ROOT / "examples/digits_cnn.onnx").read_bytes(),
             "data": (ROOT / "examples/digits_eval.npz").read_bytes()}
    parts: list[tuple[bytes, Iterator[bytes] | None, int]] = []
    parts.append((_part_head(boundary, "standard") + b"demo-digits\r\n", None, 0))
    for field in ("model", "data"):
        head = _part_head(boundary, field, f"{field}.bin")
        if field == big_field:
            parts.append((head, big_chunks, big_size))
            parts.append((b"\r\n", None, 0))
        else:
            parts.append((head + small[field] + b"\r\n", None, 0))
    tail = f"--{boundary}--\r\n".encode()
    size = sum(len(h) + n for h, _, n in parts) + len(tail)

    def chunks() -> Iterator[bytes]:
        for head, body, _ in parts:
            yield head
            if body is not None:
                yield from body
        yield tail

    return size, chunks()


def _part_head(boundary: str, name: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    kind = "Content-Type: application/octet-stream\r\n" if filename else ""
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode()


def run_case(case: str, gb: float, folder: Path) -> dict:
    total = int(gb * 1e9)
    env = {}
    if case in ("length-over", "chunked-over"):  # a limit well under the body, whatever the default
        env["ROBUSTGATE_MAX_UPLOAD_BYTES"] = str(total // 4)
    elif case == "just-over":  # body_limit = 2 x upload limit + 1 MiB: refuse ~8 MiB before the end
        env["ROBUSTGATE_MAX_UPLOAD_BYTES"] = str((total - 9 * MiB) // 2)
    elif case in ("npz-1g", "model-1g"):
        env["ROBUSTGATE_MAX_UPLOAD_BYTES"] = str(int(1.1 * 1024**3 * max(gb, 0.01)))
        env["ROBUSTGATE_MAX_SAMPLES_PER_JOB"] = str(10**8)  # the quota is not measured here
        env["ROBUSTGATE_MAX_DECOMPRESSED_BYTES"] = str(int(1.2 * 1024**3 * max(gb, 0.01)))
    handle = start_server(embedded_settings(folder / case, **env), workers=0)
    sent = 0
    try:
        token = handle.token("rss")
        boundary = uuid.uuid4().hex
        if case == "npz-1g":
            npz_size, npz = streaming_npz(total)
            size, body = multipart("data", npz_size, npz, boundary)
        elif case == "model-1g":
            # Zero weights: quick to make at a gigabyte, and as costly to parse and run.
            path = wide_mlp(folder / "wide.onnx", max(16, int((total / 4) ** 0.5)), seed=None)
            size, body = multipart("model", path.stat().st_size, file_chunks(path), boundary)
        else:
            size, body = multipart("model", total, zeros(total), boundary)
        sampler = RssSampler(handle.proc.pid)
        before = rss_mb(handle.proc.pid)
        sampler.start()
        streamed = {"peak": 0.0}

        def counted() -> Iterator[bytes]:
            nonlocal sent
            for chunk in body:
                sent += len(chunk)
                yield chunk
            streamed["peak"] = sampler.mark()  # the whole body is out

        headers = {"Authorization": f"Bearer {token}",
                   "Content-Type": f"multipart/form-data; boundary={boundary}"}
        if case == "length-over":
            headers["Content-Length"] = str(size)
        t0 = time.perf_counter()
        try:
            r = httpx.post(f"{handle.url}/v1/certifications", content=counted(),
                           headers=headers, timeout=900)
            status = f"{r.status_code} {r.text[:90]}"
        except httpx.HTTPError as exc:
            status = f"connection closed by the server ({type(exc).__name__})"
        seconds = time.perf_counter() - t0
        if not streamed["peak"]:
            streamed["peak"] = sampler.mark()
        peak = sampler.stop()
    finally:
        stop([handle.proc])
    return {"case": case, "status": status, "sent_mb": sent / 1e6, "seconds": seconds,
            "before": before, "streaming": streamed["peak"], "peak": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the big part (GB)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rg-rss-") as tmp:
        for case in args.cases:
            row = run_case(case, args.gb, Path(tmp))
            rows.append(row)
            print(f"{row['case']:13s} sent {row['sent_mb']:7.0f} MB in {row['seconds']:5.1f} s; "
                  f"API RSS {row['before']:4.0f} MB before, peak {row['streaming']:5.0f} MB "
                  f"while streaming, {row['peak']:5.0f} MB until the answer; {row['status']}",
                  flush=True)
    print(f"\nGoal (issue #20): peak API RSS under {GOAL_MB} MB while a 1 GB upload streams.")
    for row in rows:
        verdict = "meets" if row["streaming"] < GOAL_MB else "MISSES"
        print(f"  {row['case']:13s} streaming peak {row['streaming']:5.0f} MB: {verdict} the goal;"
              f" with validation {row['peak']:5.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
