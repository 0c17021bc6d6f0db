"""The broker `make run` uses when no server is configured: message files under var/broker.

kombu's filesystem transport opens a message file, then writes it, and the consumer
lists the folder and reads whatever it finds: a consumer that polls between the open
and the write reads an empty file, fails to parse it and stops the worker for good
(celery/kombu#1551; seen with eight producers within minutes). Its table of fan-out
queues is rewritten in place the same way, so a broadcast can read it empty too.

This transport keeps kombu's folder layout and polling but never lets a reader see a
file being written: a message is written under a name no consumer looks at and then
renamed into place (rename is atomic on one filesystem), and a consumer claims a
message by renaming it into a folder beside the queue, on the same filesystem, so two
consumers never both take one. The exchange tables are replaced the same way under a
lock. Chosen over kombu's SQLAlchemy transport on SQLite because that adds a library
and a second SQLite writer beside the portal's own database, and over Redis because
the embedded default must need no server.

Nothing here is a store of record: the database is. A message that cannot be parsed
is logged and dropped rather than stopping the worker; the sweeper re-queues any
delivery whose task was lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

# Where a consumer moves the message it takes; a sub-folder of the queue folder, so the move is a rename.
CLAIMED_FOLDER = ".claimed"


def _write_atomically(path: str, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either nothing or all of it."""
    folder, name = os.path.split(path)
    # A leading dot and no ".msg" ending: no consumer lists it as a message while it is written.
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


class Channel(filesystem.Channel):
    """kombu's filesystem channel with atomic writes, atomic claims and atomic exchange tables."""

    def _put(self, queue: str, payload: dict, **kwargs) -> None:
        # Same name pattern as kombu's (sorted by time, then unique), so `_size` and `_purge` still work.
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        try:
            _write_atomically(os.path.join(self.data_folder_out, name), str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add message {name!r} to {self.data_folder_out}") from exc

    def _get(self, queue: str) -> dict:
        wanted = f"{queue}.msg"
        claimed_folder = os.path.join(self.data_folder_in, CLAIMED_FOLDER)
        os.makedirs(claimed_folder, exist_ok=True)
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(claimed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:
                continue  # another consumer took it first
            try:
                with open(claimed, "rb") as file:
                    payload = file.read()
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(claimed)
            try:
                return loads(bytes_to_str(payload))
            except ValueError:
                # Cannot happen with this transport's own writes; a stray file must not stop the worker.
                logger.error("embedded broker: dropped unreadable message %s (%d bytes)", name, len(payload))
        raise Empty()

    @contextlib.contextmanager
    def _table_lock(self, exchange: str) -> Iterator[None]:
        self.control_folder.mkdir(parents=True, exist_ok=True)
        lock_path = self._exchange_file(exchange).with_suffix(".lock")
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def _write_table(self, exchange: str, queues: list) -> None:
        _write_atomically(str(self._exchange_file(exchange)), str_to_bytes(dumps(queues)))

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange):
            queues = self.get_table(exchange)
            if entry not in queues:
                self._write_table(exchange, [entry, *queues])

    def _delete(self, queue: str, exchange: str, routing_key: str, pattern: str, *args, **kwargs) -> None:
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange):
            queues = self.get_table(exchange)
            if entry in queues:
                self._write_table(exchange, [q for q in queues if q != entry])


class Transport(filesystem.Transport):
    """The `embedded://` broker URL."""

    Channel = Channel
    driver_type = "embedded"
    driver_name = "embedded"


def register() -> None:
    """Make `embedded://` in a broker URL select this transport (the Celery app calls this as it loads)."""
    TRANSPORT_ALIASES.setdefault("embedded", f"{__name__}:Transport")
