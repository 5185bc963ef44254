"""Races in the registry semantics, each interleaving reached on purpose.

A :class:`Held` storage stops one request just before its k-th storage call until the test lets
it go, while another request runs to its end. Looping k over every call a request makes visits
every point at which the other request can cut in, deterministically, on every run.

Invariants checked (ARCHITECTURE "Invariants the store keeps"; the integrity issue, sections 1
and 3): committed bytes never change; the digest verified is the digest of the bytes committed;
every tag resolves to a readable manifest or does not exist; a deleted manifest is served by no
path.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Callable

import pytest

from docker_registry_wsgi.content import RegistryContent
from docker_registry_wsgi.digests import Digest, parse_digest
from docker_registry_wsgi.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestUnknown,
    RangeInvalid,
    RegistryError,
)
from docker_registry_wsgi.manifests import OCI_MANIFEST
from docker_registry_wsgi.storage import Storage
from docker_registry_wsgi.testing.storage import ChunkFailure, Parked, payload
from tests.test_content import push_blob, push_image, read_blob
from tests.unit_fixtures import sha256


class Held:
    """A storage whose ``hold_at``-th call (counting from 0) waits until :attr:`released` is set.

    :attr:`reached` is set when the held call is about to run. Calls from other threads pass
    straight through, so another request can run to its end meanwhile.
    """

    def __init__(self, inner: Storage, hold_at: int | None = None) -> None:
        self.inner = inner
        self.hold_at = hold_at
        self.calls: list[str] = []
        self.thread: threading.Thread | None = None
        self.reached = threading.Event()
        self.released = threading.Event()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is self.thread:
                if len(self.calls) == self.hold_at:
                    self.reached.set()
                    assert self.released.wait(30), "never released"
                self.calls.append(f"{name} {args[0] if args else ''}")
            return attribute(*args, **kwargs)

        return call


def run_held(held: Held, request: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``request`` on a thread through ``held``; return once it is held (or finished)."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(request())
        except RegistryError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    held.thread = thread
    thread.start()
    while not held.reached.wait(0.01) and thread.is_alive():
        pass
    return thread, outcome


def count_calls(storage: Storage, request: Callable[[RegistryContent], Any]) -> int:
    """How many storage calls ``request`` makes when it runs alone."""
    held = Held(storage)
    thread, _ = run_held(held, lambda: request(RegistryContent(held)))  # type: ignore[arg-type]
    thread.join(30)
    return len(held.calls)


def assert_tags_resolve(content: RegistryContent, name: str) -> None:
    """Every listed tag resolves to a manifest readable by tag and by digest."""
    try:
        listed = content.tags(name, None, None).items
    except RegistryError:
        return
    for tag in listed:
        stored = content.get_manifest(name, tag)  # ManifestUnknown: a dangling tag
        assert stored.body is not None
        by_digest = content.get_manifest(name, stored.digest)
        assert by_digest.body == stored.body


def manifest_body(content: RegistryContent, name: str) -> tuple[Digest, bytes]:
    """An image manifest whose blobs are in ``name``, not pushed itself."""
    digest, body = push_image(content, name, "seed")
    content.delete_manifest(name, digest)
    return digest, body


# -- section 3: a PUT by tag racing a DELETE by digest ------------------------------------------


@pytest.mark.parametrize("held_request", ["put", "delete"])
def test_tag_put_racing_digest_delete_leaves_no_dangling_tag(storage: Storage, held_request: str) -> None:
    """Every point of one request at which the other runs whole: no tag names a deleted manifest.

    The integrity issue found 7 of 40 tries leaving a tag at a manifest 404 by digest.
    """
    content = RegistryContent(storage)
    digest, body = manifest_body(content, "team/app")

    def put(c: RegistryContent) -> Any:
        return c.put_manifest("team/app", "latest", body, OCI_MANIFEST)

    def delete(c: RegistryContent) -> Any:
        return c.delete_manifest("team/app", digest)

    held_call, other = (put, delete) if held_request == "put" else (delete, put)
    put(content)  # the delete needs something to delete on every pass
    total = count_calls(storage, held_call)
    assert total > 4
    for hold_at in range(total + 1):
        put(content)
        held = Held(storage, hold_at)
        thread, outcome = run_held(held, lambda: held_call(RegistryContent(held)))  # type: ignore[arg-type]
        try:
            other(content)
        except ManifestUnknown:
            pass  # the delete found nothing left to delete: the put was held before its revision
        held.released.set()
        thread.join(30)
        assert outcome and not isinstance(outcome[0], AssertionError)
        assert_tags_resolve(content, "team/app")
        try:
            tagged = content.stat_manifest("team/app", "latest")
        except ManifestUnknown:
            continue
        assert tagged.digest == digest
        assert content.get_manifest("team/app", digest).body == body


def test_deleted_manifest_is_served_by_no_path(storage: Storage) -> None:
    """Section 3: once deleted by digest, neither the blob endpoint nor a mount reaches it."""
    content = RegistryContent(storage)
    digest, body = push_image(content, "team/app", "v1")
    with pytest.raises(BlobUnknown):
        content.stat_blob("team/app", digest)  # a manifest is not a layer
    content.delete_manifest("team/app", digest)
    for reference in (digest, "v1"):
        with pytest.raises(ManifestUnknown):
            content.get_manifest("team/app", reference)
    with pytest.raises(BlobUnknown):
        content.open_blob("team/app", digest)
    assert content.mount_blob("other/repo", digest, "team/app") is False
    with pytest.raises(BlobUnknown):
        content.stat_blob("other/repo", digest)


def test_delete_unlinks_a_manifest_linked_as_a_layer_by_earlier_versions(storage: Storage) -> None:
    content = RegistryContent(storage)
    digest, _ = push_image(content, "team/app", "v1")
    storage.write(f"repositories/team/app/_layers/{digest.algorithm}/{digest.hex}", b"")
    content.delete_manifest("team/app", digest)
    with pytest.raises(BlobUnknown):
        content.stat_blob("team/app", digest)
    assert content.mount_blob("other/repo", digest, "team/app") is False


def test_a_dangling_tag_reads_as_missing(storage: Storage) -> None:
    """A crash between a racing put's tag write and its re-check can leave a tag at a deleted
    manifest; it resolves to nothing rather than to bytes that are no longer the repository's."""
    content = RegistryContent(storage)
    digest, body = push_image(content, "team/app", "v1")
    storage.delete(f"repositories/team/app/_manifests/revisions/{digest.algorithm}/{digest.hex}")
    with pytest.raises(ManifestUnknown):
        content.stat_manifest("team/app", "v1")
    with pytest.raises(ManifestUnknown):
        content.get_manifest("team/app", "v1")


