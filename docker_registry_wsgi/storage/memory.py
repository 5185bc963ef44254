"""An in-process backend for tests and embedding; its contents vanish with the process."""

from __future__ import annotations

import io
import threading
from bisect import bisect_right
from typing import Iterable, Iterator

from .base import (
    BlobReader,
    KeyNotFound,
    Storage,
    UploadOffsetMismatch,
    check_key,
    check_upload_id,
)

__all__ = ["MemoryStorage"]


class MemoryStorage(Storage):
    """Keeps every object in a dict. Thread-safe; not shared between processes."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._uploads: dict[str, bytearray] = {}
        self._lock = threading.Lock()

    def read(self, key: str) -> bytes:
        try:
            return self._objects[check_key(key)]
        except KeyError:
            raise KeyNotFound(key) from None

    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._objects[check_key(key)] = bytes(data)

    def size(self, key: str) -> int:
        return len(self.read(key))

    def open(self, key: str, offset: int = 0) -> BlobReader:
        data = self.read(key)
        return io.BytesIO(memoryview(data)[offset:])

    def delete(self, key: str) -> bool:
        return self._objects.pop(check_key(key), None) is not None

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        if prefix.strip("/"):
            check_key(prefix.rstrip("/"))
        with self._lock:
            keys = sorted(k[len(prefix) :] for k in self._objects if k.startswith(prefix))
        start = bisect_right(keys, start_after) if start_after is not None else 0
        return iter(keys[start:])

    def create_upload(self, upload_id: str) -> None:
        self._uploads[check_upload_id(upload_id)] = bytearray()

    def _upload(self, upload_id: str) -> bytearray:
        try:
            return self._uploads[check_upload_id(upload_id)]
        except KeyError:
            raise KeyNotFound(upload_id) from None

    def write_upload(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        buffer = self._upload(upload_id)
        if offset > len(buffer):
            raise UploadOffsetMismatch(f"upload {upload_id} holds fewer than {offset} bytes")
        del buffer[offset:]
        try:
            for chunk in chunks:
                buffer += chunk
        except BaseException:
            del buffer[offset:]
            raise
        return len(buffer)

    def commit_upload(self, upload_id: str, key: str, size: int) -> None:
        check_key(key)
        buffer = self._upload(upload_id)
        if size > len(buffer):
            raise UploadOffsetMismatch(f"upload {upload_id} holds fewer than {size} bytes")
        self._objects[key] = bytes(buffer[:size])
        self._uploads.pop(upload_id, None)

    def abort_upload(self, upload_id: str) -> None:
        self._uploads.pop(check_upload_id(upload_id), None)
