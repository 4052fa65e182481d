"""Model bundles: one zip holding an ONNX graph and the files its external data lives in.

``torch.onnx.export`` writes large models as ``model.onnx`` plus ``model.onnx.data``, and a
graph over 2 GB must keep its weights outside the protobuf. A bare ``.onnx`` naming external
files is refused (it could point anywhere on the server: CVE-2022-25882); a bundle is
accepted because every reference is resolved inside its own unpacked copy:

1. the zip is extracted into a private temporary directory (:mod:`verifiers.model.archive`);
2. the one ``.onnx`` member is parsed and screened in Python before any onnx C++ code runs;
3. every external reference must name a member of the bundle (a plain relative path, no
   ``..``), with an offset and length inside that file and a length that matches the
   tensor's declared shape;
4. only then are the bytes read into the graph, which leaves as one self-contained model:
   everything after intake sees what an inline upload would give.
"""

from __future__ import annotations

import posixpath
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, external_data_helper

from verifiers.errors import IntakeError
from verifiers.model.archive import ArchiveLimits, extract, safe_name
from verifiers.model.limits import IntakeLimits
from verifiers.model.screen import ITEMSIZE, all_tensors, screen

GRAPH_SUFFIX = ".onnx"
_KEYS = frozenset({"location", "offset", "length", "checksum"})
# Protobuf cannot serialize a message over 2 GB: the inlined model must stay under it.
PROTOBUF_LIMIT = (1 << 31) - 1


def read_bundle(raw: bytes, limits: IntakeLimits) -> bytes:
    """Zip bundle bytes -> the serialized, self-contained model (external data inlined)."""
    archive_limits = ArchiveLimits(max_total=min(limits.max_bytes, PROTOBUF_LIMIT))
    with tempfile.TemporaryDirectory(prefix="robustgate-bundle-") as tmp:
        root = Path(tmp)
        names = extract(raw, root, archive_limits)
        graph_name = _graph_member(names)
        try:
            model = onnx.ModelProto.FromString((root / graph_name).read_bytes())
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise IntakeError(f"bundle graph {graph_name!r} is not a valid ONNX protobuf: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else exc}") from exc
        # The graph's own tensors are screened before any external byte is read.
        screen(model, limits, external=True)
        data_files = {n: (root / n).stat().st_size for n in names if n != graph_name}
        base = posixpath.dirname(graph_name)  # references are relative to the graph
        # Summed before reading: many tensors naming one region would otherwise inflate a
        # small bundle into many copies of it in memory.
        referenced = sum(_check_reference(t, base, data_files)
                         for t in all_tensors(model) if _is_external(t))
        if referenced + model.ByteSize() > archive_limits.max_total:
            raise IntakeError(f"bundle model would be {referenced + model.ByteSize()} bytes once "
                              f"its data is inlined, over the limit of "
                              f"{archive_limits.max_total} bytes")
        try:
            external_data_helper.load_external_data_for_model(model, str(root / base))
        except Exception as exc:  # OSError, ValueError, onnx's ValidationError: checked above
            raise IntakeError(f"external data cannot be read: {exc}") from exc
    for tensor in all_tensors(model):
        # DEFAULT is the field's default: cleared, the model serializes byte for byte as
        # the same model saved inline would.
        if tensor.HasField("data_location") and tensor.data_location == TensorProto.DEFAULT:
            tensor.ClearField("data_location")
    if model.ByteSize() > archive_limits.max_total:
        raise IntakeError(f"bundle model is {model.ByteSize()} bytes once its data is inlined, "
                          f"over the limit of {archive_limits.max_total} bytes")
    return model.SerializeToString()


def _graph_member(names: list[str]) -> str:
    graphs = [n for n in names if n.lower().endswith(GRAPH_SUFFIX)]
    if len(graphs) != 1:
        found = ", ".join(repr(g) for g in graphs[:5]) or "none"
        raise IntakeError(f"model bundle must hold exactly one {GRAPH_SUFFIX} graph, it holds "
                          f"{len(graphs)} ({found})")
    return graphs[0]


def _is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _check_reference(tensor: TensorProto, base: str, data_files: dict[str, int]) -> int:
    """The tensor's external reference names a data member of the bundle, in bounds; the
    bytes it reads."""
    name = tensor.name[:200]
    if tensor.data_location != TensorProto.EXTERNAL or tensor.HasField("raw_data"):
        raise IntakeError(f"tensor {name!r} mixes external data with inline data")
    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key not in _KEYS or entry.key in entries:
            raise IntakeError(f"tensor {name!r} has an unknown or repeated external data "
                              f"key {entry.key[:50]!r}")
        entries[entry.key] = entry.value
    location = entries.get("location", "")
    try:
        relative = safe_name(location)
    except IntakeError:
        raise IntakeError(f"tensor {name!r} references external data at {location[:200]!r}, "
                          "which is not a plain relative path inside the bundle") from None
    member = posixpath.join(base, str(relative))
    if member not in data_files:
        raise IntakeError(f"tensor {name!r} references external file {location[:200]!r}, "
                          "which is not in the bundle")
    size = data_files[member]
    offset = _int(entries.get("offset", "0"), name, "offset")
    length = _int(entries["length"], name, "length") if "length" in entries else size - offset
    if offset + length > size:
        raise IntakeError(f"tensor {name!r} reads bytes {offset}..{offset + length} of "
                          f"{location!r}, which holds {size}")
    itemsize = ITEMSIZE.get(tensor.data_type)
    expected = None if itemsize is None else _count(tensor) * itemsize
    if expected is None or length != expected:
        raise IntakeError(f"tensor {name!r} declares {list(tensor.dims)} (data type "
                          f"{tensor.data_type}) but its external data holds {length} bytes")
    return length


def _count(tensor: TensorProto) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count


def _int(text: str, tensor: str, key: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise IntakeError(f"tensor {tensor!r} has a non-integer external data {key} "
                          f"{text[:50]!r}") from None
    if value < 0:
        raise IntakeError(f"tensor {tensor!r} has a negative external data {key}")
    return value
