"""Model bundles for the tests: one honest bundle and the hostile ones intake must refuse."""

from __future__ import annotations

import io
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import onnx


def external_parts(model_bytes: bytes, location: str = "model.onnx.data") -> tuple[bytes, bytes]:
    """(graph, data): the model saved the way torch's exporter writes a large one, every
    tensor in one external file (size_threshold=0 forces it on a small model)."""
    model = onnx.ModelProto.FromString(model_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / location).parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(model, f"{tmp}/model.onnx", save_as_external_data=True,
                        all_tensors_to_one_file=True, location=location, size_threshold=0)
        return Path(f"{tmp}/model.onnx").read_bytes(), Path(f"{tmp}/{location}").read_bytes()


def zip_of(members: list[tuple[str | zipfile.ZipInfo, bytes]],
           method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": written on purpose
        for name, data in members:
            archive.writestr(name, data, compress_type=method)
    return buf.getvalue()


def bundle(model_bytes: bytes) -> bytes:
    """``zip model.zip model.onnx model.onnx.data``, the documented bundle."""
    graph, data = external_parts(model_bytes)
    return zip_of([("model.onnx", graph), ("model.onnx.data", data)])


def _relocated(model_bytes: bytes, location: str) -> bytes:
    """A bundle whose graph names ``location`` (the data member keeps its honest name)."""
    graph, data = external_parts(model_bytes)
    model = onnx.ModelProto.FromString(graph)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    return zip_of([("model.onnx", model.SerializeToString()), ("model.onnx.data", data)])


def _with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def _hostile() -> dict[str, tuple[Callable[[bytes], bytes], str]]:
    def parts(m: bytes) -> tuple[bytes, bytes]:
        return external_parts(m)

    return {
        "member_traversal": (lambda m: zip_of([("model.onnx", parts(m)[0]),
                                               ("../model.onnx.data", parts(m)[1])]),
                             "leaves the bundle"),
        "absolute_member": (lambda m: zip_of([("model.onnx", parts(m)[0]),
                                              ("/tmp/model.onnx.data", parts(m)[1])]),
                            "not a plain relative path"),
        "symlink_member": (lambda m: zip_of([
            ("model.onnx", parts(m)[0]),
            (_with_mode("model.onnx.data", stat.S_IFLNK | 0o777), b"/etc/passwd")]),
            "is a symlink"),
        "device_member": (lambda m: zip_of([
            ("model.onnx", parts(m)[0]),
            (_with_mode("model.onnx.data", stat.S_IFCHR | 0o644), b"")]),
            "not a regular file"),
        "location_outside": (lambda m: _relocated(m, "../../etc/passwd"),
                             "not a plain relative path inside the bundle"),
        "location_absolute": (lambda m: _relocated(m, "/etc/passwd"),
                              "not a plain relative path inside the bundle"),
        "missing_data_file": (lambda m: zip_of([("model.onnx", parts(m)[0])]),
                              "not in the bundle"),
        "two_graphs": (lambda m: zip_of([("a.onnx", parts(m)[0]), ("b.onnx", parts(m)[0]),
                                         ("model.onnx.data", parts(m)[1])]),
                       "exactly one .onnx graph"),
        "duplicate_names": (lambda m: zip_of([("model.onnx", parts(m)[0]),
                                              ("model.onnx.data", parts(m)[1]),
                                              ("model.onnx.data", parts(m)[1])]),
                            "twice"),
        "zip_bomb": (lambda m: zip_of([("model.onnx", parts(m)[0]),
                                       ("model.onnx.data", parts(m)[1]),
                                       ("padding.bin", bytes(64 << 20))]),
                     "zip bomb"),
        "truncated_data": (lambda m: zip_of([("model.onnx", parts(m)[0]),
                                             ("model.onnx.data", parts(m)[1][:-4])]),
                           "holds"),
    }


HOSTILE = _hostile()


def aliased(model_bytes: bytes, copies: int) -> bytes:
    """A bundle whose every initializer is listed ``copies`` times, all naming the same bytes
    of the data file: small on disk, ``copies`` times its data once inlined."""
    graph, data = external_parts(model_bytes)
    model = onnx.ModelProto.FromString(graph)
    originals = list(model.graph.initializer)
    for k in range(1, copies):
        for tensor in originals:
            twin = model.graph.initializer.add()
            twin.CopyFrom(tensor)
            twin.name = f"{tensor.name}_copy{k}"
    return zip_of([("model.onnx", model.SerializeToString()), ("model.onnx.data", data)])
