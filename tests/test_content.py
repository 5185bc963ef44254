"""Registry semantics over real storage: uploads, blob links and mounts, manifests, tags, referrers.

Every test runs over MemoryStorage and FilesystemStorage. Spec sections (oci-distribution-spec.md)
are named per test: "Pushing a blob in chunks", "Pushing a blob monolithically", "Mounting a blob
from another repository", "Pushing Manifests", "Pushing Manifests with Subject", "Listing Tags",
"Listing Referrers", "Deleting tags", "Deleting Manifests", "Deleting Blobs"; and
docker-registry-http-api-v2.md "Listing Repositories" / "Pagination".
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, strategies as st

from docker_registry_wsgi.content import RegistryContent, Upload
from docker_registry_wsgi.content.paths import blob_key
from docker_registry_wsgi.digests import Digest, parse_digest
from docker_registry_wsgi.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    RangeInvalid,
    SizeInvalid,
)
from docker_registry_wsgi.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from docker_registry_wsgi.storage import FilesystemStorage, KeyNotFound, Storage, UploadState
from tests.unit_fixtures import BACKENDS, FAST, QUICK, make_storage, repository_names, sha256, sha512, tags

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture
def content(storage: Storage) -> RegistryContent:
    return RegistryContent(storage)


# -- helpers ----------------------------------------------------------------------------------------


def push_blob(content: RegistryContent, name: str, data: bytes, algorithm: str = "sha256") -> Digest:
    """A monolithic push: one session, one chunk, closed with the digest."""
    digest = parse_digest((sha256 if algorithm == "sha256" else sha512)(data))
    upload = content.start_upload(name, algorithm)
    assert content.finish(upload, digest, [data], length=len(data)) == len(data)
    return digest


def read_blob(content: RegistryContent, name: str, digest: Digest, offset: int = 0) -> bytes:
    reader = content.open_blob(name, digest, offset)
    try:
        parts = []
        while chunk := reader.read(1 << 16):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        reader.close()


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


def push_image(content: RegistryContent, name: str, reference: Any, *, seed: bytes = b"",
               **extra: Any) -> tuple[Digest, bytes]:
    """Push config + one layer and an OCI manifest naming them; returns (digest, body)."""
    config, layer = b'{"seed": "%s"}' % seed, b"layer" + seed
    push_blob(content, name, config)
    push_blob(content, name, layer)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": [descriptor(LAYER_TYPE, layer)],
        **extra,
    }
    body = json.dumps(doc, indent=1).encode()
    digest, _ = content.put_manifest(name, reference, body, OCI_MANIFEST)
    return digest, body


def upload_file_size(storage: Storage, upload_id: str) -> int | None:
    """The size of an upload's bytes as the filesystem holds them (None for other backends)."""
    if isinstance(storage, FilesystemStorage):
        return os.path.getsize(os.path.join(storage.root, "~uploads", upload_id))
    return None


def snapshot(content: RegistryContent, upload: Upload) -> tuple[UploadState, Upload, int | None]:
    """Everything observable of a session: its storage state, its parsed state and its byte count."""
    state = content.storage.upload_state(upload.id)
    return state, content.get_upload(upload.name, upload.id), upload_file_size(content.storage, upload.id)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


# -- uploads: offset arithmetic -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@FAST
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8),
       with_range=st.lists(st.booleans(), min_size=9, max_size=9), last_in_put=st.booleans())
def test_any_chunking_reassembles_to_the_same_digest(backend: str, data: bytes, cuts: list[int],
                                                     with_range: list[bool], last_in_put: bool) -> None:
    """spec "Pushing a blob in chunks": any chunking, with or without Content-Range, gives the same blob.

    Each chunk goes through a fresh RegistryContent reading the session back from storage, as
    consecutive requests served by different processes do.
    """
    with make_storage(backend) as storage:
        upload = RegistryContent(storage).start_upload("a/b")
        chunks = split(data, cuts)
        final = chunks.pop() if last_in_put and chunks else None
        offset = 0
        for i, chunk in enumerate(chunks):
            content = RegistryContent(storage)
            session = content.get_upload("a/b", upload.id)
            assert session.offset == offset
            start = offset if with_range[i] else None
            content.append(session, iter([chunk]), start=start, length=len(chunk) if with_range[i] else None)
            offset += len(chunk)
            assert RegistryContent(storage).get_upload("a/b", upload.id).offset == offset
        content = RegistryContent(storage)
        session = content.get_upload("a/b", upload.id)
        digest = parse_digest(sha256(data))
        if final is None:
            size = content.finish(session, digest)
        else:
            size = content.finish(session, digest, iter([final]), start=offset, length=len(final))
        assert size == len(data)
        assert content.stat_blob("a/b", digest) == len(data)
        assert read_blob(content, "a/b", digest) == data
        with pytest.raises(BlobUploadUnknown):
            content.get_upload("a/b", upload.id)


