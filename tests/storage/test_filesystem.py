"""The storage conformance suite on :class:`FilesystemStorage`, plus what only a folder has."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from docker_registry_wsgi.storage import (
    FilesystemStorage,
    KeyNotFound,
    StorageFull,
    StorageUnavailable,
    UploadConflict,
    VersionConflict,
)
from docker_registry_wsgi.testing import StorageSuite
from docker_registry_wsgi.testing.storage import (
    HOSTILE_KEYS,
    WRITEBACK_STEP,
    LargeStorageSuite,
    meta,
    new_upload_id,
    payload,
)


class TestFilesystemStorage(StorageSuite):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> FilesystemStorage:
        # fsync off: the suite checks semantics, not durability, and must stay fast.
        return FilesystemStorage(tmp_path / "root", fsync=False)

    @pytest.fixture
    def other_storage(self, storage: FilesystemStorage) -> FilesystemStorage:
        """Another process over the same folder."""
        return FilesystemStorage(storage.root, fsync=False)

    @pytest.fixture(autouse=True)
    def _leaves_no_temporary_file(self, storage: FilesystemStorage) -> Iterator[None]:
        yield
        assert os.listdir(os.path.join(storage.root, "~tmp")) == []



@pytest.mark.large
class TestFilesystemStorageLarge(LargeStorageSuite):
    """The large mode with fsync on: each test starts the writeback of an 8 MiB step at least once."""

    @pytest.fixture
    def writebacks(self) -> list[tuple[int, int]]:
        return []

    @staticmethod
    def recorded(storage: FilesystemStorage, writebacks: list[tuple[int, int]]) -> FilesystemStorage:
        start = storage._start_writeback
        if start is not None:  # Linux: record the ranges, then start the real writeback
            def recording(fd: int, offset: int, length: int) -> object:
                writebacks.append((offset, length))
                return start(fd, offset, length)
            storage._start_writeback = recording
        return storage

    @pytest.fixture
    def storage(self, tmp_path: Path, writebacks: list[tuple[int, int]]) -> Iterator[FilesystemStorage]:
        storage = self.recorded(FilesystemStorage(tmp_path / "root", fsync=True), writebacks)
        yield storage
        if storage._start_writeback is not None:
            assert writebacks, "no request reached the writeback step"
            assert all(length >= WRITEBACK_STEP for _, length in writebacks), writebacks
        assert os.listdir(os.path.join(storage.root, "~tmp")) == []

    @pytest.fixture
    def other_storage(self, storage: FilesystemStorage, writebacks: list[tuple[int, int]]) -> FilesystemStorage:
        return self.recorded(FilesystemStorage(storage.root, fsync=True), writebacks)

def started(storage: FilesystemStorage, data: bytes) -> tuple[str, Any]:
    upload_id = new_upload_id()
    state = storage.create_upload(upload_id, b"")
    return upload_id, storage.write_upload(upload_id, state.version, [data], meta("data"))


def test_hostile_keys_write_nothing_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "root"
    storage = FilesystemStorage(root)
    outside_before = {p for p in tmp_path.rglob("*") if root not in p.parents and p != root}
    for key in HOSTILE_KEYS:
        for attempt in (lambda: storage.write(key, b"x"), lambda: storage.read(key)):
            try:
                attempt()
            except Exception:  # noqa: BLE001 - only the file system's state matters here
                pass
        upload_id, state = started(storage, b"x")
        try:
            storage.commit_upload(upload_id, state.version, key)
        except Exception:  # noqa: BLE001
            pass
    outside_after = {p for p in tmp_path.rglob("*") if root not in p.parents and p != root}
    assert outside_after == outside_before
    assert not (tmp_path / "escape").exists()


def test_committed_blob_is_a_plain_file(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path)
    upload_id, state = started(storage, b"abcdef")
    storage.commit_upload(upload_id, state.version, "blobs/x")
    path = storage.file_path("blobs/x")
    assert Path(path).read_bytes() == b"abcdef"
    assert os.stat(path).st_nlink == 1, "the upload's name was left on the committed file"
    reader = storage.open("blobs/x", 2)
    try:
        assert hasattr(reader, "fileno") and os.lseek(reader.fileno(), 0, os.SEEK_CUR) == 2
    finally:
        reader.close()


def test_writer_that_locks_after_a_commit_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATCH that opened the upload before the PUT committed it, and locked it after.

    The file it opened is now the committed blob; after taking the lock it sees the upload's
    name no longer leads to that file, and stops without writing.
    """
    storage = FilesystemStorage(tmp_path, fsync=False)
    upload_id, state = started(storage, b"committed bytes")
    real_flock = fcntl.flock
    writer = threading.current_thread()
    at_lock, go_on = threading.Event(), threading.Event()

    def gated_flock(fd: int, operation: int) -> None:
        if threading.current_thread() is not writer:
            at_lock.set()
            assert go_on.wait(30)
        real_flock(fd, operation)

    errors: list[BaseException] = []

    def patch() -> None:
        try:
            storage.write_upload(upload_id, state.version, [b"ATTACKER" * 1000], meta("attacker"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    monkeypatch.setattr(fcntl, "flock", gated_flock)
    thread = threading.Thread(target=patch)
    thread.start()
    assert at_lock.wait(30)  # the writer has the file open and waits to lock it
    assert storage.commit_upload(upload_id, state.version, "blobs/victim") is True
    go_on.set()
    thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], KeyNotFound)
    assert Path(storage.file_path("blobs/victim")).read_bytes() == b"committed bytes"


