"""An in-process backend for tests and embedding; its contents vanish with the process."""

from __future__ import annotations

import builtins
import hashlib
import io
import secrets
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from .base import (
    BlobReader,
    KeyNotFound,
    Storage,
    UploadConflict,
    UploadInfo,
    VersionConflict,
    UploadState,
    check_key,
    check_upload_id,
)

__all__ = ["MemoryStorage"]


@dataclass
class _Upload:
    """An upload's bytes and current state; ``busy`` while a request writes or commits it."""

    state: UploadState
    data: bytearray = field(default_factory=bytearray)
    busy: bool = False
    sealed: bool = False
    activity: float = field(default_factory=time.time)


class MemoryStorage(Storage):
    """Keeps every object in a dict, for one process; each call is atomic under one lock.

    ``clock`` gives upload activity times (tests inject one to purge without waiting).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._objects: dict[str, bytes] = {}
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def read(self, key: str) -> bytes:
        try:
            return self._objects[check_key(key)]
        except KeyError:
            raise KeyNotFound(key) from None

    def write(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> bool:
        check_key(key)
        value = bytes(data)
        with self._lock:
            if if_absent and key in self._objects:
                return False
            self._objects[key] = value
        return True

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        data = self.read(key)
        return data, _version(data)

    def swap(self, key: str, data: bytes, version: str | None) -> str:
        check_key(key)
        value = bytes(data)
        with self._lock:
            current = self._objects.get(key)
            if (None if current is None else _version(current)) != version:
                raise VersionConflict(f"{key} is not at version {version}")
            self._objects[key] = value
        return _version(value)

    def size(self, key: str) -> int:
        return len(self.read(key))

    def open(self, key: str, offset: int = 0) -> BlobReader:
        data = self.read(key)
        return io.BytesIO(memoryview(data)[offset:])

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return self._objects.pop(key, None) is not None

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        if prefix.strip("/"):
            check_key(prefix.rstrip("/"))
        with self._lock:
            keys = sorted(k[len(prefix) :] for k in self._objects if k.startswith(prefix))
        start = bisect_right(keys, start_after) if start_after is not None else 0
        return iter(keys[start:])

    # -- uploads ----------------------------------------------------------------------------

    def create_upload(self, upload_id: str, meta: bytes) -> UploadState:
        check_upload_id(upload_id)
        state = UploadState(0, secrets.token_hex(8), bytes(meta))
        with self._lock:
            if upload_id in self._uploads:
                raise UploadConflict(f"upload {upload_id} exists")
            self._uploads[upload_id] = _Upload(state, activity=self._clock())
        return state

    def upload_state(self, upload_id: str) -> UploadState:
        with self._lock:
            return self._find(upload_id).state

    def _find(self, upload_id: str) -> _Upload:
        try:
            return self._uploads[check_upload_id(upload_id)]
        except KeyError:
            raise KeyNotFound(upload_id) from None

    def _hold(self, upload_id: str, version: str) -> _Upload:
        """Mark the upload busy for this caller, if it is at ``version`` and free."""
        with self._lock:
            upload = self._find(upload_id)
            if upload.busy:
                raise UploadConflict(f"upload {upload_id} is in use by another request")
            if upload.state.version != version:
                raise UploadConflict(f"upload {upload_id} is not at version {version}")
            upload.busy = True
            return upload

    def _release(self, upload_id: str, upload: _Upload) -> None:
        with self._lock:
            upload.busy = False

    def write_upload(
        self, upload_id: str, version: str, chunks: Iterable[bytes], meta: Callable[[], bytes]
    ) -> UploadState:
        upload = self._hold(upload_id, version)
        try:
            if upload.sealed:
                raise UploadConflict(f"upload {upload_id} is being committed")
            data, start = upload.data, upload.state.size
            del data[start:]
            try:
                for chunk in chunks:
                    data += chunk
                    upload.activity = self._clock()
            except BaseException:
                del data[start:]
                raise
            state = UploadState(len(data), secrets.token_hex(8), bytes(meta()))
            with self._lock:
                if self._uploads.get(upload_id) is not upload:
                    raise KeyNotFound(upload_id)
                upload.state = state
                upload.activity = self._clock()
            return state
        finally:
            self._release(upload_id, upload)

    def open_upload(self, upload_id: str, version: str) -> BlobReader:
        upload = self._hold(upload_id, version)
        try:
            upload.sealed = True
            return io.BytesIO(bytes(upload.data[: upload.state.size]))
        finally:
            self._release(upload_id, upload)

    def commit_upload(self, upload_id: str, version: str, key: str) -> bool:
        check_key(key)
        upload = self._hold(upload_id, version)
        with self._lock:
            self._uploads.pop(upload_id, None)
            if key in self._objects:
                return False
            self._objects[key] = bytes(upload.data[: upload.state.size])
            return True

    def abort_upload(self, upload_id: str) -> None:
        check_upload_id(upload_id)
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and upload.busy:
                raise UploadConflict(f"upload {upload_id} is in use by another request")
            self._uploads.pop(upload_id, None)

    def list_uploads(self) -> Iterator[UploadInfo]:
        with self._lock:
            infos = [UploadInfo(i, u.activity) for i, u in sorted(self._uploads.items())]
        return iter(infos)

    def purge_uploads(self, idle: float, *, now: float | None = None) -> builtins.list[str]:
        cutoff = (self._clock() if now is None else now) - idle
        with self._lock:
            stale = [i for i, u in self._uploads.items() if u.activity < cutoff and not u.busy]
            for upload_id in stale:
                del self._uploads[upload_id]
        return sorted(stale)


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]