@pytest.mark.parametrize("backend", BACKENDS)
@QUICK
@given(data=st.binary(min_size=1, max_size=800), cut=st.integers(0, 800), wrong=st.integers(0, 10**18))
def test_out_of_order_chunk_is_416_and_leaves_the_session(backend: str, data: bytes, cut: int, wrong: int) -> None:
    """spec "Pushing a blob in chunks": a chunk not starting at the offset gets 416; nothing changes."""
    cut = min(cut, len(data))
    with make_storage(backend) as storage:
        content = RegistryContent(storage)
        upload = content.start_upload("repo")
        if cut:
            content.append(upload, [data[:cut]], start=0, length=cut)
        if wrong == cut:
            wrong += 1
        before = snapshot(content, upload)
        session = content.get_upload("repo", upload.id)
        with pytest.raises(RangeInvalid) as info:
            content.append(session, [data[cut:]], start=wrong, length=len(data) - cut)
        assert info.value.status == 416 and info.value.code == "BLOB_UPLOAD_INVALID"
        assert info.value.detail == {"offset": cut, "start": wrong}
        assert snapshot(content, upload) == before
        assert session == before[1], "the in-memory session is untouched as well"
        with pytest.raises(RangeInvalid):  # a last chunk in the closing PUT is checked the same way
            content.finish(session, parse_digest(sha256(data)), [data[cut:]], start=wrong)
        assert snapshot(content, upload) == before
        # The client asks for the status and continues where the session really is.
        session = content.get_upload("repo", upload.id)
        content.append(session, [data[cut:]], start=session.offset)
        content.finish(session, parse_digest(sha256(data)))
        assert read_blob(content, "repo", parse_digest(sha256(data))) == data


class ClientWentAway(Exception):
    """Raised by a body iterator whose client disconnected mid-chunk."""


def failing_body(parts: list[bytes]) -> Iterator[bytes]:
    yield from parts
    raise ClientWentAway("connection reset")


@pytest.mark.parametrize("backend", BACKENDS)
@QUICK
@given(data=st.binary(min_size=2, max_size=1500), cuts=st.lists(st.integers(0, 1500), min_size=2, max_size=4),
       sent=st.integers(0, 1500))
def test_chunk_that_fails_midway_leaves_the_session_and_the_upload_continues(
    backend: str, data: bytes, cuts: list[int], sent: int
) -> None:
    """spec "Resumable Push": a chunk whose body breaks off is not recorded; the client resends it."""
    first, rest = split(data, cuts[:1])[0], data[len(split(data, cuts[:1])[0]):]
    with make_storage(backend) as storage:
        content = RegistryContent(storage)
        upload = content.start_upload("repo")
        content.append(upload, [first], start=0)
        before = snapshot(content, upload)
        sent = min(sent, len(rest))
        session = content.get_upload("repo", upload.id)
        with pytest.raises(ClientWentAway):
            content.append(session, failing_body([rest[:sent][:7], rest[7:sent]]), start=len(first))
        assert snapshot(content, upload) == before
        session = content.get_upload("repo", upload.id)
        with pytest.raises(ClientWentAway):  # the same in the closing PUT
            content.finish(session, parse_digest(sha256(data)), failing_body([rest[:sent]]), start=len(first))
        assert snapshot(content, upload) == before
        session = content.get_upload("repo", upload.id)
        content.append(session, [rest], start=len(first))
        assert content.finish(session, parse_digest(sha256(data))) == len(data)
        assert read_blob(content, "repo", parse_digest(sha256(data))) == data


@pytest.mark.parametrize("declared", [0, 4, 6, 1000])
def test_body_length_must_match_the_declared_length(content: RegistryContent, declared: int) -> None:
    """spec "Pushing a blob in chunks": Content-Length is the chunk's length; a mismatch is SIZE_INVALID."""
    upload = content.start_upload("repo")
    content.append(upload, [b"abc"], start=0, length=3)
    before = snapshot(content, upload)
    with pytest.raises(SizeInvalid):
        content.append(content.get_upload("repo", upload.id), [b"de", b"f"], start=3, length=declared)
    assert snapshot(content, upload) == before
    content.append(content.get_upload("repo", upload.id), [b"de", b"f"], start=3, length=3)
    assert content.get_upload("repo", upload.id).offset == 6


def test_empty_blob(content: RegistryContent) -> None:
    """descriptor.md "Digest calculations": the empty blob is a blob like any other (size 0)."""
    upload = content.start_upload("repo")
    digest = parse_digest(sha256(b""))
    assert content.finish(upload, digest) == 0
    assert content.stat_blob("repo", digest) == 0
    assert read_blob(content, "repo", digest) == b""


def test_empty_chunks_do_not_move_the_offset(content: RegistryContent) -> None:
    """spec "Pushing a blob in chunks": a PATCH with an empty body leaves the offset where it was."""
    upload = content.start_upload("repo")
    content.append(upload, [])
    content.append(upload, [b"", b"x", b""])
    content.append(upload, [b""], start=1)
    assert content.get_upload("repo", upload.id).offset == 1


# -- uploads: closing, verification ----------------------------------------------------------------


