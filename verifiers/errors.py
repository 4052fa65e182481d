"""The named errors of the verification library.

Callers catch these, not ``Exception``: an ``IntakeError`` becomes a 4xx for the API and a
clean refusal in a worker; a ``SoundnessError`` is a bug in the tool and must fail loudly.
"""

from __future__ import annotations


class VerifierError(Exception):
    """Base class of every error the library raises on purpose."""


class IntakeError(VerifierError):
    """The uploaded model was refused (not ONNX, unsafe, unsupported shape...)."""


class UnsupportedOpError(IntakeError):
    """An operator the requested analysis cannot handle."""

    def __init__(self, op_type: str, node_name: str = "", detail: str = "") -> None:
        self.op_type = op_type
        self.node_name = node_name
        where = f" at node {node_name!r}" if node_name else ""
        extra = f": {detail}" if detail else ""
        super().__init__(f"unsupported op {op_type}{where}{extra}")


class DataError(VerifierError):
    """The evaluation (or OOD) set was refused."""


class DeviceError(VerifierError):
    """The requested device (``ROBUSTGATE_DEVICE``, ``--device``) does not exist here."""


class StandardError(VerifierError):
    """A standard document is malformed or unknown."""


class SoundnessError(VerifierError):
    """An internal contradiction (e.g. a sample both certified and attacked): a tool bug."""


class Cancelled(VerifierError):
    """The run was cancelled by its owner."""


class ShardTimeout(VerifierError):
    """One shard of a job ran past its time limit."""


class OutOfTime(VerifierError):
    """A call's own time budget ran out (``verify --timeout``); the call that set the budget
    answers 'unknown' with this reason. ``budget`` names that budget, so an enclosing budget
    (or a shard's limit) is never mistaken for it."""

    def __init__(self, reason: str, budget: object) -> None:
        super().__init__(reason)
        self.budget = budget


class TimeLimitReached(VerifierError):
    """The standard's ``time_limit_s`` ran out. Not an error of the job: the check it
    interrupts, and every one after it, is reported INCONCLUSIVE with this reason."""