def test_referrer_racing_delete_is_not_left_behind(storage: Storage) -> None:
    """A manifest with a subject, put while a delete of the same digest runs: its referrers
    entry goes with it, at every point of the put at which the delete can run."""
    content = RegistryContent(storage)
    subject, _ = push_image(content, "team/app", "subject")
    digest, body = push_image(content, "team/app", "sig", subject={
        "mediaType": OCI_MANIFEST, "digest": str(subject), "size": 1})
    calls = count_calls(storage, lambda c: c.put_manifest("team/app", digest, body, OCI_MANIFEST))
    for hold_at in range(calls + 1):
        content.put_manifest("team/app", digest, body, OCI_MANIFEST)
        held = Held(storage, hold_at)
        thread, _ = run_held(held, lambda: RegistryContent(held).put_manifest(  # type: ignore[arg-type]
            "team/app", digest, body, OCI_MANIFEST))
        try:
            content.delete_manifest("team/app", digest)
        except ManifestUnknown:
            pass
        held.released.set()
        thread.join(30)
        listed = [d["digest"] for d in content.referrers("team/app", subject, None)]
        try:
            content.stat_manifest("team/app", digest)
            exists = True
        except ManifestUnknown:
            exists = False
        assert listed == ([str(digest)] if exists else []), (hold_at, listed, exists)


