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
process or host would have; defaults to ``storage``), the attributes ``max_examples``
(hypothesis examples per property) and ``threads`` (concurrency of the race tests).

:class:`LargeStorageSuite` is the suite's large mode: a few uploads over 8 MiB, subclassed the
same way (with ``fsync`` on, for a backend that has it).

The race tests hold one request at a chosen point with events (a chunk iterator that stops
until the test lets it go), so each interleaving the protocol's concurrency contract speaks of
is reached on every run. Each test ends by checking that it left no upload behind.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
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
    UploadConflict,
    UploadState,
    VersionConflict,
    check_key,
)

__all__ = [
    "StorageSuite",
    "LargeStorageSuite",
    "ChunkFailure",
    "Parked",
    "HOSTILE_KEYS",
    "HOSTILE_UPLOAD_IDS",
    "payload",
]

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


def meta(label: str) -> Callable[[], bytes]:
    """A ``meta`` callback recording ``label``, as the registry records its hash state."""
    return lambda: label.encode()


class Parked:
    """A request body that stops after ``after`` bytes until the test releases it.

    Run the request that reads it on another thread; :attr:`reached` is set once the reader
    has taken the first ``after`` bytes and asked for more (for ``after=0``: once it started
    reading), so the test knows exactly where that request stands. ``fail`` makes the body end
    in :class:`ChunkFailure` when released, as a dropped connection does.
    """

    def __init__(self, data: bytes, after: int = 0, *, fail: bool = False, piece: int = 65536) -> None:
        self.data, self.after, self.fail, self.piece = data, after, fail, piece
        self.reached = threading.Event()
        self.released = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        while sent < self.after:
            chunk = self.data[sent : min(sent + self.piece, self.after)]
            sent += len(chunk)
            yield chunk
        self.reached.set()
        if not self.released.wait(60):
            raise ChunkFailure("the test never released the parked body")
        if self.fail:
            raise ChunkFailure("the parked client went away")
        for start in range(sent, len(self.data), self.piece):
            yield self.data[start : start + self.piece]

    def run(self, call: Callable[[], UploadState]) -> "_Outcome":
        """Start ``call`` (which reads this body) on a thread and wait until it is parked here.

        A backend may refuse before reading the body at all; the outcome then holds the error.
        """
        outcome = _Outcome()
        thread = threading.Thread(target=outcome.capture, args=(call,), daemon=True)
        outcome.thread = thread
        thread.start()
        while not self.reached.wait(0.01):
            if not thread.is_alive():
                break
        return outcome


class _Outcome:
    """What a request run by :meth:`Parked.run` returned or raised."""

    def __init__(self) -> None:
        self.result: UploadState | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def capture(self, call: Callable[[], UploadState]) -> None:
        try:
            self.result = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc

    def wait(self) -> "_Outcome":
        assert self.thread is not None
        self.thread.join(60)
        assert not self.thread.is_alive(), "the parked request never finished"
        return self


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


class _SuiteBase:
    """The fixtures and helpers :class:`StorageSuite` and :class:`LargeStorageSuite` share."""

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

    @pytest.fixture(autouse=True)
    def _leaves_no_upload(self, storage: Storage) -> Iterator[None]:
        """Every test ends with no upload of its own left (distribution's ``TearDownTest``)."""
        before = {info.upload_id for info in storage.list_uploads()}
        yield
        left = {info.upload_id for info in storage.list_uploads()} - before
        assert not left, f"uploads left behind: {sorted(left)}"

    @staticmethod
    def upload(storage: Storage, pieces: Iterable[Iterable[bytes]], key: str) -> int:
        """Run one upload of ``pieces`` (one ``write_upload`` each), commit it to ``key``; its size."""
        upload_id = new_upload_id()
        state = storage.create_upload(upload_id, b"")
        for i, chunks in enumerate(pieces):
            state = storage.write_upload(upload_id, state.version, chunks, meta(str(i)))
        storage.commit_upload(upload_id, state.version, key)
        return state.size

    @staticmethod
    def started(storage: Storage, data: bytes = b"") -> tuple[str, UploadState]:
        """A new upload holding ``data``, and its state."""
        upload_id = new_upload_id()
        state = storage.create_upload(upload_id, b"created")
        if data:
            state = storage.write_upload(upload_id, state.version, [data], meta("first"))
        return upload_id, state



