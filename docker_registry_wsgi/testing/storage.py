"""The storage protocol's conformance suite: subclass :class:`StorageSuite` to run it on a backend.

Modelled on distribution's storage driver suite. Every test speaks only the protocol of
:class:`~docker_registry_wsgi.storage.Storage`, so one suite checks memory, filesystem, S3 and any
backend a user writes::

    import pytest
    from docker_registry_wsgi.testing import StorageSuite

    class TestMyStorage(StorageSuite):
        @pytest.fixture
        def storage(self, tmp_path):
            backend = MyStorage(tmp_path)
            yield backend
            backend.close()

Optional knobs: the fixture ``other_storage`` (a second instance over the same bytes, as another
process or host would have; defaults to ``storage``), the attributes ``can_rewind`` (``False`` if
the backend may answer a rewind with :class:`UploadOffsetMismatch`), ``max_examples`` (hypothesis
examples per property) and ``threads`` (concurrency of the race tests).
"""

from __future__ import annotations

import random
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..storage.base import (
    InvalidKey,
    KeyNotFound,
    Storage,
    UploadOffsetMismatch,
    check_key,
)

__all__ = ["StorageSuite", "ChunkFailure", "HOSTILE_KEYS", "HOSTILE_UPLOAD_IDS", "payload"]

#: Keys every backend must refuse with :class:`InvalidKey`, before touching anything.
HOSTILE_KEYS = (
    "",
    "/",
    ".",
    "..",
    "../escape",
    "a/../../escape",
    "a/./b",
    "/etc/passwd",
    "//double",
    "a//b",
    "trailing/",
    "a\\..\\..\\escape",
    "..\\escape",
    "C:\\escape",
    "nul\x00byte",
    "a/\x00",
    "new\nline",
    "space here",
    "tab\there",
    "caf\u00e9",
    "~",
    "a/~/b",
    "pct%2e%2e",
    "x" * 1025,
)

#: Upload identifiers every backend must refuse with :class:`InvalidKey`.
HOSTILE_UPLOAD_IDS = (
    "",
    "short",
    "../../../../escape-aaaaaaaaaa",
    "a/b/cccccccccccccccc",
    "aaaaaaaaaaaaaaaa\x00",
    "aaaaaaaaaaaaaaaa.",
    "..aaaaaaaaaaaaaaaa",
    "/" + "a" * 20,
    "\\" + "a" * 20,
    "a" * 129,
)

_MiB = 1 << 20


