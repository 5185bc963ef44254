"""Objects as files below one root folder, committed atomically and durably.

Layout below ``root`` (``~`` cannot occur in a key, see :func:`~.base.check_key`, so these
names never collide with an object, and listings skip them)::

    <key>                        an object
    ~uploads/<id>                an upload's bytes (written in place)
    ~uploads/<id>.state          its current state: size, version, the caller's record (JSON)
    ~tmp/<random>                files being written, renamed or linked into place when whole

An upload is held by an exclusive ``flock`` on its bytes while a request writes, commits or
aborts it; another request meanwhile gets :class:`~.base.UploadConflict` at once rather than
waiting (a client that stops sending a body must not hold up the others). After taking the
lock, a request checks that the file is still the upload's (not committed or aborted while it
waited to lock). A commit hard-links the bytes onto their key, which fails rather than replace
an existing object, then unlinks the upload. ``flock`` covers every process on one host and,
on Linux NFS clients, every host (it is emulated with NFS byte-range locks there).

With ``fsync`` (the default), bytes are flushed before the state that records them, and every
new name (an object, a committed blob, a folder) is flushed into its folder before the call
returns, so after a power loss no link or tag can name an object whose rename was lost.
"""

from __future__ import annotations

import builtins
import base64
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import secrets
import stat
import tempfile
import time
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterable, Iterator

from .base import (
    BlobReader,
    KeyNotFound,
    Storage,
    StorageError,
    StorageFull,
    StorageUnavailable,
    UploadConflict,
    UploadInfo,
    UploadState,
    VersionConflict,
    check_key,
    check_upload_id,
)

__all__ = ["FilesystemStorage"]

