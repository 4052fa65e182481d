"""The one device a run's tensors live on: chosen once, declared, recorded in the scorecard.

``auto`` (or empty) takes the first CUDA device when there is one, else the CPU; ``cpu``,
``cuda`` and ``cuda:N`` are taken as asked, and a CUDA device that is not there is refused
at once (a worker must not start, or a run begin, and then fail on its first tensor).
"""

from __future__ import annotations

from typing import Any

import torch

from verifiers.errors import DeviceError

AUTO = ("", "auto")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """The torch device for a setting (``ROBUSTGATE_DEVICE``, ``--device``)."""
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name.strip().lower() in AUTO:
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name.strip().lower())
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but CUDA is not available here "
                              f"(torch {torch.__version__})")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    if device.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    return device


def describe(device: torch.device) -> dict[str, Any]:
    """What a scorecard and a worker's hello say about the device (name and memory on CUDA)."""
    info: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"gpu": props.name, "gpu_memory_bytes": int(props.total_memory),
                 "cuda": torch.version.cuda}
    return info