# -- section 1: uploads --------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["sends-the-rest", "disconnects"])
def test_parked_patch_cannot_overwrite_another_repositorys_blob(storage: Storage, ending: str) -> None:
    """The attack: a pusher of ``c/*`` parks a PATCH, completes the session with the bytes of a
    layer of ``b/secret``, then lets the parked body through (or drops it)."""
    content = RegistryContent(storage)
    secret = payload(300_000, seed=1)
    victim = push_blob(content, "b/secret", secret)
    upload = content.start_upload("c/mine")
    parked = Parked(b"ATTACKER" * 40_000, 0, fail=ending == "disconnects")
    held = parked.run(lambda: content.append(content.get_upload("c/mine", upload.id), parked))  # type: ignore[arg-type,return-value]
    session = content.get_upload("c/mine", upload.id)
    try:
        content.append(session, [secret], start=0, length=len(secret))
        content.finish(session, victim)
        committed = True
    except RangeInvalid:
        committed = False  # the session is held by the parked request: refused
    parked.released.set()
    held.wait()
    assert read_blob(content, "b/secret", victim) == secret
    if committed:
        assert held.result is None
        assert isinstance(held.error, (BlobUploadUnknown, RangeInvalid, ChunkFailure)), repr(held.error)
        assert read_blob(content, "c/mine", victim) == secret
    else:
        with pytest.raises(BlobUnknown):
            content.stat_blob("c/mine", victim)
    content.purge_uploads(0, now=10**10)


@pytest.mark.parametrize("closing_digest", ["first", "second"])
def test_two_patches_from_one_offset_commit_only_verified_bytes(storage: Storage, closing_digest: str) -> None:
    """Two PATCHes from offset 0, one held mid-body while the other completes: the PUT commits
    only bytes whose hash it verified, whichever digest it names."""
    content = RegistryContent(storage)
    first, second = payload(200_000, seed=2), payload(150_000, seed=3)
    upload = content.start_upload("c/mine")
    parked = Parked(first, 70_000)
    held = parked.run(lambda: content.append(content.get_upload("c/mine", upload.id), parked, start=0))  # type: ignore[arg-type,return-value]
    try:
        content.append(content.get_upload("c/mine", upload.id), [second], start=0)
    except RangeInvalid:
        pass  # held by the first request
    parked.released.set()
    held.wait()
    digest = parse_digest(sha256(first if closing_digest == "first" else second))
    session = content.get_upload("c/mine", upload.id)
    try:
        content.finish(session, digest)
    except DigestInvalid:
        with pytest.raises(BlobUnknown):
            content.stat_blob("c/mine", digest)
        return
    assert read_blob(content, "c/mine", digest) == (first if closing_digest == "first" else second)


def test_failed_monolithic_push_leaves_no_session(storage: Storage) -> None:
    """Section 4: a POST ?digest= whose body is short, long or wrong leaves nothing behind."""
    content = RegistryContent(storage)
    data = b"monolithic"
    digest = parse_digest(sha256(data))
    attempts: list[tuple[list[bytes], int | None, type[Exception]]] = [
        ([data[:4]], len(data), RegistryError),
        ([data + b"!"], len(data), RegistryError),
        ([b"other bytes"], None, DigestInvalid),
    ]
    for chunks, length, error in attempts:
        with pytest.raises(error):
            content.push_blob("team/app", digest, chunks, length)

    def broken() -> Any:
        yield data[:3]
        raise ChunkFailure("client went away")

    with pytest.raises(ChunkFailure):
        content.push_blob("team/app", digest, broken(), len(data))
    assert list(storage.list_uploads()) == []
    with pytest.raises(BlobUnknown):
        content.stat_blob("team/app", digest)


def test_rehashed_session_commits_the_bytes_it_verified(storage: Storage) -> None:
    """A sha256 session closed with a sha512 digest: what is read back is what is committed."""
    content = RegistryContent(storage)
    data = payload(100_000, seed=4)
    upload = content.start_upload("team/app")
    content.append(upload, [data])
    digest = parse_digest("sha512:" + hashlib.sha512(data).hexdigest())
    content.finish(upload, digest)
    assert read_blob(content, "team/app", digest) == data
    assert list(storage.list_uploads()) == []