def test_digest_mismatch_stores_nothing_and_drops_the_session(content: RegistryContent) -> None:
    """spec "Pushing a blob in chunks" / "Content Verification": a wrong digest is DIGEST_INVALID, nothing stored."""
    storage = content.storage
    upload = content.start_upload("repo")
    content.append(upload, [b"hello "], start=0)
    wrong = parse_digest(sha256(b"something else"))
    with pytest.raises(DigestInvalid) as info:
        content.finish(upload, wrong, [b"world"], start=6)
    assert info.value.detail == {"expected": str(wrong), "actual": sha256(b"hello world")}
    for digest in (wrong, parse_digest(sha256(b"hello world"))):
        with pytest.raises(BlobUnknown):
            content.stat_blob("repo", digest)
        with pytest.raises(KeyNotFound):
            storage.size(blob_key(digest))
    with pytest.raises(BlobUploadUnknown):
        content.get_upload("repo", upload.id)
    assert list(storage.list_uploads()) == []
    assert not content.repository_exists("repo")
    if isinstance(storage, FilesystemStorage):
        assert os.listdir(os.path.join(storage.root, "~uploads")) == []


def test_sessions_are_bound_to_their_repository(content: RegistryContent) -> None:
    """Issue #2 "Uploads": session identifiers are unguessable and bound to their repository."""
    upload = content.start_upload("team/a")
    assert len(upload.id) >= 32
    assert upload.id != content.start_upload("team/a").id
    for other in ("team/b", "team", "team/a/b", "Team/a"):
        with pytest.raises(BlobUploadUnknown):
            content.get_upload(other, upload.id)
    assert content.get_upload("team/a", upload.id).id == upload.id


@pytest.mark.parametrize("upload_id", ["", "nope", "..", "../uploads/x", "a/b", "x" * 2000, "\x00", "ab~cd" * 8])
def test_unknown_or_malformed_session_ids_are_upload_unknown(content: RegistryContent, upload_id: str) -> None:
    """spec "Error Codes" (BLOB_UPLOAD_UNKNOWN): a made-up or hostile session id is unknown, nothing else."""
    with pytest.raises(BlobUploadUnknown):
        content.get_upload("repo", upload_id)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_closed_session_is_upload_unknown_on_retry(content: RegistryContent, algorithm: str) -> None:
    """spec "Error Codes" (BLOB_UPLOAD_UNKNOWN): a retried or concurrent PUT/PATCH on a closed session.

    Another worker may hold the session as it was before the close; whatever digest it closes
    with (same algorithm or the re-hash path), the answer is BLOB_UPLOAD_UNKNOWN, not a storage error.
    """
    upload = content.start_upload("repo")
    content.append(upload, [b"abc"])
    stale = content.get_upload("repo", upload.id)
    content.finish(upload, parse_digest(sha256(b"abc")))
    digest = parse_digest((sha256 if algorithm == "sha256" else sha512)(b"abc"))
    with pytest.raises(BlobUploadUnknown):
        content.finish(stale, digest)
    with pytest.raises(BlobUploadUnknown):
        content.append(stale, [b"more"])
    cancelled = content.start_upload("repo")
    stale = content.get_upload("repo", cancelled.id)
    content.cancel(cancelled)
    with pytest.raises(BlobUploadUnknown):  # the empty blob's digest: the stale hash state matches
        content.finish(stale, parse_digest((sha256 if algorithm == "sha256" else sha512)(b"")))


def test_cancelled_session_is_gone(content: RegistryContent) -> None:
    """spec "Cancel a blob upload": after DELETE the session is unknown and its bytes are dropped."""
    upload = content.start_upload("repo")
    content.append(upload, [b"abc"])
    content.cancel(upload)
    with pytest.raises(BlobUploadUnknown):
        content.get_upload("repo", upload.id)
    assert list(content.storage.list("uploads/")) == []


def test_sha512_upload(content: RegistryContent) -> None:
    """spec "Pushing a blob in chunks" (``digest-algorithm=sha512``): the session hashes with sha512."""
    data = os.urandom(5000)
    upload = content.start_upload("repo", "sha512")
    assert upload.algorithm == "sha512"
    content.append(upload, [data[:1234]], start=0)
    content.append(content.get_upload("repo", upload.id), [data[1234:]], start=1234)
    digest = parse_digest(sha512(data))
    assert content.finish(content.get_upload("repo", upload.id), digest) == len(data)
    assert blob_key(digest).startswith("blobs/sha512/")
    assert read_blob(content, "repo", digest) == data


def test_sha256_session_closed_with_a_sha512_digest_is_rehashed(content: RegistryContent) -> None:
    """spec "Pushing a blob in chunks": the closing PUT's digest decides; another algorithm is verified by re-reading."""
    data = os.urandom(3000)
    upload = content.start_upload("repo")
    content.append(upload, [data[:1000]])
    digest = parse_digest(sha512(data))
    assert content.finish(content.get_upload("repo", upload.id), digest, [data[1000:]], start=1000) == len(data)
    assert read_blob(content, "repo", digest) == data
    assert content.stat_blob("repo", digest) == len(data)
    with pytest.raises(BlobUnknown):  # stored under the digest the client named only
        content.stat_blob("repo", parse_digest(sha256(data)))
    assert list(content.storage.list("staging/")) == []
    assert list(content.storage.list("uploads/")) == []