def test_held_upload_refuses_at_once(tmp_path: Path) -> None:
    """Another process's lock on the upload (flock is per open file): refused, never waited for."""
    storage = FilesystemStorage(tmp_path, fsync=False)
    upload_id, state = started(storage, b"abc")
    with open(os.path.join(tmp_path, "~uploads", upload_id), "r+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        for call in (
            lambda: storage.write_upload(upload_id, state.version, [b"d"], meta("d")),
            lambda: storage.commit_upload(upload_id, state.version, "blobs/x"),
            lambda: storage.abort_upload(upload_id),
        ):
            with pytest.raises(UploadConflict):
                call()
        assert upload_id not in storage.purge_uploads(0, now=time.time() + 3600)
    assert storage.upload_state(upload_id) == state
    storage.abort_upload(upload_id)


def test_purge_reclaims_leftovers(tmp_path: Path) -> None:
    """After a crash: bytes without a state, a state without bytes, half-written temporary files."""
    storage = FilesystemStorage(tmp_path, fsync=False)
    uploads, tmp = tmp_path / "~uploads", tmp_path / "~tmp"
    no_state, no_bytes = new_upload_id(), new_upload_id()
    (uploads / no_state).write_bytes(b"orphaned bytes")
    (uploads / f"{no_bytes}.state").write_bytes(b'{"size": 0, "version": "v", "meta": ""}')
    (uploads / "legacy-upload-aaaaaaaaaaaa").write_bytes(b"an earlier version's upload file")
    (tmp / "tmpabc123").write_bytes(b"half a tag")
    live, state = started(storage, b"live")
    hour_ago = time.time() - 3600
    for path in [*uploads.iterdir(), *tmp.iterdir()]:
        if live not in path.name:
            os.utime(path, (hour_ago, hour_ago))
    purged = storage.purge_uploads(600)
    assert sorted(purged) == sorted([no_state, no_bytes, "legacy-upload-aaaaaaaaaaaa"])
    assert sorted(p.name for p in uploads.iterdir()) == sorted([live, f"{live}.state"])
    assert list(tmp.iterdir()) == []
    assert storage.upload_state(live) == state
    storage.abort_upload(live)


def test_write_fsyncs_each_new_name_into_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Durability: a link or tag written after a blob cannot survive a power loss the blob's
    rename did not; every new folder and name is flushed into its parent before returning."""
    storage = FilesystemStorage(tmp_path, fsync=True)
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    upload_id, state = started(storage, b"blob bytes")
    synced.clear()
    storage.commit_upload(upload_id, state.version, "blobs/sha256/ab/abcd")
    for folder in ("blobs", "blobs/sha256", "blobs/sha256/ab"):
        assert str(tmp_path / folder) in synced, f"{folder} not flushed"
    assert str(tmp_path) in synced
    synced.clear()
    storage.write("repositories/a/_layers/x", b"")
    assert str(tmp_path / "repositories" / "a" / "_layers") in synced
    assert any(path.startswith(str(tmp_path / "~tmp")) for path in synced), "data not flushed"


def test_full_disk_keeps_the_upload_resumable(small_disk: Path) -> None:
    storage = FilesystemStorage(small_disk / "root", fsync=True)
    upload_id, state = started(storage, b"before ")
    filler = small_disk / "filler"
    with pytest.raises(StorageFull):
        storage.write_upload(upload_id, state.version, [payload(4 << 20)], meta("too big"))
    assert storage.upload_state(upload_id) == state
    filler.write_bytes(b"")
    with pytest.raises(StorageFull):
        with open(filler, "wb") as f:  # take the rest of the disk, then try a small write
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        storage.write("tags/x", b"doc" * 1000)
    filler.unlink()  # space returns
    state = storage.write_upload(upload_id, state.version, [b"after"], meta("after"))
    assert storage.commit_upload(upload_id, state.version, "blobs/x") is True
    assert storage.read("blobs/x") == b"before after"
    assert os.listdir(small_disk / "root" / "~tmp") == []


def test_read_only_disk_is_unavailable(small_disk: Path) -> None:
    storage = FilesystemStorage(small_disk / "root", fsync=False)
    upload_id, state = started(storage, b"abc")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        with pytest.raises(StorageUnavailable):
            storage.write("tags/x", b"doc")
        with pytest.raises(StorageUnavailable):
            storage.write_upload(upload_id, state.version, [b"d"], meta("d"))
        assert storage.upload_state(upload_id) == state
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    state = storage.write_upload(upload_id, state.version, [b"d"], meta("d"))
    storage.commit_upload(upload_id, state.version, "blobs/y")
    assert storage.read("blobs/y") == b"abcd"


def test_swap_that_waited_for_a_replaced_file_sees_the_new_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A swap waits for the lock on the file it opened; another swap meanwhile renamed a new
    file into place: after locking, it finds its file is no longer the object, and compares
    against the new content instead (a conflict), never writing over a newer version."""
    storage = FilesystemStorage(tmp_path, fsync=False)
    version = storage.swap("gc/record", b"old", None)
    path = storage.file_path("gc/record")
    holder = open(path, "r+b")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    real_flock = fcntl.flock
    waiting = threading.Event()

    def noting_flock(fd: int, operation: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            waiting.set()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", noting_flock)
    outcome: list[BaseException | str] = []

    def swap() -> None:
        try:
            outcome.append(storage.swap("gc/record", b"from the waiter", version))
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=swap)
    thread.start()
    assert waiting.wait(30)
    replacement = tmp_path / "replacement"
    replacement.write_bytes(b"newer")
    os.rename(replacement, path)  # what a swap that won does
    holder.close()  # releases the old file's lock
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], VersionConflict), outcome
    assert Path(path).read_bytes() == b"newer"