class StorageSuite(_SuiteBase):
    """The conformance tests; subclass it with a ``storage`` fixture (see the module docstring)."""

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

    def test_write_if_absent(self, storage: Storage, ns: str) -> None:
        """``if_absent`` creates a missing object and never replaces an existing one."""
        assert storage.write(ns + "a", b"first", if_absent=True) is True
        assert storage.write(ns + "a", b"second", if_absent=True) is False
        assert storage.read(ns + "a") == b"first"
        assert storage.write(ns + "a", b"third") is True
        assert storage.read(ns + "a") == b"third"

    def test_concurrent_write_if_absent_has_one_winner(self, storage: Storage, ns: str) -> None:
        key = ns + "contended"
        barrier = threading.Barrier(self.threads)

        def create(i: int) -> bool:
            barrier.wait()
            return storage.write(key, f"writer {i}".encode(), if_absent=True)

        with ThreadPoolExecutor(self.threads) as pool:
            created = list(pool.map(create, range(self.threads)))
        assert created.count(True) == 1
        assert storage.read(key) == f"writer {created.index(True)}".encode()

    # -- compare-and-swap ---------------------------------------------------------------------

    def test_swap_creates_only_if_absent(self, storage: Storage, ns: str) -> None:
        version = storage.swap(ns + "record", b"first", None)
        assert storage.read_versioned(ns + "record") == (b"first", version)
        with pytest.raises(VersionConflict):
            storage.swap(ns + "record", b"second", None)
        assert storage.read(ns + "record") == b"first"

    def test_swap_replaces_only_at_its_version(self, storage: Storage, ns: str) -> None:
        first = storage.swap(ns + "record", b"first", None)
        second = storage.swap(ns + "record", b"second", first)
        assert second != first
        with pytest.raises(VersionConflict):
            storage.swap(ns + "record", b"stale writer", first)
        assert storage.read_versioned(ns + "record") == (b"second", second)
        storage.delete(ns + "record")
        with pytest.raises(VersionConflict):
            storage.swap(ns + "record", b"after delete", second)
        with pytest.raises(KeyNotFound):
            storage.read_versioned(ns + "record")

    def test_swap_version_follows_plain_writes(self, storage: Storage, ns: str) -> None:
        storage.write(ns + "record", b"written")
        _, version = storage.read_versioned(ns + "record")
        storage.write(ns + "record", b"written again")
        with pytest.raises(VersionConflict):
            storage.swap(ns + "record", b"swap", version)
        _, version = storage.read_versioned(ns + "record")
        storage.swap(ns + "record", b"swap", version)
        assert storage.read(ns + "record") == b"swap"

    def test_concurrent_swaps_from_one_version_have_one_winner(self, storage: Storage, ns: str) -> None:
        """Any interleaving: of writers that read one version, exactly one swaps."""
        start = storage.swap(ns + "record", b"start", None)

        def swap(i: int) -> bool:
            try:
                storage.swap(ns + "record", f"writer {i}".encode(), start)
            except VersionConflict:
                return False
            return True

        with ThreadPoolExecutor(self.threads) as pool:
            won = list(pool.map(swap, range(self.threads)))
        assert won.count(True) == 1
        assert storage.read(ns + "record") == f"writer {won.index(True)}".encode()

    def test_hostile_keys_cannot_swap(self, storage: Storage) -> None:
        for key in HOSTILE_KEYS:
            with pytest.raises(InvalidKey):
                storage.swap(key, b"x", None)
            with pytest.raises(InvalidKey):
                storage.read_versioned(key)

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

    def test_list_sizes(self, storage: Storage, ns: str, part: int) -> None:
        objects = {"a": b"", "b/c": b"12345", "b/d/e": payload(part + 3, seed=40)}
        for key, data in objects.items():
            storage.write(ns + key, data)
        assert dict(storage.list_sizes(ns)) == {k: len(v) for k, v in objects.items()}
        assert dict(storage.list_sizes(ns + "b/")) == {"c": 5, "d/e": part + 3}
        assert list(storage.list_sizes(ns + "missing/")) == []

    def test_list_hides_uploads(self, storage: Storage, ns: str) -> None:
        upload_id, _ = self.started(storage, b"in progress")
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
        upload_id, state = self.started(storage, b"upload bytes")
        aliases = [f"{name}/{upload_id}" for name in ("_uploads", "uploads", "_upload", "upload")]
        try:
            for key in aliases:
                storage.write(key, b"an object")
            storage.commit_upload(upload_id, state.version, aliases[0] + "-committed")
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
        with pytest.raises(InvalidKey):
            storage.write(key, b"pwned", if_absent=True)
        upload_id, state = self.started(storage, b"pwned")
        with pytest.raises(InvalidKey):
            storage.commit_upload(upload_id, state.version, key)
        storage.abort_upload(upload_id)
        assert _tree(tmp_path) == before, "a hostile key wrote something"

    @pytest.mark.parametrize("upload_id", HOSTILE_UPLOAD_IDS, ids=repr)
    def test_hostile_upload_id(self, storage: Storage, upload_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        before = _tree(tmp_path)
        calls: list[Callable[[], object]] = [
            lambda: storage.create_upload(upload_id, b""),
            lambda: storage.upload_state(upload_id),
            lambda: storage.write_upload(upload_id, "v", [b"pwned"], meta("pwned")),
            lambda: storage.open_upload(upload_id, "v"),
            lambda: storage.commit_upload(upload_id, "v", "t/x"),
            lambda: storage.abort_upload(upload_id),
        ]
        for call in calls:
            with pytest.raises(InvalidKey):
                call()
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
        upload_id, state = self.started(storage)
        assert (state.size, state.meta) == (0, b"created")
        state = storage.write_upload(upload_id, state.version, [], meta("none"))
        state = storage.write_upload(upload_id, state.version, [b"", b""], meta("empty"))
        assert (state.size, state.meta) == (0, b"empty")
        assert storage.commit_upload(upload_id, state.version, ns + "empty") is True
        assert storage.read(ns + "empty") == b""
        assert storage.size(ns + "empty") == 0

    def test_upload_states(self, storage: Storage, ns: str, part: int) -> None:
        """Each write records a new state: the size, a fresh version, the caller's record."""
        upload_id, state = self.started(storage)
        data = payload(2 * part + 7, seed=5)
        versions = {state.version}
        for i, piece in enumerate((data[:3], data[3 : part + 1], data[part + 1 :])):
            state = storage.write_upload(upload_id, state.version, [piece], meta(f"after {i}"))
            assert storage.upload_state(upload_id) == state
            versions.add(state.version)
        assert (state.size, state.meta) == (len(data), b"after 2")
        assert len(versions) == 4, "a version was reused"
        storage.commit_upload(upload_id, state.version, ns + "blob")
        assert storage.read(ns + "blob") == data

    def test_meta_is_taken_after_the_chunks(self, storage: Storage, ns: str) -> None:
        upload_id, state = self.started(storage)
        consumed: list[bytes] = []

        def chunks() -> Iterator[bytes]:
            for piece in (b"ab", b"cd"):
                consumed.append(piece)
                yield piece

        state = storage.write_upload(upload_id, state.version, chunks(),
                                     lambda: b"+".join(consumed))
        assert state.meta == b"ab+cd"
        storage.abort_upload(upload_id)

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
        upload_id, state = self.started(storage)
        for i, piece in enumerate(pieces):
            backend = (storage, other_storage)[i % 2]
            assert backend.upload_state(upload_id) == state
            state = backend.write_upload(upload_id, state.version, [piece], meta(str(i)))
        other_storage.commit_upload(upload_id, state.version, ns + "blob")
        assert storage.read(ns + "blob") == data

    @pytest.mark.parametrize("fail_at", ["start", "inside", "part", "after-part"])
    def test_failed_write_keeps_the_state(self, storage: Storage, ns: str, part: int, fail_at: str) -> None:
        """A body that breaks off records nothing: the same version continues, as if never sent."""
        data = payload(3 * part, seed=8)
        upload_id, state = self.started(storage, data[:100])
        after = {"start": 0, "inside": 50, "part": part, "after-part": part + part // 2}[fail_at]
        with pytest.raises(ChunkFailure):
            storage.write_upload(upload_id, state.version,
                                 failing(split(data[100:], [33] + [part // 4] * 20), after),
                                 meta("never"))
        assert storage.upload_state(upload_id) == state
        state = storage.write_upload(upload_id, state.version, [data[100:]], meta("rest"))
        assert state.size == len(data)
        storage.commit_upload(upload_id, state.version, ns + "blob")
        assert storage.read(ns + "blob") == data

    def test_failed_first_chunk_keeps_upload(self, storage: Storage, ns: str) -> None:
        upload_id, state = self.started(storage)
        with pytest.raises(ChunkFailure):
            storage.write_upload(upload_id, state.version, failing([b"abc"], 0), meta("never"))
        state = storage.write_upload(upload_id, state.version, [b"xyz"], meta("xyz"))
        assert state.size == 3
        storage.commit_upload(upload_id, state.version, ns + "blob")
        assert storage.read(ns + "blob") == b"xyz"

    def test_stale_version_is_a_conflict(self, storage: Storage, ns: str, part: int) -> None:
        """A write or commit from a version that is no longer current records nothing."""
        upload_id, first = self.started(storage, payload(part + 3, seed=12))
        second = storage.write_upload(upload_id, first.version, [b"more"], meta("second"))
        touched: list[bytes] = []

        def body() -> Iterator[bytes]:
            touched.append(b"read")
            yield b"from the stale version"

        with pytest.raises(UploadConflict):
            storage.write_upload(upload_id, first.version, body(), meta("stale"))
        with pytest.raises(UploadConflict):
            storage.commit_upload(upload_id, first.version, ns + "blob")
        with pytest.raises(UploadConflict):
            storage.write_upload(upload_id, "no-such-version", [b"x"], meta("bogus"))
        assert storage.upload_state(upload_id) == second
        with pytest.raises(KeyNotFound):
            storage.read(ns + "blob")
        storage.commit_upload(upload_id, second.version, ns + "blob")
        assert storage.read(ns + "blob") == payload(part + 3, seed=12) + b"more"
        assert touched in ([], [b"read"])

    def test_create_taken_id_is_a_conflict(self, storage: Storage, ns: str) -> None:
        upload_id, state = self.started(storage, b"mine")
        with pytest.raises(UploadConflict):
            storage.create_upload(upload_id, b"theirs")
        assert storage.upload_state(upload_id) == state
        storage.abort_upload(upload_id)

    def test_open_upload_reads_the_version(self, storage: Storage, ns: str, part: int) -> None:
        """What a registry verifies with another hash is what it then commits."""
        data = payload(2 * part + 9, seed=13)
        upload_id, state = self.started(storage, data[:part + 1])
        state = storage.write_upload(upload_id, state.version, [data[part + 1 :]], meta("all"))
        reader = storage.open_upload(upload_id, state.version)
        try:
            read = b"".join(iter(lambda: reader.read(65536), b""))
        finally:
            reader.close()
        assert read == data
        assert storage.upload_state(upload_id).size == len(data)
        assert storage.commit_upload(upload_id, state.version, ns + "blob") is True
        assert storage.read(ns + "blob") == data

    def test_commit_keeps_an_existing_object(self, storage: Storage, ns: str, part: int) -> None:
        """Content-addressed keys are immutable: a commit onto one keeps what is there."""
        storage.write(ns + "blob", b"committed first")
        upload_id, state = self.started(storage, b"other bytes")
        assert storage.commit_upload(upload_id, state.version, ns + "blob") is False
        assert storage.read(ns + "blob") == b"committed first"
        big = payload(part + 1, seed=13)
        self.upload(storage, [[big]], ns + "big")
        upload_id, state = self.started(storage, b"x")
        assert storage.commit_upload(upload_id, state.version, ns + "big") is False
        assert storage.read(ns + "big") == big
        with pytest.raises(KeyNotFound):
            storage.upload_state(upload_id)

    def test_commit_ends_upload(self, storage: Storage, ns: str) -> None:
        upload_id, state = self.started(storage, b"data")
        assert storage.commit_upload(upload_id, state.version, ns + "blob") is True
        with pytest.raises(KeyNotFound):
            storage.upload_state(upload_id)
        with pytest.raises(KeyNotFound):
            storage.write_upload(upload_id, state.version, [b"more"], meta("more"))
        with pytest.raises(KeyNotFound):
            storage.commit_upload(upload_id, state.version, ns + "again")
        storage.abort_upload(upload_id)  # a finished upload aborts quietly
        assert storage.read(ns + "blob") == b"data"

    def test_commit_to_invalid_key_keeps_upload(self, storage: Storage, ns: str) -> None:
        upload_id, state = self.started(storage, b"data")
        with pytest.raises(InvalidKey):
            storage.commit_upload(upload_id, state.version, "../escape")
        assert storage.upload_state(upload_id) == state
        storage.commit_upload(upload_id, state.version, ns + "blob")
        assert storage.read(ns + "blob") == b"data"

    def test_unknown_upload(self, storage: Storage, ns: str) -> None:
        upload_id = new_upload_id()
        calls: list[Callable[[], object]] = [
            lambda: storage.upload_state(upload_id),
            lambda: storage.write_upload(upload_id, "v", [b"data"], meta("x")),
            lambda: storage.open_upload(upload_id, "v"),
            lambda: storage.commit_upload(upload_id, "v", ns + "blob"),
        ]
        for call in calls:
            with pytest.raises(KeyNotFound):
                call()
        storage.abort_upload(upload_id)
        with pytest.raises(KeyNotFound):
            storage.read(ns + "blob")

    def test_abort(self, storage: Storage, ns: str, part: int) -> None:
        upload_id, state = self.started(storage, payload(part + 5))
        storage.abort_upload(upload_id)
        with pytest.raises(KeyNotFound):
            storage.write_upload(upload_id, state.version, [b"more"], meta("more"))
        with pytest.raises(KeyNotFound):
            storage.commit_upload(upload_id, state.version, ns + "blob")
        storage.abort_upload(upload_id)
        assert list(storage.list(ns)) == []
        assert upload_id not in {info.upload_id for info in storage.list_uploads()}

    def test_interleaved_uploads(self, storage: Storage, ns: str, part: int) -> None:
        a, b = payload(part + 11, seed=14), payload(part + 22, seed=15)
        ids = new_upload_id(), new_upload_id()
        states = [storage.create_upload(upload_id, b"") for upload_id in ids]
        for pa, pb in zip(split(a, [part // 2] * 2), split(b, [part // 2] * 2)):
            states[0] = storage.write_upload(ids[0], states[0].version, [pa], meta("a"))
            states[1] = storage.write_upload(ids[1], states[1].version, [pb], meta("b"))
        storage.commit_upload(ids[1], states[1].version, ns + "b")
        storage.commit_upload(ids[0], states[0].version, ns + "a")
        assert storage.read(ns + "a") == a
        assert storage.read(ns + "b") == b

    def test_upload_not_visible_before_commit(self, storage: Storage, ns: str, part: int) -> None:
        upload_id, state = self.started(storage, payload(part + 1))
        with pytest.raises(KeyNotFound):
            storage.size(ns + "blob")
        assert list(storage.list(ns)) == []
        storage.commit_upload(upload_id, state.version, ns + "blob")
        assert list(storage.list(ns)) == ["blob"]

    def test_list_uploads(self, storage: Storage, other_storage: Storage, ns: str) -> None:
        ids = {self.started(storage, b"x")[0] for _ in range(3)}
        listed = {info.upload_id: info for info in other_storage.list_uploads()}
        assert ids <= set(listed)
        assert all(abs(listed[i].last_activity - time.time()) < 3600 for i in ids)
        for upload_id in ids:
            storage.abort_upload(upload_id)

    def test_purge_uploads_by_last_activity(self, storage: Storage, ns: str) -> None:
        """Uploads idle for longer than asked go, with every byte kept for them; recent ones stay."""
        idle = [self.started(storage, b"idle")[0] for _ in range(2)]
        assert set(idle) <= set(storage.purge_uploads(3600, now=time.time() + 7200))
        for upload_id in idle:
            with pytest.raises(KeyNotFound):
                storage.upload_state(upload_id)
        assert not set(idle) & {info.upload_id for info in storage.list_uploads()}
        recent, state = self.started(storage, b"recent")
        assert recent not in storage.purge_uploads(3600)
        assert storage.upload_state(recent) == state
        storage.abort_upload(recent)

    def test_purge_keeps_active_uploads(self, storage: Storage, ns: str) -> None:
        upload_id, state = self.started(storage, b"busy")
        assert upload_id not in storage.purge_uploads(3600)
        state = storage.write_upload(upload_id, state.version, [b" still"], meta("still"))
        storage.commit_upload(upload_id, state.version, ns + "blob")
        assert storage.read(ns + "blob") == b"busy still"

    # -- the concurrency contract: one upload, any interleaving -------------------------------

    @pytest.mark.parametrize("where", ["before-body", "mid-body", "past-part"])
    def test_two_writes_from_one_version(self, storage: Storage, ns: str, part: int, where: str) -> None:
        """Two PATCHes from one offset: one is recorded, whole; the other records nothing.

        The first write is held at ``where`` while the second runs to its end.
        """
        upload_id, start = self.started(storage, b"head:")
        first_bytes, second_bytes = payload(2 * part + 3, seed=20), payload(part + 9, seed=21)
        after = {"before-body": 0, "mid-body": 7, "past-part": part + 1}[where]
        parked = Parked(first_bytes, after)
        first = parked.run(lambda: storage.write_upload(upload_id, start.version, parked, meta("first")))
        try:
            second: UploadState | None = storage.write_upload(upload_id, start.version, [second_bytes], meta("second"))
        except UploadConflict:
            second = None
        parked.released.set()
        first.wait()
        results = {"first": first.result, "second": second}
        winners = [name for name, result in results.items() if result is not None]
        assert len(winners) == 1, f"both or neither recorded: {results}, {first.error!r}"
        if first.result is None:
            assert isinstance(first.error, (UploadConflict, KeyNotFound)), repr(first.error)
        winner = results[winners[0]]
        assert winner is not None
        assert storage.upload_state(upload_id) == winner
        assert winner.meta == winners[0].encode()
        expected = b"head:" + (first_bytes if winners[0] == "first" else second_bytes)
        self._commit_exactly(storage, upload_id, winner, ns + "blob", expected)

    @pytest.mark.parametrize("where", ["before-body", "mid-body", "past-part"])
    @pytest.mark.parametrize("ending", ["sends-the-rest", "disconnects"])
    @pytest.mark.parametrize("target", ["new", "existing"])
    def test_parked_write_never_reaches_a_commit(self, storage: Storage, ns: str, part: int, where: str,
                                                 ending: str, target: str) -> None:
        """The parked-PATCH attack: a write held open while the session is committed.

        Committed bytes never change: not by the held write's later bytes, nor by its
        connection closing, whether the commit created the object or found it already there.
        """
        data = payload(part + 21, seed=22)
        key = ns + "blob"
        if target == "existing":
            storage.write(key, data)  # another repository's blob with the same content
        upload_id, state = self.started(storage, data)
        after = {"before-body": 0, "mid-body": 5, "past-part": part + 1}[where]
        parked = Parked(payload(2 * part, seed=23), after, fail=ending == "disconnects")
        held = parked.run(lambda: storage.write_upload(upload_id, state.version, parked, meta("attacker")))
        try:
            created: bool | None = storage.commit_upload(upload_id, state.version, key)
        except UploadConflict:
            created = None  # the backend refuses while the write holds the upload
        if created is not None:
            assert created is (target == "new")
            assert storage.read(key) == data
        parked.released.set()
        held.wait()
        if created is not None:
            assert held.result is None, "a write was recorded on a committed upload"
            assert isinstance(held.error, (UploadConflict, KeyNotFound, ChunkFailure)), repr(held.error)
            assert storage.read(key) == data
            assert read_all(storage, key) == data
            with pytest.raises(KeyNotFound):
                storage.upload_state(upload_id)
            return
        # The commit was refused; the session goes on from whatever was recorded.
        current = storage.upload_state(upload_id)
        if held.result is not None:
            assert current == held.result and current.meta == b"attacker"
            expected = data + parked.data
        else:
            assert current == state
            expected = data
        if target == "existing":
            expected = data
        self._commit_exactly(storage, upload_id, current, key, expected)

    @pytest.mark.parametrize("where", ["before-body", "past-part"])
    def test_abort_while_a_write_is_held(self, storage: Storage, ns: str, part: int, where: str) -> None:
        upload_id, state = self.started(storage, b"abc")
        parked = Parked(payload(part + 1, seed=24), 0 if where == "before-body" else part + 1)
        held = parked.run(lambda: storage.write_upload(upload_id, state.version, parked, meta("held")))
        try:
            storage.abort_upload(upload_id)
            aborted = True
        except UploadConflict:
            aborted = False
        parked.released.set()
        held.wait()
        if aborted:
            assert held.result is None, "a write was recorded on an aborted upload"
            with pytest.raises(KeyNotFound):
                storage.upload_state(upload_id)
            storage.abort_upload(upload_id)  # leftovers of the held write, if any, go too
        else:
            assert held.result is not None and storage.upload_state(upload_id) == held.result
            storage.abort_upload(upload_id)
        assert upload_id not in {info.upload_id for info in storage.list_uploads()}

    def test_write_after_commit_began_from_its_version(self, storage: Storage, ns: str, part: int) -> None:
        """A write from the committed version that arrives after the commit records nothing."""
        upload_id, state = self.started(storage, b"abc")
        assert storage.commit_upload(upload_id, state.version, ns + "blob") is True
        with pytest.raises(KeyNotFound):
            storage.write_upload(upload_id, state.version, [payload(part + 1)], meta("late"))
        assert storage.read(ns + "blob") == b"abc"

    def _commit_exactly(self, storage: Storage, upload_id: str, state: UploadState, key: str,
                        expected: bytes) -> None:
        """Commit ``state``: the object is exactly ``expected``, or the commit is refused whole."""
        try:
            storage.commit_upload(upload_id, state.version, key)
        except UploadConflict:
            # A backend without locks may find a part rewritten by the losing write: it refuses
            # the commit rather than mix the two writes' bytes.
            storage.abort_upload(upload_id)
            with pytest.raises(KeyNotFound):
                storage.read(key)
            return
        assert read_all(storage, key) == expected

    # -- races between uploads ----------------------------------------------------------------

    def test_concurrent_commits_same_content(self, storage: Storage, ns: str, part: int) -> None:
        """Commits of one blob's uploads onto one key: exactly one creates it, the others keep it."""
        data = payload(part + 1234, seed=16)
        key = ns + "blobs/same"
        states = [self.started(storage, data) for _ in range(self.threads)]

        def commit(i: int) -> bool:
            upload_id, state = states[i]
            return storage.commit_upload(upload_id, state.version, key)

        with ThreadPoolExecutor(self.threads) as pool:
            created = list(pool.map(commit, range(self.threads)))
        assert created.count(True) == 1
        assert storage.read(key) == data
        assert list(storage.list(ns + "blobs/")) == ["same"]

    def test_concurrent_commits_never_mix(self, storage: Storage, ns: str, part: int) -> None:
        versions = [payload(part + 100 * i, seed=100 + i) for i in range(4)]
        key = ns + "mixed"
        states = [self.started(storage, versions[i % len(versions)]) for i in range(self.threads)]

        def commit(i: int) -> bool:
            upload_id, state = states[i]
            return storage.commit_upload(upload_id, state.version, key)

        with ThreadPoolExecutor(self.threads) as pool:
            created = list(pool.map(commit, range(self.threads)))
        assert created.count(True) == 1
        assert storage.read(key) == versions[created.index(True) % len(versions)]

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
                upload_id, state = self.started(storage)
                for piece in split(data, [part // 2] * 6):
                    state = storage.write_upload(upload_id, state.version, [piece], meta("piece"))
                    assert storage.delete(key) is False, "an uncommitted upload is visible"
                storage.commit_upload(upload_id, state.version, key)
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


#: The registry's read and request-body piece (``streams.CHUNK_SIZE``).
READ_SIZE = _MiB
#: Where the filesystem backend starts writing an upload back to disk (``sync_file_range``).
WRITEBACK_STEP = 8 * _MiB


class LargeStorageSuite(_SuiteBase):
    """The suite's large mode: uploads over 8 MiB, read back in the registry's 1 MiB pieces.

    Each body crosses the sizes where backends change how they work: the registry's 1 MiB read
    and request piece, the filesystem's 8 MiB writeback step (run it with ``fsync=True``: the
    writeback and the fsyncs are what it is about) and the backend's ``part_size`` (S3's 5 MiB
    multipart part). Subclass it like :class:`StorageSuite`; it has a few tests, each writing
    about ``WRITEBACK_STEP + part_size`` bytes, so it suits a default test run.
    """

    @pytest.fixture
    def size(self, part: int) -> int:
        """A body past the writeback step and a part boundary, not a multiple of either."""
        return max(WRITEBACK_STEP, part) + READ_SIZE + 3

    @pytest.fixture
    def boundaries(self, storage: Storage, size: int) -> list[int]:
        """Offsets on both sides of every boundary the body crosses, and its two ends."""
        edges = {0, size}
        for step in {READ_SIZE, WRITEBACK_STEP, int(getattr(storage, "part_size", 0) or WRITEBACK_STEP)}:
            edges.update(range(step, size, step))
        return sorted({o for edge in edges for o in (edge - 1, edge, edge + 1) if 0 <= o <= size})

    def test_large_body_in_one_request(self, storage: Storage, ns: str, size: int,
                                       boundaries: list[int]) -> None:
        """One request of pieces just under 1 MiB, read whole, and in two reads from each boundary."""
        data = payload(size, seed=101)
        assert self.upload(storage, [split(data, [READ_SIZE - 1] * (size // READ_SIZE))], ns + "big") == size
        assert storage.size(ns + "big") == size
        assert read_all(storage, ns + "big", piece=READ_SIZE) == data
        for offset in boundaries:
            reader = storage.open(ns + "big", offset)
            try:
                window = reader.read(READ_SIZE + 2) + reader.read(READ_SIZE + 2)
            finally:
                reader.close()
            assert window == data[offset:offset + 2 * (READ_SIZE + 2)], f"read from {offset} differs"

    def test_large_body_resumed_at_an_odd_offset(self, storage: Storage, other_storage: Storage,
                                                 ns: str, size: int) -> None:
        """A short first request, then the rest (past the writeback step) from another instance."""
        data = payload(size, seed=102)
        upload_id, state = self.started(storage, data[:READ_SIZE + 3])
        state = other_storage.write_upload(upload_id, state.version,
                                           split(data[state.size:], [700_001] * (size // 700_001)),
                                           meta("rest"))
        assert (state.size, state.meta) == (size, b"rest")
        reader = storage.open_upload(upload_id, state.version)
        try:
            assert reader.read(READ_SIZE) == data[:READ_SIZE]
        finally:
            reader.close()
        storage.commit_upload(upload_id, state.version, ns + "big")
        assert read_all(storage, ns + "big", piece=READ_SIZE) == data

    def test_large_request_that_breaks_off_past_the_writeback_step(self, storage: Storage, ns: str,
                                                                   size: int) -> None:
        """A body dropped past 8 MiB records nothing; the same version then takes the whole rest."""
        data = payload(size, seed=103)
        upload_id, state = self.started(storage, data[:3])
        with pytest.raises(ChunkFailure):
            storage.write_upload(upload_id, state.version,
                                 failing(split(data[3:], [READ_SIZE] * (size // READ_SIZE)),
                                         WRITEBACK_STEP + 100),
                                 meta("never"))
        assert storage.upload_state(upload_id) == state
        state = storage.write_upload(upload_id, state.version, [data[3:]], meta("rest"))
        assert state.size == size
        storage.commit_upload(upload_id, state.version, ns + "big")
        assert storage.size(ns + "big") == size
        assert read_all(storage, ns + "big", piece=READ_SIZE) == data