def test_rehashed_mismatch_stores_nothing(content: RegistryContent) -> None:
    """spec "Content Verification": the re-hash path refuses a wrong digest just as the direct one does."""
    upload = content.start_upload("repo")
    content.append(upload, [b"payload"])
    wrong = parse_digest(sha512(b"other"))
    with pytest.raises(DigestInvalid):
        content.finish(upload, wrong)
    for digest in (wrong, parse_digest(sha512(b"payload")), parse_digest(sha256(b"payload"))):
        with pytest.raises(KeyNotFound):
            content.storage.size(blob_key(digest))
    assert list(content.storage.list("staging/")) == []
    assert list(content.storage.list("blobs/")) == []
    with pytest.raises(BlobUploadUnknown):
        content.get_upload("repo", upload.id)


def test_upload_continued_by_another_process_over_the_same_folder(tmp_path: Path) -> None:
    """Issue #2 "Storage": all upload state lives in the storage, so another process can continue a session.

    Two RegistryContent objects over two FilesystemStorage objects on one folder stand for two
    worker processes; the hash state travels through the folder, not through memory.
    """
    data = os.urandom(200_000)
    first = RegistryContent(FilesystemStorage(tmp_path))
    second = RegistryContent(FilesystemStorage(tmp_path))
    upload = first.start_upload("shared/repo")
    first.append(upload, [data[:70_000]], start=0, length=70_000)
    session = second.get_upload("shared/repo", upload.id)
    assert session.offset == 70_000 and session.hash_state == upload.hash_state
    second.append(session, [data[70_000:150_000]], start=70_000)
    session = first.get_upload("shared/repo", upload.id)
    assert session.offset == 150_000
    digest = parse_digest(sha256(data))
    first.finish(session, digest, [data[150_000:]], start=150_000)
    assert read_blob(second, "shared/repo", digest) == data
    assert second.repository_exists("shared/repo")


# -- blobs: links, mounts, deletion -----------------------------------------------------------------


def test_blob_visible_only_where_linked(content: RegistryContent) -> None:
    """Issue #2 "Storage": blobs are shared by content, but served only in repositories that received them."""
    digest = push_blob(content, "a", b"blob")
    assert content.stat_blob("a", digest) == 4
    assert read_blob(content, "a", digest, offset=2) == b"ob"
    for other in ("b", "a/a", "aa"):
        with pytest.raises(BlobUnknown):
            content.stat_blob(other, digest)
        with pytest.raises(BlobUnknown):
            content.open_blob(other, digest)


def test_mount_from_a_repository_holding_the_blob(content: RegistryContent) -> None:
    """spec "Mounting a blob from another repository": a mount links the blob; 201 and no copy."""
    digest = push_blob(content, "src", b"shared layer")
    assert content.mount_blob("dst/x", digest, "src") is True
    assert read_blob(content, "dst/x", digest) == b"shared layer"
    assert content.repository_exists("dst/x")
    assert content.mount_blob("dst/x", digest, "src") is True  # idempotent


def test_mount_from_a_repository_without_the_blob_fails(content: RegistryContent) -> None:
    """spec "Mounting a blob from another repository": unable to mount -> the caller falls back to 202."""
    digest = push_blob(content, "src", b"only in src")
    push_blob(content, "other", b"x")
    assert content.mount_blob("dst", digest, "other") is False
    assert content.mount_blob("dst", digest, "nowhere") is False
    with pytest.raises(BlobUnknown):
        content.stat_blob("dst", digest)
    assert not content.repository_exists("dst")


def test_mount_without_from_finds_the_blob_anywhere(content: RegistryContent) -> None:
    """spec "Mounting a blob from another repository": the registry MAY treat ``from`` as optional."""
    digest = push_blob(content, "src", b"findable")
    assert content.mount_blob("dst", digest, None) is True
    assert read_blob(content, "dst", digest) == b"findable"


def test_mount_of_a_missing_blob_fails(content: RegistryContent) -> None:
    """spec "Mounting a blob from another repository": nothing to mount -> not mounted."""
    missing = parse_digest(sha256(b"never pushed"))
    assert content.mount_blob("dst", missing, None) is False
    assert content.mount_blob("dst", missing, "src") is False
    assert not content.repository_exists("dst")


def test_delete_blob_unlinks_only_that_repository(content: RegistryContent) -> None:
    """spec "Deleting Blobs": the blob disappears from the repository; other repositories keep it."""
    digest = push_blob(content, "a", b"bytes")
    content.mount_blob("b", digest, "a")
    content.delete_blob("a", digest)
    with pytest.raises(BlobUnknown):
        content.stat_blob("a", digest)
    with pytest.raises(BlobUnknown):
        content.delete_blob("a", digest)
    assert read_blob(content, "b", digest) == b"bytes"


def test_mount_without_from_is_refused_unless_the_registry_allows_it(storage: Storage) -> None:
    """spec "Mounting a blob from another repository": ``from`` MAY be optional; a registry with an
    auth hook refuses it (the digest alone would grant a blob of a repository the caller may not pull)."""
    content = RegistryContent(storage, mount_without_from=False)
    digest = push_blob(content, "src", b"private layer")
    assert content.mount_blob("dst", digest, None) is False
    assert not content.repository_exists("dst")
    assert content.mount_blob("dst", digest, "src") is True