_UPLOADS = "~uploads"
_TMP = "~tmp"
_STATE_SUFFIX = ".state"
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class FilesystemStorage(Storage):
    """A backend on a local or shared (NFS) folder.

    Every key is checked by :func:`check_key` before it becomes a path, so no key can name a
    file outside ``root``. See the module docstring for the layout and the locking.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self._prefix = os.path.join(self.root, "")
        self.fsync = fsync
        self._start_writeback = _writeback_starter() if fsync else None
        self._uploads = os.path.join(self.root, _UPLOADS)
        self._tmp = os.path.join(self.root, _TMP)
        try:
            os.makedirs(self._uploads, exist_ok=True)
            os.makedirs(self._tmp, exist_ok=True)
        except OSError:
            pass  # a read-only or missing disk: each call says so when it needs to write

    def _path(self, key: str) -> str:
        key = check_key(key)  # relative, "/"-separated, no "." or ".." parts: below the root
        return self._prefix + (key if os.sep == "/" else key.replace("/", os.sep))

    def _upload_path(self, upload_id: str) -> str:
        return os.path.join(self._uploads, check_upload_id(upload_id))

    # -- objects ----------------------------------------------------------------------------

    def read(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(key) from None

    def write(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> bool:
        path = self._path(key)
        with _os_errors():
            tmp = self._temporary(data)
            try:
                self._make_folder(os.path.dirname(path))
                if if_absent:
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        return False
                else:
                    os.replace(tmp, path)
                self._sync_folder(os.path.dirname(path))
                return True
            finally:
                _unlink(tmp)

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        data = self.read(key)
        return data, _version(data)

    def swap(self, key: str, data: bytes, version: str | None) -> str:
        path = self._path(key)
        with _os_errors():
            tmp = self._temporary(data)
            try:
                self._make_folder(os.path.dirname(path))
                if version is None:
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        raise VersionConflict(f"{key} exists") from None
                else:
                    with _locked(path, key) as current:
                        if _version(current.read()) != version:
                            raise VersionConflict(f"{key} is not at version {version}")
                        os.rename(tmp, path)
                self._sync_folder(os.path.dirname(path))
                return _version(bytes(data))
            finally:
                _unlink(tmp)

    def _temporary(self, data: bytes | bytearray | memoryview) -> str:
        """A new file in ``~tmp`` holding ``data``, flushed to disk; the caller moves it."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self._tmp)
        except FileNotFoundError:
            os.makedirs(self._tmp, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def _make_folder(self, folder: str) -> None:
        """Create ``folder`` and its missing parents, each flushed into its parent."""
        if os.path.isdir(folder):
            return
        parent = os.path.dirname(folder)
        self._make_folder(parent)
        try:
            os.mkdir(folder)
        except FileExistsError:
            return
        self._sync_folder(parent)

    def _sync_folder(self, folder: str) -> None:
        if self.fsync:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def size(self, key: str) -> int:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise KeyNotFound(key) from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyNotFound(key)
        return st.st_size

    def open(self, key: str, offset: int = 0) -> BlobReader:
        try:
            f: BinaryIO = open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(key) from None
        if offset:
            f.seek(offset)
        return f

    def delete(self, key: str) -> bool:
        try:
            os.unlink(self._path(key))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        return True

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        top = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        keys = self._walk(top, "")
        if start_after is None:
            return keys
        return (key for key in keys if key > start_after)

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        top = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        for key, size in self._walk_sizes(top, ""):
            yield key, size

    def _walk_sizes(self, folder: str, relative: str) -> Iterator[tuple[str, int]]:
        """Regular files below ``folder`` with their sizes, from one ``scandir`` pass per folder."""
        try:
            with os.scandir(folder) as scan:
                entries = sorted(
                    (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
                    for entry in scan
                    if entry.name[0] != "~"
                    and (entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False))
                )
        except (FileNotFoundError, NotADirectoryError):
            return
        for name, entry in entries:
            if name.endswith("/"):
                yield from self._walk_sizes(entry.path, relative + name)
                continue
            try:
                yield relative + name, entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue

    def _walk(self, folder: str, relative: str) -> Iterator[str]:
        """Regular files below ``folder`` as keys, in key order."""
        try:
            with os.scandir(folder) as scan:
                # A folder "a" holds keys "a/...", which sort after "a-b" and "a.b": sort "a/".
                # Names starting with "~" are uploads and temporary files, never keys.
                entries: list[tuple[str, str | None]] = []
                for entry in scan:
                    if entry.name[0] == "~":
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        entries.append((entry.name + "/", entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        entries.append((entry.name, None))
        except (FileNotFoundError, NotADirectoryError):
            return
        entries.sort()
        for name, path in entries:
            if path is None:
                yield relative + name
            else:
                yield from self._walk(path, relative + name)

    # -- uploads ----------------------------------------------------------------------------

    def create_upload(self, upload_id: str, meta: bytes) -> UploadState:
        state = UploadState(0, secrets.token_hex(8), bytes(meta))
        with _os_errors():
            try:
                os.makedirs(self._uploads, exist_ok=True)
                with open(self._upload_path(upload_id), "xb"):
                    pass
            except FileExistsError:
                raise UploadConflict(f"upload {upload_id} exists") from None
            self._save_state(upload_id, state)
        return state

    def upload_state(self, upload_id: str) -> UploadState:
        path = self._upload_path(upload_id) + _STATE_SUFFIX
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read())
            return UploadState(int(doc["size"]), str(doc["version"]), base64.b64decode(doc["meta"]))
        except FileNotFoundError:
            raise KeyNotFound(upload_id) from None
        except (ValueError, KeyError, TypeError):
            raise StorageError(f"upload {upload_id} has an unreadable state") from None

    def _save_state(self, upload_id: str, state: UploadState) -> None:
        document = {"size": state.size, "version": state.version,
                    "meta": base64.b64encode(state.meta).decode()}
        tmp = self._temporary(json.dumps(document).encode())
        try:
            os.replace(tmp, self._upload_path(upload_id) + _STATE_SUFFIX)
        finally:
            _unlink(tmp)

    @contextmanager
    def _held(self, upload_id: str, version: str | None) -> Iterator[tuple[BinaryIO, UploadState]]:
        """The upload's bytes under an exclusive lock, and its state, checked against ``version``."""
        path = self._upload_path(upload_id)
        try:
            f = open(path, "r+b")
        except FileNotFoundError:
            raise KeyNotFound(upload_id) from None
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UploadConflict(f"upload {upload_id} is in use by another request") from None
            # Committed or aborted between our open and our lock: the file is no longer the upload.
            try:
                current = os.stat(path)
            except FileNotFoundError:
                raise KeyNotFound(upload_id) from None
            opened = os.fstat(f.fileno())
            if (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev):
                raise KeyNotFound(upload_id)
            state = self.upload_state(upload_id)
            if version is not None and state.version != version:
                raise UploadConflict(f"upload {upload_id} is not at version {version}")
            yield f, state

    def write_upload(
        self, upload_id: str, version: str, chunks: Iterable[bytes], meta: Callable[[], bytes]
    ) -> UploadState:
        with _os_errors(), self._held(upload_id, version) as (f, state):
            offset = state.size
            if offset > os.fstat(f.fileno()).st_size:
                raise StorageError(f"upload {upload_id} holds fewer bytes than its state records")
            f.truncate(offset)
            f.seek(offset)
            start_writeback, fd = self._start_writeback, f.fileno()
            flushed = position = offset
            try:
                for chunk in chunks:
                    f.write(chunk)
                    position += len(chunk)
                    if start_writeback is not None and position - flushed >= _WRITEBACK_STEP:
                        # Let the disk write while the next chunks are received and hashed,
                        # so the fsync at commit has little left to wait for.
                        f.flush()
                        start_writeback(fd, flushed, position - flushed)
                        flushed = position
                f.flush()
                if self.fsync and position != offset:
                    os.fdatasync(fd)
            except BaseException:
                f.truncate(offset)
                raise
            new = UploadState(position, secrets.token_hex(8), bytes(meta()))
            self._save_state(upload_id, new)
            return new

    def open_upload(self, upload_id: str, version: str) -> BlobReader:
        # Writes never change the bytes below the size of the version they continue, so the
        # prefix stays as it is without holding the lock while the caller reads.
        with self._held(upload_id, version) as (_, state):
            reader = open(self._upload_path(upload_id), "rb")
        return _Prefix(reader, state.size)

    def commit_upload(self, upload_id: str, version: str, key: str) -> bool:
        target = self._path(key)
        with _os_errors(), self._held(upload_id, version) as (f, state):
            size = os.fstat(f.fileno()).st_size
            if size < state.size:
                raise StorageError(f"upload {upload_id} holds fewer bytes than its state records")
            if size > state.size:
                f.truncate(state.size)
            if self.fsync:
                os.fsync(f.fileno())
            self._make_folder(os.path.dirname(target))
            path = self._upload_path(upload_id)
            try:
                os.link(path, target)
                created = True
            except FileExistsError:
                created = False
            if created:
                self._sync_folder(os.path.dirname(target))
            # The state goes first: without it the bytes are a leftover that purging reclaims.
            _unlink(path + _STATE_SUFFIX)
            _unlink(path)
            return created

    def abort_upload(self, upload_id: str) -> None:
        try:
            with self._held(upload_id, None):
                self._remove_upload(upload_id)
        except (KeyNotFound, StorageError) as exc:
            if isinstance(exc, UploadConflict):
                raise
            self._remove_upload(upload_id)  # bytes without a state, or a state without bytes

    def _remove_upload(self, upload_id: str) -> None:
        path = self._upload_path(upload_id)
        _unlink(path + _STATE_SUFFIX)
        _unlink(path)

    def list_uploads(self) -> Iterator[UploadInfo]:
        latest: dict[str, float] = {}
        if not os.path.isdir(self._uploads):
            return iter([])
        with os.scandir(self._uploads) as scan:
            for entry in scan:
                upload_id = entry.name.removesuffix(_STATE_SUFFIX)
                try:
                    modified = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue
                latest[upload_id] = max(modified, latest.get(upload_id, 0.0))
        return iter([UploadInfo(i, latest[i]) for i in sorted(latest)])

    def purge_uploads(self, idle: float, *, now: float | None = None) -> builtins.list[str]:
        """Drop uploads idle for ``idle`` seconds (checked again under each one's lock) and
        temporary files as old, left by writes that never finished (a crash)."""
        cutoff = (time.time() if now is None else now) - idle
        purged = []
        for info in list(self.list_uploads()):
            if info.last_activity >= cutoff or not _is_upload_id(info.upload_id):
                continue
            try:
                with self._held(info.upload_id, None):
                    if self._last_activity(info.upload_id) >= cutoff:
                        continue
                    self._remove_upload(info.upload_id)
            except UploadConflict:
                continue  # being written right now
            except (KeyNotFound, StorageError):
                self._remove_upload(info.upload_id)  # bytes without state, or state without bytes
            purged.append(info.upload_id)
        if not os.path.isdir(self._tmp):
            return purged
        with os.scandir(self._tmp) as scan:
            for entry in scan:
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        _unlink(entry.path)
                except FileNotFoundError:
                    continue
        return purged

    def _last_activity(self, upload_id: str) -> float:
        path = self._upload_path(upload_id)
        times = []
        for name in (path, path + _STATE_SUFFIX):
            try:
                times.append(os.stat(name).st_mtime)
            except FileNotFoundError:
                continue
        return max(times, default=0.0)

    def file_path(self, key: str) -> str:
        """The local path of ``key`` (whether or not it exists)."""
        return self._path(key)


class _Prefix:
    """The first ``size`` bytes of a file, for :meth:`FilesystemStorage.open_upload`."""

    def __init__(self, reader: BinaryIO, size: int) -> None:
        self._reader, self._left = reader, size

    def read(self, size: int = -1, /) -> bytes:
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        data = self._reader.read(wanted) if wanted > 0 else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._reader.close()


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@contextmanager
def _locked(path: str, key: str) -> Iterator[BinaryIO]:
    """The object at ``path`` opened and held with an exclusive ``flock``, for a compare-and-swap.

    Every swap replaces the file by a rename, so one that waited for the lock may now hold a
    file that is no longer the object: it opens the new one and waits again.
    """
    while True:
        try:
            f = open(path, "r+b")
        except (FileNotFoundError, NotADirectoryError):
            raise VersionConflict(f"{key} does not exist") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                raise VersionConflict(f"{key} does not exist") from None
            opened = os.fstat(f.fileno())
            if (current.st_ino, current.st_dev) == (opened.st_ino, opened.st_dev):
                yield f
                return
        finally:
            f.close()


def _is_upload_id(name: str) -> bool:
    try:
        check_upload_id(name)
    except ValueError:
        return False
    return True


@contextmanager
def _os_errors() -> Iterator[None]:
    """Turn a full or read-only disk into the protocol's errors; other OS errors pass through."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL:
            raise StorageFull(f"no space left for the registry's storage: {exc.strerror}") from None
        if exc.errno == errno.EROFS:
            raise StorageUnavailable("the registry's storage is read-only") from None
        raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


#: Bytes written between two requests to start writing an upload back to disk.
_WRITEBACK_STEP = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _writeback_starter() -> Callable[[int, int, int], object] | None:
    """Linux's ``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)``, or ``None`` elsewhere.

    It starts writing a range of dirty pages to disk without waiting. A 512 MiB upload then
    fsyncs in 0.02 s at commit instead of 0.4 s, because the disk wrote while the bytes were
    still arriving. Advisory: its result is ignored, and only a missing function disables it.
    """
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return lambda fd, offset, length: function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
