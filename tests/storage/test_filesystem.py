"""The storage conformance suite on :class:`FilesystemStorage`, plus what only a folder has."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docker_registry_wsgi.storage import FilesystemStorage
from docker_registry_wsgi.testing import StorageSuite
from docker_registry_wsgi.testing.storage import HOSTILE_KEYS, new_upload_id


class TestFilesystemStorage(StorageSuite):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> FilesystemStorage:
        # fsync off: the suite checks semantics, not durability, and must stay fast.
        return FilesystemStorage(tmp_path / "root", fsync=False)

    @pytest.fixture
    def other_storage(self, storage: FilesystemStorage) -> FilesystemStorage:
        """Another process over the same folder."""
        return FilesystemStorage(storage.root, fsync=False)


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
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        size = storage.write_upload(upload_id, 0, [b"x"])
        try:
            storage.commit_upload(upload_id, key, size)
        except Exception:  # noqa: BLE001
            pass
    outside_after = {p for p in tmp_path.rglob("*") if root not in p.parents and p != root}
    assert outside_after == outside_before
    assert not (tmp_path / "escape").exists()


def test_committed_blob_is_a_plain_file(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path)
    upload_id = new_upload_id()
    storage.create_upload(upload_id)
    size = storage.write_upload(upload_id, 0, [b"abc", b"def"])
    storage.commit_upload(upload_id, "blobs/x", size)
    path = storage.file_path("blobs/x")
    assert Path(path).read_bytes() == b"abcdef"
    reader = storage.open("blobs/x", 2)
    try:
        assert hasattr(reader, "fileno") and os.lseek(reader.fileno(), 0, os.SEEK_CUR) == 2
    finally:
        reader.close()