def test_a_mount_source_is_a_repository_name(content: RegistryContent) -> None:
    """spec "Pulling manifests" (the name grammar): a malformed ``from`` is NAME_INVALID, not "not mounted"."""
    digest = push_blob(content, "src", b"x")
    with pytest.raises(NameInvalid):
        content.mount_blob("dst", digest, "Not/A Name")


@pytest.mark.parametrize("mountable,with_digest,with_body,expected", [
    (True, False, False, "mounted"),
    (True, True, True, "mounted"),
    (False, True, True, "pushed"),    # the mount falls back to a monolithic push
    (False, True, False, "session"),  # ... or, with no body, to a session
    (False, False, False, "session"),
])
def test_post_upload_mount_and_monolithic_fallbacks(content: RegistryContent, mountable: bool,
                                                    with_digest: bool, with_body: bool, expected: str) -> None:
    """spec "Mounting a blob from another repository" and "Pushing a blob monolithically": a refused
    mount is the request without the mount (a push with a digest and body, else a 202 session)."""
    data = b"layer bytes"
    digest = parse_digest(sha256(data))
    if mountable:
        push_blob(content, "src", data)
    started = content.post_upload("dst", mount=digest, source="src",
                                  digest=digest if with_digest else None,
                                  body=[data] if with_body else None, length=len(data) if with_body else None)
    outcome = "session" if started.upload is not None else "mounted" if started.mounted else "pushed"
    assert outcome == expected
    if outcome == "session":
        assert started.upload is not None and started.upload.name == "dst"
        with pytest.raises(BlobUnknown):
            content.stat_blob("dst", digest)
    else:
        assert (started.digest, started.size) == (digest, len(data))
        assert started.source == ("src" if outcome == "mounted" else None)
        assert read_blob(content, "dst", digest) == data


def test_post_upload_with_a_digest_and_no_mount_pushes_the_body_even_empty(content: RegistryContent) -> None:
    """spec "Pushing a blob monolithically": ``POST ?digest=`` is the whole blob, here of zero bytes."""
    empty = parse_digest(sha256(b""))
    started = content.post_upload("repo", digest=empty)
    assert started.upload is None and started.digest == empty and started.size == 0
    assert content.stat_blob("repo", empty) == 0


def test_post_upload_session_takes_the_requested_algorithm(content: RegistryContent) -> None:
    """spec "Pushing blobs": a session may be opened for another registered algorithm (``digest-algorithm``)."""
    started = content.post_upload("repo", algorithm="sha512")
    assert started.upload is not None and started.upload.algorithm == "sha512"


def test_serve_blob_offers_the_storage_url_only_when_asked(content: RegistryContent) -> None:
    """A ``ServedBlob`` carries the size, a reader, and a redirect only for a ``GET`` that wants one."""
    digest = push_blob(content, "a", b"served bytes")
    served = content.serve_blob("a", digest, redirect=True)
    assert served.size == 12 and served.redirect_url is None  # memory and filesystem offer none
    reader = served.open(7)
    try:
        assert reader.read(100) == b"bytes"
    finally:
        reader.close()
    with pytest.raises(BlobUnknown):
        content.serve_blob("b", digest)


def test_range_invalid_carries_the_session_to_resume(content: RegistryContent) -> None:
    """spec "Pushing a blob in chunks": the 416 names the session's ``Location`` and ``Range`` itself."""
    upload = content.start_upload("team/app")
    content.append(upload, [b"0123456789"], start=0)
    with pytest.raises(RangeInvalid) as info:
        content.append(upload, [b"x"], start=3)
    assert info.value.headers["Range"] == "0-9"
    assert info.value.headers["Docker-Upload-UUID"] == upload.id
    assert info.value.link == ("upload", {"name": "team/app", "upload_id": upload.id})


def test_the_manifest_size_limit_holds_for_library_callers(storage: Storage) -> None:
    """spec "Pushing Manifests": a registry SHOULD refuse manifests over its limit with 413; the content
    layer does, so a caller that is not the HTTP handler cannot store one either."""
    content = RegistryContent(storage, max_manifest_size=200)
    config = push_blob(content, "repo", b"{}")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": str(config), "size": 2},
                "layers": [], "annotations": {"pad": "x" * 200}}
    body = json.dumps(manifest).encode()
    with pytest.raises(ManifestTooLarge) as info:
        content.put_manifest("repo", "v1", body, OCI_MANIFEST)
    assert (info.value.status, info.value.code) == (413, "MANIFEST_INVALID")
    with pytest.raises(ManifestUnknown):
        content.stat_manifest("repo", "v1")


# -- manifests ---------------------------------------------------------------------------------------


def test_manifest_put_get_by_tag_and_digest(content: RegistryContent) -> None:
    """spec "Pushing Manifests": stored byte for byte; "Pulling manifests" by tag or by digest."""
    digest, body = push_image(content, "lib/app", "v1")
    assert digest == parse_digest(sha256(body))
    for reference in ("v1", digest):
        stored = content.get_manifest("lib/app", reference)
        assert (stored.digest, stored.media_type, stored.size, stored.body) == (digest, OCI_MANIFEST, len(body), body)
        stat = content.stat_manifest("lib/app", reference)
        assert (stat.digest, stat.media_type, stat.size) == (digest, OCI_MANIFEST, len(body))
    assert content.tags("lib/app", None, None).items == ["v1"]