class ChunkFailure(Exception):
    """What the failing chunk iterators of the suite raise, as a dropped client would."""


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` reproducible pseudo-random bytes (incompressible, unlike zeros)."""
    return random.Random(seed).randbytes(size)


def split(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    """``data`` cut into pieces of ``sizes`` (the last piece takes the rest)."""
    start = 0
    for size in sizes:
        yield data[start : start + size]
        start += size
    if start < len(data):
        yield data[start:]


def failing(chunks: Iterable[bytes], after: int) -> Iterator[bytes]:
    """Yield ``after`` bytes of ``chunks``, then raise :class:`ChunkFailure`."""
    sent = 0
    for chunk in chunks:
        if sent + len(chunk) > after:
            yield chunk[: after - sent]
            break
        yield chunk
        sent += len(chunk)
    raise ChunkFailure(f"client went away after {after} bytes")


def new_upload_id() -> str:
    return secrets.token_hex(16)


def read_all(storage: Storage, key: str, offset: int = 0, piece: int = 65536) -> bytes:
    """Stream ``key`` from ``offset`` in bounded reads, checking each read's bound."""
    reader = storage.open(key, offset)
    try:
        pieces = []
        while True:
            data = reader.read(piece)
            assert len(data) <= piece, "read(n) returned more than n bytes"
            if not data:
                break
            pieces.append(data)
        return b"".join(pieces)
    finally:
        reader.close()


def _valid(key: str) -> bool:
    try:
        check_key(key)
    except InvalidKey:
        return False
    return True


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


class StorageSuite:
    """The conformance tests; subclass it with a ``storage`` fixture (see the module docstring)."""

    #: Whether ``write_upload`` always continues from any offset it returned earlier.
    can_rewind: bool = True
    #: Hypothesis examples per property test; lower it for slow (remote) backends.
    max_examples: int = 25
    #: Concurrency of the race tests.
    threads: int = 8

    # -- fixtures a subclass may override -----------------------------------------------------

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError("a StorageSuite subclass must define the `storage` fixture")

    @pytest.fixture
    def other_storage(self, storage: Storage) -> Storage:
        """A second handle on the same bytes (another process or host); the same by default."""
        return storage

    @pytest.fixture
    def part(self, storage: Storage) -> int:
        """A size where the backend's upload layout changes (its part size), or 64 KiB."""
        return int(getattr(storage, "part_size", 0) or 64 * 1024)

    @pytest.fixture
    def ns(self) -> str:
        """A fresh key prefix per test, so backends shared between tests stay independent."""
        return f"t{secrets.token_hex(6)}/"

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def upload(storage: Storage, pieces: Iterable[Iterable[bytes]], key: str) -> int:
        """Run one upload of ``pieces`` (one ``write_upload`` each) and commit it to ``key``."""
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        offset = 0
        for chunks in pieces:
            offset = storage.write_upload(upload_id, offset, chunks)
        storage.commit_upload(upload_id, key, offset)
        return offset

    # -- small objects ------------------------------------------------------------------------

    def test_write_then_read(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "a", b"hello")
        assert storage.read(ns + "a") == b"hello"
        assert storage.size(ns + "a") == 5

    def test_write_replaces(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "a", b"a much longer first version")
        storage.write(ns + "a", b"short")
        assert storage.read(ns + "a") == b"short"
        assert storage.size(ns + "a") == 5

    def test_empty_object(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "empty", b"")
        assert storage.read(ns + "empty") == b""
        assert storage.size(ns + "empty") == 0
        assert read_all(storage, ns + "empty") == b""
        assert list(storage.list(ns)) == ["empty"]

    def test_binary_content(self, storage: Storage, ns: str) -> None:
        data = bytes(range(256)) * 4 + b"\r\n\x00\xff"
        storage.write(ns + "bin", data)
        assert storage.read(ns + "bin") == data

    def test_key_alphabet(self, storage: Storage, ns: str) -> None:
        key = ns + "sha256:AZaz09._+-=/deeper/and.deeper"
        storage.write(key, b"x")
        assert storage.read(key) == b"x"
        assert list(storage.list(ns)) == ["sha256:AZaz09._+-=/deeper/and.deeper"]

    def test_write_accepts_bytes_like(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "ba", bytearray(b"array"))
        storage.write(ns + "mv", memoryview(b"view"))
        assert storage.read(ns + "ba") == b"array"
        assert storage.read(ns + "mv") == b"view"

    def test_concurrent_write_is_atomic(self, storage: Storage, ns: str) -> None:
        # Readers see one whole version or another, never a mix or a truncation.
        versions = [bytes([65 + i]) * (20000 + i) for i in range(4)]
        key = ns + "contended"
        storage.write(key, versions[0])
        stop = threading.Event()
        seen: list[bytes] = []

        def reader() -> None:
            while not stop.is_set():
                seen.append(storage.read(key))

        def writer(i: int) -> None:
            for _ in range(10):
                storage.write(key, versions[i % len(versions)])

        with ThreadPoolExecutor(self.threads) as pool:
            readers = [pool.submit(reader) for _ in range(2)]
            for f in [pool.submit(writer, i) for i in range(4)]:
                f.result()
            stop.set()
            for f in readers:
                f.result()
        assert seen
        assert set(seen) <= set(versions)

    # -- streams and partial reads ------------------------------------------------------------

    def test_open_streams(self, storage: Storage, ns: str, part: int) -> None:
        data = payload(2 * part + 123, seed=1)
        self.upload(storage, [[data]], ns + "blob")
        assert read_all(storage, ns + "blob", piece=4096) == data

    @pytest.mark.parametrize("where", ["zero", "one", "middle", "part", "last", "end"])
    def test_open_at_offset(self, storage: Storage, ns: str, part: int, where: str) -> None:
        data = payload(part + 4321, seed=2)
        self.upload(storage, [[data]], ns + "blob")
        offset = {
            "zero": 0,
            "one": 1,
            "middle": len(data) // 2,
            "part": part,
            "last": len(data) - 1,
            "end": len(data),
        }[where]
        assert read_all(storage, ns + "blob", offset) == data[offset:]

    def test_partial_read_then_close(self, storage: Storage, ns: str, part: int) -> None:
        data = payload(3 * part, seed=3)
        self.upload(storage, [[data]], ns + "blob")
        reader = storage.open(ns + "blob", 10)
        try:
            head = reader.read(100)
        finally:
            reader.close()
        assert head == data[10:110]
        assert storage.size(ns + "blob") == len(data)

    def test_many_readers(self, storage: Storage, ns: str, part: int) -> None:
        data = payload(part + 99, seed=4)
        self.upload(storage, [[data]], ns + "blob")
        with ThreadPoolExecutor(self.threads) as pool:
            offsets = [0, 1, part - 1, part, part + 98, len(data)]
            results = list(pool.map(lambda o: read_all(storage, ns + "blob", o), offsets))
        assert results == [data[o:] for o in offsets]

    # -- missing keys and deletes -------------------------------------------------------------

    def test_missing_key(self, storage: Storage, ns: str) -> None:
        with pytest.raises(KeyNotFound):
            storage.read(ns + "missing")
        with pytest.raises(KeyNotFound):
            storage.size(ns + "missing")
        with pytest.raises(KeyNotFound):
            storage.open(ns + "missing")
        with pytest.raises(KeyNotFound):
            storage.open(ns + "missing", 10)
        assert storage.delete(ns + "missing") is False

    def test_key_not_found_is_a_key_error(self, storage: Storage, ns: str) -> None:
        with pytest.raises(KeyError):
            storage.read(ns + "missing")

    def test_folder_is_not_an_object(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "dir/child", b"x")
        with pytest.raises(KeyNotFound):
            storage.read(ns + "dir")
        with pytest.raises(KeyNotFound):
            storage.size(ns + "dir")
        with pytest.raises(KeyNotFound):
            storage.open(ns + "dir")
        assert storage.delete(ns + "dir") is False
        assert storage.read(ns + "dir/child") == b"x"

    def test_missing_below_an_object(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "file", b"x")
        with pytest.raises(KeyNotFound):
            storage.read(ns + "file/child")
        with pytest.raises(KeyNotFound):
            storage.size(ns + "file/child")
        assert storage.delete(ns + "file/child") is False
        assert list(storage.list(ns + "file/")) == []

    def test_delete(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "a", b"1")
        storage.write(ns + "b", b"2")
        assert storage.delete(ns + "a") is True
        assert storage.delete(ns + "a") is False
        with pytest.raises(KeyNotFound):
            storage.read(ns + "a")
        assert storage.read(ns + "b") == b"2"
        assert list(storage.list(ns)) == ["b"]

    def test_delete_then_write_again(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "a/b", b"1")
        assert storage.delete(ns + "a/b")
        storage.write(ns + "a/b", b"2")
        assert storage.read(ns + "a/b") == b"2"

    def test_delete_committed_blob(self, storage: Storage, ns: str, part: int) -> None:
        self.upload(storage, [[payload(part + 1)]], ns + "blob")
        assert storage.delete(ns + "blob") is True
        with pytest.raises(KeyNotFound):
            storage.open(ns + "blob")

    # -- listing ------------------------------------------------------------------------------

    # No key is also a folder ("a" with "a/b"): a file system cannot hold both.
    TRICKY = ("a+b", "a-b", "a.b", "a/b-c/d", "a/b/c", "a/b=", "a0", "a:b", "a=b", "A", "_u", "b")

    def test_list_order(self, storage: Storage, ns: str) -> None:
        # Byte order of whole keys: "a-b" < "a.b" < "a/b" < "a0", whatever the backend's folders.
        for key in self.TRICKY:
            storage.write(ns + key, key.encode())
        assert list(storage.list(ns)) == sorted(self.TRICKY)

    def test_list_is_relative_and_recursive(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "x/y/z", b"1")
        storage.write(ns + "x/w", b"2")
        assert list(storage.list(ns + "x/")) == ["w", "y/z"]
        assert list(storage.list(ns + "x/y/")) == ["z"]

    def test_list_stays_below_prefix(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "tags/latest", b"1")
        storage.write(ns + "tags-other/x", b"2")
        storage.write(ns + "tagsx", b"3")
        assert list(storage.list(ns + "tags/")) == ["latest"]

    def test_list_missing_prefix(self, storage: Storage, ns: str) -> None:
        assert list(storage.list(ns)) == []
        assert list(storage.list(ns + "nothing/here/")) == []
        assert list(storage.list(ns, start_after="zzz")) == []

    @pytest.mark.parametrize("marker", ["", "0", "A", "a", "a-", "a-b", "a/", "a/b", "a/b/", "a/b/c", "a00", "b", "zz"])
    def test_list_start_after(self, storage: Storage, ns: str, marker: str) -> None:
        keys = sorted(self.TRICKY)
        for key in keys:
            storage.write(ns + key, b".")
        assert list(storage.list(ns, start_after=marker)) == [k for k in keys if k > marker]

    def test_list_pagination(self, storage: Storage, ns: str) -> None:
        # The way the tags and catalog endpoints page: n at a time, resuming after the last.
        keys = sorted(f"tag-{i:03d}" for i in range(37)) + ["v1", "v1.0", "v1.0.1", "v10"]
        for key in keys:
            storage.write(ns + key, key.encode())
        pages: list[list[str]] = []
        last = None
        while True:
            listing = storage.list(ns, start_after=last)
            page = [key for _, key in zip(range(10), listing)]
            if not page:
                break
            pages.append(page)
            last = page[-1]
        assert [k for page in pages for k in page] == sorted(keys)
        assert len(pages) == 5

    def test_list_survives_deletes_while_paging(self, storage: Storage, ns: str) -> None:
        for i in range(6):
            storage.write(ns + f"k{i}", b".")
        first = list(storage.list(ns))[:3]
        for key in first:
            storage.delete(ns + key)
        assert list(storage.list(ns, start_after=first[-1])) == ["k3", "k4", "k5"]

    def test_list_hides_uploads(self, storage: Storage, ns: str) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        storage.write_upload(upload_id, 0, [b"in progress"])
        storage.write(ns + "visible", b"1")
        assert list(storage.list(ns)) == ["visible"]
        try:
            everything = list(storage.list(""))
        except (InvalidKey, ValueError):
            everything = []  # the protocol leaves listing the whole store to the backend
        assert not [key for key in everything if upload_id in key], "upload internals listed"
        assert all(_valid(key) for key in everything)
        storage.abort_upload(upload_id)

    def test_keys_like_backend_internals(self, storage: Storage, ns: str) -> None:
        # Valid keys that look like a backend's bookkeeping (temporary files, upload folders)
        # are ordinary objects: stored, read and listed like any other.
        keys = sorted(["_uploads/x", ".tmp-x", ".tmp-", "uploads/x", ".hidden", "_", "state/0"])
        for key in keys:
            storage.write(ns + key, key.encode())
        assert [storage.read(ns + key) for key in keys] == [key.encode() for key in keys]
        assert list(storage.list(ns)) == keys

    def test_root_keys_never_alias_uploads(self, storage: Storage) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        size = storage.write_upload(upload_id, 0, [b"upload bytes"])
        aliases = [f"{name}/{upload_id}" for name in ("_uploads", "uploads", "_upload", "upload")]
        try:
            for key in aliases:
                storage.write(key, b"an object")
            storage.commit_upload(upload_id, aliases[0] + "-committed", size)
            assert storage.read(aliases[0] + "-committed") == b"upload bytes"
            assert [storage.read(key) for key in aliases] == [b"an object"] * len(aliases)
            listed = set(storage.list(""))
            assert set(aliases) <= listed, "objects under a backend's internal name are hidden"
        finally:
            for key in aliases + [aliases[0] + "-committed"]:
                storage.delete(key)

    # -- hostile keys -------------------------------------------------------------------------

    @pytest.mark.parametrize("key", HOSTILE_KEYS, ids=repr)
    def test_hostile_key(self, storage: Storage, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        before = _tree(tmp_path)
        calls: list[Callable[[], object]] = [
            lambda: storage.read(key),
            lambda: storage.write(key, b"pwned"),
            lambda: storage.size(key),
            lambda: storage.open(key),
            lambda: storage.delete(key),
        ]
        for call in calls:
            with pytest.raises(InvalidKey):
                call()
        prefix = key if key.endswith("/") else key + "/"
        if prefix.strip("/") and not _valid(prefix[:-1]):
            with pytest.raises((InvalidKey, ValueError)):
                list(storage.list(prefix))
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        size = storage.write_upload(upload_id, 0, [b"pwned"])
        with pytest.raises(InvalidKey):
            storage.commit_upload(upload_id, key, size)
        storage.abort_upload(upload_id)
        assert _tree(tmp_path) == before, "a hostile key wrote something"

    @pytest.mark.parametrize("upload_id", HOSTILE_UPLOAD_IDS, ids=repr)
    def test_hostile_upload_id(self, storage: Storage, upload_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        before = _tree(tmp_path)
        with pytest.raises(InvalidKey):
            storage.create_upload(upload_id)
        with pytest.raises(InvalidKey):
            storage.write_upload(upload_id, 0, [b"pwned"])
        with pytest.raises(InvalidKey):
            storage.commit_upload(upload_id, "t/x", 0)
        with pytest.raises(InvalidKey):
            storage.abort_upload(upload_id)
        assert _tree(tmp_path) == before, "a hostile upload id wrote something"

    def test_keys_match_check_key(self, storage: Storage, ns: str) -> None:
        """Any key ``check_key`` accepts round-trips; any other raises ``InvalidKey``."""

        @settings(max_examples=self.max_examples * 2, deadline=None, database=None)
        @given(st.text(alphabet="aZ09._+-=:/\\\x00 ~%_\u00e9", min_size=1, max_size=24))
        def check(suffix: str) -> None:
            key = ns + suffix
            try:
                check_key(key)
            except InvalidKey:
                with pytest.raises(InvalidKey):
                    storage.write(key, b"x")
                with pytest.raises(InvalidKey):
                    storage.read(key)
                return
            try:
                storage.write(key, suffix.encode())
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                return  # a folder and an object of one name: the backend may refuse one
            assert storage.read(key) == suffix.encode()
            storage.delete(key)

        check()

    # -- uploads ------------------------------------------------------------------------------

    def test_empty_upload(self, storage: Storage, ns: str) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        assert storage.write_upload(upload_id, 0, []) == 0
        assert storage.write_upload(upload_id, 0, [b"", b""]) == 0
        storage.commit_upload(upload_id, ns + "empty", 0)
        assert storage.read(ns + "empty") == b""
        assert storage.size(ns + "empty") == 0

    def test_upload_returns_sizes(self, storage: Storage, ns: str, part: int) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        data = payload(2 * part + 7, seed=5)
        offset = 0
        for piece in (data[:3], data[3 : part + 1], data[part + 1 :]):
            offset = storage.write_upload(upload_id, offset, [piece])
        assert offset == len(data)
        storage.commit_upload(upload_id, ns + "blob", offset)
        assert storage.read(ns + "blob") == data

    def test_upload_chunk_shapes(self, storage: Storage, ns: str, part: int) -> None:
        """Any split of the bytes into requests and chunks commits the same object."""
        sizes = st.sampled_from([0, 1, 7, part // 3, part - 1, part, part + 1])
        requests = st.lists(st.lists(sizes, max_size=4), min_size=1, max_size=4)

        @settings(max_examples=self.max_examples, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(requests)
        def check(shape: list[list[int]]) -> None:
            total = sum(map(sum, shape))
            data = payload(total, seed=total)
            pieces, start = [], 0
            for chunk_sizes in shape:
                request = []
                for size in chunk_sizes:
                    request.append(data[start : start + size])
                    start += size
                pieces.append(request)
            key = ns + "shape-" + secrets.token_hex(4)
            assert self.upload(storage, pieces, key) == total
            assert storage.size(key) == total
            assert read_all(storage, key) == data
            storage.delete(key)

        check()

    def test_upload_many_small_chunks(self, storage: Storage, ns: str, part: int) -> None:
        # Small PATCHes that only fill a part together; the backend must keep them between calls.
        data = payload(part + part // 2, seed=6)
        step = max(1, part // 5)
        self.upload(storage, ([c] for c in split(data, [step] * (len(data) // step))), ns + "blob")
        assert storage.read(ns + "blob") == data

    def test_upload_continued_by_another_instance(self, storage: Storage, other_storage: Storage, ns: str, part: int) -> None:
        data = payload(3 * part + 5, seed=7)
        pieces = list(split(data, [part // 2, part, 1, part]))
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        offset = 0
        for i, piece in enumerate(pieces):
            backend = (storage, other_storage)[i % 2]
            offset = backend.write_upload(upload_id, offset, [piece])
        other_storage.commit_upload(upload_id, ns + "blob", offset)
        assert storage.read(ns + "blob") == data

    @pytest.mark.parametrize("fail_at", ["start", "inside", "part", "after-part"])
    def test_resume_after_failed_chunk(self, storage: Storage, ns: str, part: int, fail_at: str) -> None:
        data = payload(3 * part, seed=8)
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        recorded = storage.write_upload(upload_id, 0, [data[:100]])
        after = {"start": 0, "inside": 50, "part": part, "after-part": part + part // 2}[fail_at]
        with pytest.raises(ChunkFailure):
            storage.write_upload(upload_id, recorded, failing(split(data[100:], [33] + [part // 4] * 20), after))
        size = storage.write_upload(upload_id, recorded, [data[100:]])
        assert size == len(data)
        storage.commit_upload(upload_id, ns + "blob", size)
        assert storage.read(ns + "blob") == data

    def test_failed_first_chunk_keeps_upload(self, storage: Storage, ns: str) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        with pytest.raises(ChunkFailure):
            storage.write_upload(upload_id, 0, failing([b"abc"], 0))
        assert storage.write_upload(upload_id, 0, [b"xyz"]) == 3
        storage.commit_upload(upload_id, ns + "blob", 3)
        assert storage.read(ns + "blob") == b"xyz"

    @pytest.mark.parametrize("shape", ["small", "part", "parts"])
    def test_rewind_to_recorded_offset(self, storage: Storage, ns: str, part: int, shape: str) -> None:
        # A write succeeded but its result was never recorded; the next one starts from before it.
        first_size = {"small": 10, "part": part, "parts": part + 10}[shape]
        first = payload(first_size, seed=9)
        lost = payload(2 * part + 3, seed=10)
        then = payload(part + 17, seed=11)
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        recorded = storage.write_upload(upload_id, 0, [first])
        assert storage.write_upload(upload_id, recorded, [lost]) == recorded + len(lost)
        try:
            size = storage.write_upload(upload_id, recorded, [then])
        except UploadOffsetMismatch:
            if self.can_rewind:
                raise
            storage.abort_upload(upload_id)
            return
        assert size == recorded + len(then)
        storage.commit_upload(upload_id, ns + "blob", size)
        assert storage.read(ns + "blob") == first + then

    def test_commit_takes_recorded_size(self, storage: Storage, ns: str, part: int) -> None:
        first = payload(part + 3, seed=12)
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        recorded = storage.write_upload(upload_id, 0, [first])
        storage.write_upload(upload_id, recorded, [b"unrecorded tail bytes"])
        try:
            storage.commit_upload(upload_id, ns + "blob", recorded)
        except UploadOffsetMismatch:
            if self.can_rewind:
                raise
            return
        assert storage.read(ns + "blob") == first

    def test_offset_beyond_upload_is_a_mismatch(self, storage: Storage, ns: str) -> None:
        # Bytes the backend never got cannot be skipped over: no zero-filled holes.
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        size = storage.write_upload(upload_id, 0, [b"0123456789"])
        with pytest.raises(UploadOffsetMismatch):
            storage.write_upload(upload_id, size + 5, [b"after a hole"])
        with pytest.raises(UploadOffsetMismatch):
            storage.commit_upload(upload_id, ns + "blob", size + 5)
        with pytest.raises(KeyNotFound):
            storage.read(ns + "blob")
        assert storage.write_upload(upload_id, size, [b"!"]) == size + 1
        storage.commit_upload(upload_id, ns + "blob", size + 1)
        assert storage.read(ns + "blob") == b"0123456789!"

    def test_commit_replaces_object(self, storage: Storage, ns: str, part: int) -> None:
        storage.write(ns + "blob", b"old and longer than the new one" * 100)
        self.upload(storage, [[b"new"]], ns + "blob")
        assert storage.read(ns + "blob") == b"new"
        big = payload(part + 1, seed=13)
        self.upload(storage, [[big]], ns + "blob")
        assert storage.read(ns + "blob") == big

    def test_commit_ends_upload(self, storage: Storage, ns: str) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        size = storage.write_upload(upload_id, 0, [b"data"])
        storage.commit_upload(upload_id, ns + "blob", size)
        with pytest.raises(KeyNotFound):
            storage.write_upload(upload_id, size, [b"more"])
        with pytest.raises(KeyNotFound):
            storage.commit_upload(upload_id, ns + "again", size)
        storage.abort_upload(upload_id)  # a finished upload aborts quietly
        assert storage.read(ns + "blob") == b"data"

    def test_commit_to_invalid_key_keeps_upload(self, storage: Storage, ns: str) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        size = storage.write_upload(upload_id, 0, [b"data"])
        with pytest.raises(InvalidKey):
            storage.commit_upload(upload_id, "../escape", size)
        storage.commit_upload(upload_id, ns + "blob", size)
        assert storage.read(ns + "blob") == b"data"

    def test_unknown_upload(self, storage: Storage, ns: str) -> None:
        upload_id = new_upload_id()
        with pytest.raises(KeyNotFound):
            storage.write_upload(upload_id, 0, [b"data"])
        with pytest.raises(KeyNotFound):
            storage.commit_upload(upload_id, ns + "blob", 0)
        storage.abort_upload(upload_id)
        with pytest.raises(KeyNotFound):
            storage.read(ns + "blob")

    def test_abort(self, storage: Storage, ns: str, part: int) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        size = storage.write_upload(upload_id, 0, [payload(part + 5)])
        storage.abort_upload(upload_id)
        with pytest.raises(KeyNotFound):
            storage.write_upload(upload_id, size, [b"more"])
        with pytest.raises(KeyNotFound):
            storage.commit_upload(upload_id, ns + "blob", size)
        storage.abort_upload(upload_id)
        assert list(storage.list(ns)) == []

    def test_interleaved_uploads(self, storage: Storage, ns: str, part: int) -> None:
        a, b = payload(part + 11, seed=14), payload(part + 22, seed=15)
        ids = new_upload_id(), new_upload_id()
        for upload_id in ids:
            storage.create_upload(upload_id)
        offsets = [0, 0]
        for pa, pb in zip(split(a, [part // 2] * 2), split(b, [part // 2] * 2)):
            offsets[0] = storage.write_upload(ids[0], offsets[0], [pa])
            offsets[1] = storage.write_upload(ids[1], offsets[1], [pb])
        storage.commit_upload(ids[1], ns + "b", offsets[1])
        storage.commit_upload(ids[0], ns + "a", offsets[0])
        assert storage.read(ns + "a") == a
        assert storage.read(ns + "b") == b

    def test_upload_not_visible_before_commit(self, storage: Storage, ns: str, part: int) -> None:
        upload_id = new_upload_id()
        storage.create_upload(upload_id)
        size = storage.write_upload(upload_id, 0, [payload(part + 1)])
        with pytest.raises(KeyNotFound):
            storage.size(ns + "blob")
        assert list(storage.list(ns)) == []
        storage.commit_upload(upload_id, ns + "blob", size)
        assert list(storage.list(ns)) == ["blob"]

    # -- races --------------------------------------------------------------------------------

    def test_concurrent_commits_same_content(self, storage: Storage, ns: str, part: int) -> None:
        """Pushes of one blob race harmlessly: every commit succeeds, one whole copy remains."""
        data = payload(part + 1234, seed=16)
        key = ns + "blobs/same"

        def push(i: int) -> int:
            return self.upload(storage, [split(data, [i + 1, part // 2])], key)

        with ThreadPoolExecutor(self.threads) as pool:
            sizes = list(pool.map(push, range(self.threads)))
        assert sizes == [len(data)] * self.threads
        assert storage.read(key) == data
        assert list(storage.list(ns + "blobs/")) == ["same"]

    def test_concurrent_commits_never_mix(self, storage: Storage, ns: str, part: int) -> None:
        versions = [payload(part + 100 * i, seed=100 + i) for i in range(4)]
        key = ns + "mixed"

        def push(i: int) -> None:
            self.upload(storage, [[versions[i % len(versions)]]], key)

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(push, range(self.threads)))
        assert storage.read(key) in versions

    def test_readers_never_see_partial_commit(self, storage: Storage, ns: str, part: int) -> None:
        data = payload(3 * part + 1, seed=17)
        key = ns + "watched"
        done = threading.Event()
        observed: list[int | None] = []

        def watch() -> None:
            while not done.is_set():
                try:
                    content = storage.read(key)
                except KeyNotFound:
                    observed.append(None)
                    continue
                observed.append(len(content))
                assert content == data, "a reader saw a partial object"

        with ThreadPoolExecutor(2) as pool:
            watcher = pool.submit(watch)
            try:
                upload_id = new_upload_id()
                storage.create_upload(upload_id)
                offset = 0
                for piece in split(data, [part // 2] * 6):
                    offset = storage.write_upload(upload_id, offset, [piece])
                    assert storage.delete(key) is False, "an uncommitted upload is visible"
                storage.commit_upload(upload_id, key, offset)
                while not observed or observed[-1] is None:
                    if watcher.done():
                        break
                    threading.Event().wait(0.01)
            finally:
                done.set()
            watcher.result()
        assert set(observed) <= {None, len(data)}
        assert observed[-1] == len(data)

    # -- optional capabilities ----------------------------------------------------------------

    def test_redirect_url_is_none_or_url(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "a", b"x")
        url = storage.redirect_url(ns + "a")
        assert url is None or url.startswith(("http://", "https://"))

    def test_close_is_safe(self, storage: Storage) -> None:
        storage.close()
