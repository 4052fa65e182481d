"""kombu's filesystem transport (the embedded broker), with message priorities.

kombu's filesystem channel names a message file "<ms>_<uuid>.<queue>.msg" and consumes the
first one in sorted name order: FIFO, priority ignored. This channel puts the priority first
("<p>-<ms, 16 digits>_<uuid>.<queue>.msg"), so the sorted order is priority 0 first and FIFO
within a priority: the order kombu's Redis transport gives (one list per priority level,
0 read first). Nothing else of the transport changes (still no dot before the queue name,
which is how kombu and service.broker.queued_task_ids tell the queue of a file).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# Celery's broker_transport setting names this class when the broker URL is filesystem://.
TRANSPORT = "workers.fs_broker:Transport"


def message_filename(priority: int, queue: str) -> str:
    return f"{priority}-{round(monotonic() * 1000):016d}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put ``payload`` onto ``queue`` (kombu's code, with the priority in the name)."""
        filename = os.path.join(self.data_folder_out,
                                message_filename(self._get_message_priority(payload), queue))
        f = None
        try:
            f = open(filename, "wb", buffering=0)  # noqa: SIM115 - locked, closed below
            filesystem.lock(f, filesystem.LOCK_EX)
            f.write(str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {filename!r} to directory") from exc
        finally:
            if f is not None:
                filesystem.unlock(f)
                f.close()


class Transport(filesystem.Transport):
    Channel = Channel