def test_manifest_media_type_comes_from_content_type_when_missing(content: RegistryContent) -> None:
    """spec "Pushing Manifests": Helm omits ``mediaType``; the stored type is the request's Content-Type."""
    config = b"{}"
    push_blob(content, "charts", config)
    body = json.dumps({"schemaVersion": 2, "config": descriptor("application/vnd.cncf.helm.config.v1+json", config),
                       "layers": []}).encode()
    content.put_manifest("charts", "0.1.0", body, OCI_MANIFEST + "; charset=utf-8")
    assert content.stat_manifest("charts", "0.1.0").media_type == OCI_MANIFEST


def test_manifest_push_by_digest_with_tags(content: RegistryContent) -> None:
    """spec "Pushing Manifests" (end-7b): by digest, optionally with ``tag`` parameters."""
    config = b"{}"
    push_blob(content, "r", config)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": descriptor(CONFIG_TYPE, config), "layers": []}).encode()
    digest = parse_digest(sha256(body))
    assert content.put_manifest("r", digest, body, OCI_MANIFEST, tags=["1", "1.0", "latest"])[0] == digest
    assert content.tags("r", None, None).items == ["1", "1.0", "latest"]
    assert content.get_manifest("r", "latest").body == body


def test_manifest_push_by_sha512_digest(content: RegistryContent) -> None:
    """spec "Pushing Manifests": the reference digest's algorithm is the one verified."""
    config = b"{}"
    push_blob(content, "r", config)
    body = json.dumps({"schemaVersion": 2, "config": descriptor(CONFIG_TYPE, config)}).encode()
    digest = parse_digest(sha512(body))
    assert content.put_manifest("r", digest, body, OCI_MANIFEST)[0] == digest
    assert content.get_manifest("r", digest).body == body


def test_manifest_digest_must_match_the_reference(content: RegistryContent) -> None:
    """spec "Pushing Manifests": Docker-Content-Digest MUST equal the client's digest; a mismatch stores nothing."""
    config = b"{}"
    push_blob(content, "r", config)
    body = json.dumps({"schemaVersion": 2, "config": descriptor(CONFIG_TYPE, config)}).encode()
    wrong = parse_digest(sha256(body + b" "))
    with pytest.raises(DigestInvalid):
        content.put_manifest("r", wrong, body, OCI_MANIFEST)
    for digest in (wrong, parse_digest(sha256(body))):
        with pytest.raises(ManifestUnknown):
            content.get_manifest("r", digest)
        with pytest.raises(KeyNotFound):
            content.storage.size(blob_key(digest))


def test_manifest_with_missing_blobs_is_refused(content: RegistryContent) -> None:
    """spec "Pushing Manifests": every referenced blob must be in the repository (MANIFEST_BLOB_UNKNOWN)."""
    config, layer = b"{}", b"layer"
    push_blob(content, "elsewhere", layer)  # in the registry, but not linked into "r"
    push_blob(content, "r", config)
    body = json.dumps({"schemaVersion": 2, "config": descriptor(CONFIG_TYPE, config),
                       "layers": [descriptor(LAYER_TYPE, layer)]}).encode()
    with pytest.raises(ManifestBlobUnknown) as info:
        content.put_manifest("r", "t", body, OCI_MANIFEST)
    assert info.value.detail == {"digests": [sha256(layer)]}
    with pytest.raises(ManifestUnknown):
        content.get_manifest("r", "t")
    with pytest.raises(KeyNotFound):
        content.storage.size(blob_key(parse_digest(sha256(body))))


def test_foreign_layers_need_not_be_pushed(content: RegistryContent) -> None:
    """oci-image-spec-descriptor.md "Properties" (``urls``): a foreign layer is fetched elsewhere."""
    config = b"{}"
    push_blob(content, "win", config)
    foreign = {**descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", b"nanoserver"),
               "urls": ["https://mcr.example/layer"]}
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                       "config": descriptor("application/vnd.docker.container.image.v1+json", config),
                       "layers": [foreign]}).encode()
    content.put_manifest("win", "ltsc", body, DOCKER_MANIFEST)
    assert content.get_manifest("win", "ltsc").body == body


def test_index_children_must_be_manifests_of_the_repository(content: RegistryContent) -> None:
    """spec "Pushing Manifests" / image-index.md: an index's children are manifests already pushed here."""
    child, child_body = push_image(content, "multi", "amd64")
    missing = sha256(b"not a manifest here")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": str(child), "size": len(child_body)},
        {"mediaType": OCI_MANIFEST, "digest": missing, "size": 10},
    ]}
    with pytest.raises(ManifestBlobUnknown) as info:
        content.put_manifest("multi", "latest", json.dumps(index).encode(), OCI_INDEX)
    assert info.value.detail == {"digests": [missing]}
    index["manifests"].pop()
    push_image(content, "other", "x", seed=b"other")
    body = json.dumps(index).encode()
    digest, manifest = content.put_manifest("multi", "latest", body, OCI_INDEX)
    assert manifest.is_index and content.get_manifest("multi", "latest").body == body
    with pytest.raises(ManifestBlobUnknown):  # the child is a manifest of "multi", not of "other"
        content.put_manifest("other", "latest", body, OCI_INDEX)


def test_invalid_manifest_stores_nothing(content: RegistryContent) -> None:
    """spec "Pushing Manifests": MANIFEST_INVALID leaves no trace."""
    with pytest.raises(ManifestInvalid):
        content.put_manifest("r", "t", b"{not json", OCI_MANIFEST)
    assert list(content.storage.list("")) == []


def test_retag_moves_the_tag(content: RegistryContent) -> None:
    """spec "Pushing Manifests": pushing to an existing tag points it to the new manifest."""
    first, _ = push_image(content, "r", "latest", seed=b"1")
    second, body = push_image(content, "r", "latest", seed=b"2")
    assert first != second
    assert content.get_manifest("r", "latest").body == body
    assert content.get_manifest("r", first).digest == first  # the old one stays by digest


def test_delete_by_tag_removes_only_the_tag(content: RegistryContent) -> None:
    """spec "Deleting tags": the manifest stays, reachable by digest and by its other tags."""
    digest, body = push_image(content, "r", "a")
    content.put_manifest("r", "b", body, OCI_MANIFEST)
    content.delete_manifest("r", "a")
    with pytest.raises(ManifestUnknown):
        content.get_manifest("r", "a")
    with pytest.raises(ManifestUnknown):
        content.delete_manifest("r", "a")
    assert content.get_manifest("r", digest).body == body
    assert content.get_manifest("r", "b").digest == digest
    assert content.tags("r", None, None).items == ["b"]


def test_delete_by_digest_removes_the_manifest_and_its_tags(content: RegistryContent) -> None:
    """spec "Deleting Manifests": by digest the manifest goes, and with it every tag pointing at it."""
    digest, body = push_image(content, "r", "a", seed=b"1")
    for tag in ("b", "c"):
        content.put_manifest("r", tag, body, OCI_MANIFEST)
    other, _ = push_image(content, "r", "keep", seed=b"2")
    content.delete_manifest("r", digest)
    for reference in ("a", "b", "c", digest):
        with pytest.raises(ManifestUnknown):
            content.get_manifest("r", reference)
    with pytest.raises(ManifestUnknown):
        content.delete_manifest("r", digest)
    assert content.tags("r", None, None).items == ["keep"]
    assert content.get_manifest("r", "keep").digest == other


def test_manifest_unknown_in_other_repository(content: RegistryContent) -> None:
    """spec "Pulling manifests": a manifest belongs to the repository it was pushed to."""
    digest, _ = push_image(content, "a", "t")
    for reference in ("t", digest):
        with pytest.raises(ManifestUnknown):
            content.get_manifest("b", reference)
    with pytest.raises(ManifestUnknown):
        content.delete_manifest("b", digest)


# -- referrers ----------------------------------------------------------------------------------------


def test_referrers_index_is_kept_and_cleaned(content: RegistryContent) -> None:
    """spec "Listing Referrers": descriptors with artifactType (default: config mediaType) and annotations."""
    subject, subject_body = push_image(content, "app", "v1")
    subject_desc = {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": len(subject_body)}
    notes = {"org.example.sbom.format": "json"}
    sbom, sbom_body = push_image(content, "app", "sbom", seed=b"sbom",
                                 artifactType="application/vnd.example.sbom.v1",
                                 subject=subject_desc, annotations=notes)
    # A referrer without artifactType takes its config's media type.
    sig, sig_body = push_image(content, "app", "sig", seed=b"sig", subject=subject_desc)
    found = sorted(content.referrers("app", subject, None), key=lambda d: d["digest"])
    expected = sorted([
        {"mediaType": OCI_MANIFEST, "digest": str(sbom), "size": len(sbom_body),
         "artifactType": "application/vnd.example.sbom.v1", "annotations": notes},
        {"mediaType": OCI_MANIFEST, "digest": str(sig), "size": len(sig_body), "artifactType": CONFIG_TYPE},
    ], key=lambda d: d["digest"])
    assert found == expected
    assert content.referrers("app", subject, "application/vnd.example.sbom.v1") == [
        d for d in expected if d["digest"] == str(sbom)
    ]
    assert content.referrers("app", subject, "application/none") == []
    assert content.referrers("other", subject, None) == []
    # Pushing the same referrer again does not duplicate it.
    content.put_manifest("app", "sbom-again", sbom_body, OCI_MANIFEST)
    content.put_manifest("app", sbom, sbom_body, OCI_MANIFEST)
    assert len(content.referrers("app", subject, None)) == 2
    # Deleting tags keeps the referrer; deleting the manifest removes it.
    content.delete_manifest("app", "sbom")
    content.delete_manifest("app", "sbom-again")
    assert len(content.referrers("app", subject, None)) == 2
    content.delete_manifest("app", sbom)
    assert [d["digest"] for d in content.referrers("app", subject, None)] == [str(sig)]
    content.delete_manifest("app", sig)
    assert content.referrers("app", subject, None) == []


def test_referrer_with_empty_artifact_type_lists_the_config_type(content: RegistryContent) -> None:
    """spec "Listing Referrers": an *empty* artifactType in an image manifest falls back to the config mediaType."""
    subject, subject_body = push_image(content, "app", "v1")
    subject_desc = {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": len(subject_body)}
    push_image(content, "app", "sig", seed=b"sig", subject=subject_desc, artifactType="")
    assert [d.get("artifactType") for d in content.referrers("app", subject, None)] == [CONFIG_TYPE]
    assert len(content.referrers("app", subject, CONFIG_TYPE)) == 1


def test_referrers_of_an_index_omit_artifact_type(content: RegistryContent) -> None:
    """spec "Listing Referrers": if artifactType is missing in an index, it MUST be omitted."""
    child, child_body = push_image(content, "app", "child")
    subject = parse_digest(sha256(b"subject may be absent"))
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [{"mediaType": OCI_MANIFEST, "digest": str(child), "size": len(child_body)}],
                       "subject": {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": 1}}).encode()
    digest, _ = content.put_manifest("app", "idx", body, OCI_INDEX)
    assert content.referrers("app", subject, None) == [
        {"mediaType": OCI_INDEX, "digest": str(digest), "size": len(body)}
    ]


# -- listings -----------------------------------------------------------------------------------------


def collect(page_fn: Any, n: int) -> list[str]:
    """Follow pages of ``n`` items with ``last`` as a client following ``Link`` does."""
    items: list[str] = []
    last = None
    for _ in range(1000):
        page = page_fn(n, last)
        assert len(page.items) <= n
        if page.more:
            assert len(page.items) == n, "a page with more after it is full (spec 'Listing Tags')"
        items += page.items
        if not page.more:
            return items
        last = page.items[-1]
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("backend", BACKENDS)
@QUICK
@given(tag_set=st.sets(tags, min_size=0, max_size=12), n=st.integers(1, 5), last=st.none() | tags)
def test_tag_pagination(backend: str, tag_set: set[str], n: int, last: str | None) -> None:
    """spec "Listing Tags": lexical order, ``n`` per page, ``last`` exclusive; every tag exactly once."""
    with make_storage(backend) as storage:
        content = RegistryContent(storage)
        _, body = push_image(content, "repo", "base")
        content.put_manifest("repo", "base", body, OCI_MANIFEST, tags=sorted(tag_set))
        everything = sorted(tag_set | {"base"})
        assert content.tags("repo", None, None) == type(content.tags("repo", None, None))(everything, False)
        assert collect(lambda k, after: content.tags("repo", k, after), n) == everything
        assert content.tags("repo", None, last).items == [t for t in everything if last is None or t > last]
        assert content.tags("repo", 0, None).items == []


@pytest.mark.parametrize("backend", BACKENDS)
@QUICK
@given(names=st.sets(repository_names(max_components=4), min_size=1, max_size=8), n=st.integers(1, 4))
def test_catalog_pagination(backend: str, names: set[str], n: int) -> None:
    """docker-registry-http-api-v2.md "Listing Repositories" / "Pagination": lexical order, ``n``, ``last``."""
    with make_storage(backend) as storage:
        content = RegistryContent(storage)
        first, *rest = sorted(names)
        digest = push_blob(content, first, b"x")
        for name in rest:
            assert content.mount_blob(name, digest, first)
        assert content.repositories(None, None).items == sorted(names)
        assert collect(content.repositories, n) == sorted(names)
        assert content.repositories(None, first).items == sorted(names)[1:]
        assert content.repositories(0, None).items == []


def test_tags_of_unknown_repository(content: RegistryContent) -> None:
    """spec "Listing Tags" / docker-registry-http-api-v2.md "No Such Repository Error": NAME_UNKNOWN."""
    with pytest.raises(NameUnknown):
        content.tags("nobody", None, None)
    push_blob(content, "blobs-only", b"x")
    assert content.tags("blobs-only", None, None).items == []


def test_tags_page_fewer_only_at_the_end(content: RegistryContent) -> None:
    """spec "Listing Tags": fewer than ``n`` results only when the list ends there."""
    _, body = push_image(content, "r", "t0")
    content.put_manifest("r", "t1", body, OCI_MANIFEST, tags=["t2", "t3", "t4"])
    page = content.tags("r", 2, None)
    assert (page.items, page.more) == (["t0", "t1"], True)
    page = content.tags("r", 2, "t3")
    assert (page.items, page.more) == (["t4"], False)
    page = content.tags("r", 5, None)
    assert (page.items, page.more) == (["t0", "t1", "t2", "t3", "t4"], False)


def test_purge_uploads_cancels_only_idle_sessions(content: RegistryContent) -> None:
    """Spec "Cancel a blob upload": the server SHOULD eventually time out unfinished uploads."""
    old = content.start_upload("purge/me")
    content.append(old, [b"abc"])
    fresh = content.start_upload("purge/me")
    purged = content.purge_uploads(3600, now=time.time() + 7200)
    assert sorted(purged) == sorted([old.id, fresh.id])  # both idle for an hour at that "now"
    assert content.purge_uploads(3600) == []
    kept = content.start_upload("purge/me")
    assert content.purge_uploads(3600) == []
    assert content.get_upload("purge/me", kept.id).offset == 0
    with pytest.raises(BlobUploadUnknown):
        content.get_upload("purge/me", old.id)
