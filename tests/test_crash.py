"""Durability: ``kill -9`` of the standalone server in the middle of a push (integrity issue, section 7).

The tests run ``docker-registry-wsgi serve --workers 1`` (real gunicorn) and kill it at a point
they can see, never after a sleep:

* **Mid-body** (filesystem and S3): one request's headers and part of its body go over a raw
  socket; once the server has visibly received part of it, the worker is SIGKILLed (gunicorn's
  master forks a new one), or the master and its worker at once (a new server then starts on
  the same storage). For blob bytes, "visibly" means two pieces of the body are in storage
  (filesystem: the file ``~uploads/<id>`` grew by 2 MiB, the registry writes 1 MiB at a time;
  S3: two new parts of the upload's multipart upload), so the server had finished storing one
  piece and anything it recorded per piece would show. A manifest is stored only once its whole
  body is read, so the test waits until the server has read every byte sent (the client's
  send queue is acknowledged and the server socket's receive queue in ``/proc/net/tcp`` is
  empty). The body is never sent whole, so the killed request cannot complete.
* **At each step of a commit** (filesystem): strace attached to the worker delivers SIGKILL on
  entry to one chosen ``link``, ``rename`` or ``unlink``, the calls that make content visible or
  end an upload, for a closing PUT and for a manifest PUT.
* **The master alone**: its worker outlives it and finishes the request in flight.

Afterwards nothing partial may be visible (every stored blob hashes to its name, every link and
tag names whole content: spec "Content Verification"), a chunked session resumes from the last
offset the server acknowledged (spec "Resumable Push", "Pushing a blob in chunks"), and
``purge-uploads --older-than 0`` leaves the upload and temporary areas empty.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from docker_registry_wsgi.storage import FilesystemStorage, Storage
from docker_registry_wsgi.storage.s3 import DEFAULT_PART_SIZE, S3Storage
from tests.support.seaweedfs import S3Bucket
from tests.support.servers import RegistryServer, wait_for_http

MiB = 1 << 20
#: Large enough that the body is far from sent when the kill lands.
BLOB_SIZE = 64 * MiB
#: The chunk acknowledged before the kill: on S3 one whole 8 MiB part and a 2 MiB tail.
FIRST_CHUNK = 10 * MiB
#: What is never sent of a killed body, whatever the backend needed to show growth.
HELD_BACK = 16 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
#: How long a condition the test waits for may take before the test fails.
PATIENCE = 60.0

_BLOB_KEY = re.compile(r"blobs/(?P<alg>[a-z0-9]+)/(?P<prefix>[0-9a-f]{2})/(?P<hex>[0-9a-f]+)")
_LAYER = re.compile(r"repositories/(?P<name>.+)/_layers/(?P<alg>[a-z0-9]+)/(?P<hex>[0-9a-f]+)")
_REVISION = re.compile(r"repositories/(?P<name>.+)/_manifests/revisions/(?P<alg>[a-z0-9]+)/(?P<hex>[0-9a-f]+)")
_TAG = re.compile(r"repositories/(?P<name>.+)/_manifests/tags/(?P<tag>[^/]+)")


@dataclass(frozen=True)
class Blob:
    data: bytes
    digest: str


@pytest.fixture(scope="module")
def blob() -> Blob:
    """64 MiB of random bytes and their digest, shared by the module's tests."""
    data = os.urandom(BLOB_SIZE)
    return Blob(data, "sha256:" + hashlib.sha256(data).hexdigest())


def wait_until(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.005)


def blob_key(digest: str) -> str:
    algorithm, hex_ = digest.split(":")
    return f"blobs/{algorithm}/{hex_[:2]}/{hex_}"


# -- the storage, seen from outside the server --------------------------------------------------


class Store(ABC):
    """What the tests look at in the server's storage, read directly (not through the registry)."""

    #: Options of ``serve`` and ``purge-uploads`` that select this storage (besides ``--root``).
    args: list[str]
    #: The unit in which an upload's bytes reach this storage.
    step: int

    @abstractmethod
    def uploads(self) -> set[str]:
        """The ids of the uploads that have anything stored."""

    @abstractmethod
    def stored_bytes(self, upload_id: str) -> int:
        """How many bytes of the upload's body sit in storage (recorded or not)."""

    @abstractmethod
    def keys(self) -> list[str]:
        """Every object outside the storage's upload and temporary areas."""

    @abstractmethod
    def read(self, key: str) -> bytes:
        """An object's bytes."""

    @abstractmethod
    def leftovers(self) -> list[str]:
        """Whatever is left in the upload and temporary areas."""

    @abstractmethod
    def storage(self) -> Storage:
        """The package's backend on this storage, for tests that share one store to start clean."""


class FilesystemStore(Store):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.args = []
        self.step = MiB  # the registry writes the body in reads of at most 1 MiB

    def uploads(self) -> set[str]:
        try:
            names = os.listdir(self.root / "~uploads")
        except FileNotFoundError:
            return set()
        return {name for name in names if not name.endswith(".state")}

    def stored_bytes(self, upload_id: str) -> int:
        try:
            return os.stat(self.root / "~uploads" / upload_id).st_size
        except FileNotFoundError:
            return 0

    def keys(self) -> list[str]:
        keys = []
        for folder, subfolders, files in os.walk(self.root):
            relative = Path(folder).relative_to(self.root)
            if relative == Path("."):
                subfolders[:] = [name for name in subfolders if not name.startswith("~")]
            keys += [(relative / name).as_posix() for name in files]
        return sorted(keys)

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def leftovers(self) -> list[str]:
        return sorted(
            f"{area}/{name}" for area in ("~uploads", "~tmp") for name in os.listdir(self.root / area)
        )

    def storage(self) -> Storage:
        return FilesystemStorage(self.root)


class S3Store(Store):
    def __init__(self, bucket: S3Bucket, prefix: str) -> None:
        self.bucket, self.prefix, self.name = bucket, prefix + "/", prefix
        self.client = bucket.shared_client
        self.args = bucket.server_args(prefix)
        self.step = DEFAULT_PART_SIZE  # a multipart part

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket.name, Prefix=prefix):
            yield from page.get("Contents", ())

    def _multipart_uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket.name, Prefix=prefix):
            yield from page.get("Uploads", ())

    def uploads(self) -> set[str]:
        area = self.prefix + "~uploads/"
        keys = [item["Key"] for item in self._objects(area)]
        keys += [item["Key"] for item in self._multipart_uploads(area)]
        return {key[len(area):].split("/", 1)[0] for key in keys}

    def stored_bytes(self, upload_id: str) -> int:
        total = 0
        for upload in self._multipart_uploads(f"{self.prefix}~uploads/{upload_id}/"):
            for page in self.client.get_paginator("list_parts").paginate(
                    Bucket=self.bucket.name, Key=upload["Key"], UploadId=upload["UploadId"]):
                total += sum(part["Size"] for part in page.get("Parts", ()))
        return total

    def keys(self) -> list[str]:
        keys = [item["Key"][len(self.prefix):] for item in self._objects(self.prefix)]
        return sorted(key for key in keys if not key.startswith("~uploads/"))

    def read(self, key: str) -> bytes:
        response = self.client.get_object(Bucket=self.bucket.name, Key=self.prefix + key)
        with response["Body"] as body:
            return bytes(body.read())

    def leftovers(self) -> list[str]:
        objects = [item["Key"] for item in self._objects(self.prefix + "~uploads/")]
        multipart = [f"multipart:{item['Key']}" for item in self._multipart_uploads(self.prefix)]
        return sorted(objects + multipart)

    def storage(self) -> Storage:
        return S3Storage(self.bucket.name, self.name, client=self.client)


def assert_nothing_partial(store: Store) -> set[str]:
    """Every stored blob hashes to its name; every link, revision and tag names whole content.

    Returns the keys seen, for checks of what must be absent.
    """
    keys = store.keys()
    present = set(keys)
    for key in keys:
        if match := _BLOB_KEY.fullmatch(key):
            data = store.read(key)
            assert match["prefix"] == match["hex"][:2], key
            assert hashlib.new(match["alg"], data).hexdigest() == match["hex"], f"{key} holds other bytes"
        elif match := _LAYER.fullmatch(key):
            assert blob_key(f"{match['alg']}:{match['hex']}") in present, f"{key} links a missing blob"
        elif match := _REVISION.fullmatch(key):
            link = json.loads(store.read(key))
            manifest = blob_key(f"{match['alg']}:{match['hex']}")
            assert manifest in present and len(store.read(manifest)) == link["size"], key
        elif match := _TAG.fullmatch(key):
            tagged = json.loads(store.read(key))["digest"]
            algorithm, hex_ = tagged.split(":")
            revision = f"repositories/{match['name']}/_manifests/revisions/{algorithm}/{hex_}"
            assert revision in present, f"tag {key} names a manifest that is not stored"
    return present


def purge(store: Store, root: Path) -> str:
    """``docker-registry-wsgi purge-uploads --older-than 0`` on the storage; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "docker_registry_wsgi", "purge-uploads", "--older-than", "0",
         "--root", str(root), *store.args],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- the server --------------------------------------------------------------------------------


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        return S3Store(bucket, "crash-" + secrets.token_hex(6))
    return FilesystemStore(tmp_path / "root")


@pytest.fixture
def server(store: Store, tmp_path: Path) -> Iterator[RegistryServer]:
    """The registry with one worker, so that the worker handling a request is known."""
    running = RegistryServer(tmp_path / "root", extra_args=["--workers", "1", *store.args],
                             log_path=tmp_path / "server.log")
    with running:
        yield running
        interrupt_master(running)


def interrupt_master(server: RegistryServer) -> None:
    """Stop the server with SIGINT to its master alone, before ``stop()`` signals the group.

    The group's SIGINT can reach a gthread worker while its main thread holds the thread pool's
    lock in ``submit()``; the worker's ``handle_quit`` then waits for that lock forever
    (gunicorn 27.0.1), and ``stop()`` waits 10 s before its SIGKILL.
    """
    if server.process is not None:
        server.process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=15)


def only_worker(server: RegistryServer) -> int:
    workers = server.child_pids()
    assert len(workers) == 1, workers
    return workers[0]


def wait_gone(pid: int) -> None:
    """Until ``pid`` has exited (gone, or a zombie: its files, locks and sockets are released)."""
    def gone() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except (FileNotFoundError, ProcessLookupError):
            return True
    wait_until(gone, f"process {pid} exit")


def crash(server: RegistryServer, target: str) -> None:
    """SIGKILL the worker (gunicorn forks a new one) or master and worker (then start anew)."""
    worker = only_worker(server)
    if target == "worker":
        os.kill(worker, signal.SIGKILL)
        wait_gone(worker)
        wait_until(lambda: server.child_pids() not in ([], [worker]), "a new worker")
    else:
        server.kill()
        wait_gone(worker)
        server.start()
    assert only_worker(server) != worker
    wait_for_http(server.host, server.port, "/v2/")


def call(server: RegistryServer, method: str, path: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
    try:
        connection.request(method, path, body=body,
                           headers={"Content-Length": str(len(body)), **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def error_code(body: bytes) -> str:
    return str(json.loads(body)["errors"][0]["code"])


def path_of(location: str) -> str:
    parts = urllib.parse.urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class HeldRequest:
    """A request sent over a raw socket: headers, then its body in pieces, held back from its end
    (until :meth:`finish`)."""

    def __init__(self, server: RegistryServer, method: str, path: str, body: bytes,
                 headers: dict[str, str]) -> None:
        self.body, self.sent = memoryview(body), 0
        self.sock = socket.create_connection((server.host, server.port), timeout=120)
        self.server_port = server.port
        head = f"{method} {path} HTTP/1.1\r\nHost: {server.hostport}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.sock.sendall(head.encode() + b"\r\n")

    def send(self, size: int) -> None:
        assert self.sent + size < len(self.body), "the test would send the whole body"
        self.sock.sendall(self.body[self.sent:self.sent + size])
        self.sent += size

    def send_until(self, condition: Callable[[], bool], what: str) -> None:
        """Send the body 1 MiB at a time until ``condition`` holds, holding back ``HELD_BACK``."""
        while not condition():
            if self.sent + MiB > len(self.body) - HELD_BACK:
                wait_until(condition, what)
                break
            self.send(MiB)
        assert condition(), what

    def consumed_by_server(self) -> bool:
        """Whether the server has read every byte sent (acknowledged, and not in its receive queue)."""
        unacknowledged = struct.unpack("i", fcntl.ioctl(self.sock, termios.TIOCOUTQ, b"\0" * 4))[0]
        if unacknowledged:
            return False
        local = self.sock.getsockname()[1]
        with open("/proc/net/tcp") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if (fields[1] == f"0100007F:{self.server_port:04X}"
                        and fields[2] == f"0100007F:{local:04X}"):
                    return int(fields[4].split(":")[1], 16) == 0
        raise AssertionError("the server's end of the connection is not in /proc/net/tcp")

    def finish(self) -> tuple[int, dict[str, str], bytes]:
        """Send the rest of the body and read the response."""
        self.sock.sendall(self.body[self.sent:])
        self.sent = len(self.body)
        response = http.client.HTTPResponse(self.sock)
        try:
            response.begin()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            response.close()
            self.sock.close()

    def assert_unanswered(self) -> None:
        """The connection ended without a response: the request died with the server."""
        try:
            answer = self.sock.recv(4096)
        except ConnectionResetError:
            answer = b""
        finally:
            self.sock.close()
        assert answer == b"", answer[:200]


def start_session(server: RegistryServer, name: str) -> str:
    status, headers, _ = call(server, "POST", f"/v2/{name}/blobs/uploads/")
    assert status == 202
    return path_of(headers["location"])


def session_range(server: RegistryServer, session: str) -> str:
    status, headers, body = call(server, "GET", session)
    assert status == 204, body
    return headers["range"]


def assert_blob_unknown(server: RegistryServer, store: Store, name: str, digest: str) -> None:
    """The blob is not served (spec "Checking if content exists"), and not stored under its key."""
    assert call(server, "HEAD", f"/v2/{name}/blobs/{digest}")[0] == 404
    status, _, body = call(server, "GET", f"/v2/{name}/blobs/{digest}")
    assert (status, error_code(body)) == (404, "BLOB_UNKNOWN")
    assert blob_key(digest) not in assert_nothing_partial(store)


def assert_blob_served(server: RegistryServer, name: str, blob: Blob) -> None:
    status, headers, body = call(server, "GET", f"/v2/{name}/blobs/{blob.digest}")
    assert status == 200 and headers["docker-content-digest"] == blob.digest
    assert body == blob.data


def assert_clean_after_purge(store: Store, root: Path, sessions: int) -> None:
    """``purge-uploads`` cancels the killed request's leftovers and leaves nothing behind."""
    output = purge(store, root)
    assert f"cancelled {sessions} upload session(s)" in output, output
    assert store.leftovers() == []
    assert_nothing_partial(store)


TARGETS = ["worker", "master-and-worker"]


# -- blobs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_killed_monolithic_post_leaves_no_blob_and_a_new_push_succeeds(
        server: RegistryServer, store: Store, blob: Blob, target: str) -> None:
    """Spec "Single POST": the killed push stores no blob; pushing it again gives 201."""
    name = "crash/monolithic"
    before = store.uploads()
    assert before == set()
    held = HeldRequest(server, "POST", f"/v2/{name}/blobs/uploads/?digest={blob.digest}", blob.data,
                       {"Content-Type": "application/octet-stream"})
    # The server does not tell the client the id of a monolithic upload: any new one that grows.
    held.send_until(lambda: any(store.stored_bytes(u) >= 2 * store.step for u in store.uploads() - before),
                    "two pieces of the monolithic upload's body in storage")
    crash(server, target)
    held.assert_unanswered()

    assert_blob_unknown(server, store, name, blob.digest)
    status, headers, body = call(server, "POST", f"/v2/{name}/blobs/uploads/?digest={blob.digest}",
                                 blob.data, {"Content-Type": "application/octet-stream"})
    assert status == 201, body
    assert headers["docker-content-digest"] == blob.digest
    assert_blob_served(server, name, blob)
    assert_clean_after_purge(store, server.root, sessions=1)


@pytest.mark.parametrize("target", TARGETS)
def test_killed_patch_is_not_recorded_and_the_session_resumes(
        server: RegistryServer, store: Store, blob: Blob, target: str) -> None:
    """Spec "Pushing a blob in chunks": after the kill the session's ``Range`` is what was
    acknowledged (202) before it; a PATCH from there and the closing PUT give the whole blob."""
    name = "crash/chunked"
    session = start_session(server, name)
    upload_id = session.rstrip("/").rsplit("/", 1)[1]
    status, headers, _ = call(server, "PATCH", session, blob.data[:FIRST_CHUNK], {
        "Content-Type": "application/octet-stream", "Content-Range": f"0-{FIRST_CHUNK - 1}"})
    assert status == 202 and headers["range"] == f"0-{FIRST_CHUNK - 1}"
    session = path_of(headers["location"])

    stored = store.stored_bytes(upload_id)
    rest = blob.data[FIRST_CHUNK:]
    held = HeldRequest(server, "PATCH", session, rest, {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{FIRST_CHUNK}-{BLOB_SIZE - 1}"})
    held.send_until(lambda: store.stored_bytes(upload_id) >= stored + 2 * store.step,
                    "two pieces of the second PATCH's body in storage")
    crash(server, target)
    held.assert_unanswered()

    assert session_range(server, session) == f"0-{FIRST_CHUNK - 1}"
    assert_blob_unknown(server, store, name, blob.digest)
    status, headers, body = call(server, "PATCH", session, rest, {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{FIRST_CHUNK}-{BLOB_SIZE - 1}"})
    assert status == 202 and headers["range"] == f"0-{BLOB_SIZE - 1}", body
    status, _, body = call(server, "PUT", f"{path_of(headers['location'])}?digest={blob.digest}")
    assert status == 201, body
    assert_blob_served(server, name, blob)
    assert_clean_after_purge(store, server.root, sessions=0)


@pytest.mark.parametrize("target", TARGETS)
def test_killed_closing_put_leaves_no_blob_and_the_session_resumes(
        server: RegistryServer, store: Store, blob: Blob, target: str) -> None:
    """Spec "Pushing a blob in chunks": the closing PUT carries the last chunk and is killed
    mid-body; the blob is absent, the session is where the last 202 left it, and a new PUT with
    the last chunk commits the whole blob."""
    name = "crash/closing"
    session = start_session(server, name)
    upload_id = session.rstrip("/").rsplit("/", 1)[1]
    status, headers, _ = call(server, "PATCH", session, blob.data[:FIRST_CHUNK], {
        "Content-Type": "application/octet-stream", "Content-Range": f"0-{FIRST_CHUNK - 1}"})
    assert status == 202
    session = path_of(headers["location"])

    stored = store.stored_bytes(upload_id)
    rest = blob.data[FIRST_CHUNK:]
    last_chunk = {"Content-Type": "application/octet-stream",
                  "Content-Range": f"{FIRST_CHUNK}-{BLOB_SIZE - 1}"}
    held = HeldRequest(server, "PUT", f"{session}?digest={blob.digest}", rest, last_chunk)
    held.send_until(lambda: store.stored_bytes(upload_id) >= stored + 2 * store.step,
                    "two pieces of the closing PUT's body in storage")
    crash(server, target)
    held.assert_unanswered()

    assert_blob_unknown(server, store, name, blob.digest)
    assert session_range(server, session) == f"0-{FIRST_CHUNK - 1}"
    status, headers, body = call(server, "PUT", f"{session}?digest={blob.digest}", rest, last_chunk)
    assert status == 201, body
    assert headers["docker-content-digest"] == blob.digest
    assert_blob_served(server, name, blob)
    assert_clean_after_purge(store, server.root, sessions=0)


# -- manifests -----------------------------------------------------------------------------------


def image(server: RegistryServer, name: str) -> tuple[bytes, str]:
    """Push a config and a layer to ``name``; return a ~1 MiB manifest of them and its digest.

    The manifest is padded with an annotation so that half of it is far more than one read.
    """
    descriptors = []
    for media_type, data in ((OCI_CONFIG, b'{"architecture": "amd64", "os": "linux"}'),
                             (OCI_LAYER, os.urandom(100_000))):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, body = call(server, "POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data)
        assert status == 201, body
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0],
        "layers": descriptors[1:], "annotations": {"org.example.padding": secrets.token_hex(MiB // 2)},
    }).encode()
    return manifest, "sha256:" + hashlib.sha256(manifest).hexdigest()


@pytest.mark.parametrize("target", TARGETS)
def test_killed_manifest_put_leaves_no_manifest_or_tag(
        server: RegistryServer, store: Store, target: str) -> None:
    """Spec "Pushing Manifests": a PUT killed while its body is read stores no manifest, tag or
    revision; the same PUT afterwards gives 201 and the manifest byte for byte."""
    name = "crash/manifest"
    manifest, digest = image(server, name)
    held = HeldRequest(server, "PUT", f"/v2/{name}/manifests/v1", manifest,
                       {"Content-Type": OCI_MANIFEST})
    held.send(len(manifest) // 2)
    wait_until(held.consumed_by_server, "the server read the first half of the manifest")
    crash(server, target)
    held.assert_unanswered()

    for reference in ("v1", digest):
        assert call(server, "HEAD", f"/v2/{name}/manifests/{reference}")[0] == 404
        status, _, body = call(server, "GET", f"/v2/{name}/manifests/{reference}")
        assert (status, error_code(body)) == (404, "MANIFEST_UNKNOWN")
    status, _, body = call(server, "GET", f"/v2/{name}/tags/list")
    assert status == 200 and json.loads(body)["tags"] == []
    assert blob_key(digest) not in assert_nothing_partial(store)

    status, headers, body = call(server, "PUT", f"/v2/{name}/manifests/v1", manifest,
                                 {"Content-Type": OCI_MANIFEST})
    assert status == 201 and headers["docker-content-digest"] == digest, body
    status, _, body = call(server, "GET", f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert status == 200 and body == manifest
    assert json.loads(call(server, "GET", f"/v2/{name}/tags/list")[2])["tags"] == ["v1"]
    assert_clean_after_purge(store, server.root, sessions=0)


# -- gunicorn's master alone ----------------------------------------------------------------------


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("store", ["filesystem"], indirect=True)
def test_master_killed_alone_its_worker_finishes_the_patch_and_exits(
        server: RegistryServer, store: Store, blob: Blob) -> None:
    """A SIGKILLed master leaves its worker running: gunicorn's worker sees its new parent, stops
    accepting, finishes the request in flight (202, recorded) and exits. A new server on the same
    storage then closes the session (spec "Pushing a blob in chunks")."""
    name = "crash/orphan"
    session = start_session(server, name)
    upload_id = session.rstrip("/").rsplit("/", 1)[1]
    status, headers, _ = call(server, "PATCH", session, blob.data[:FIRST_CHUNK], {
        "Content-Type": "application/octet-stream", "Content-Range": f"0-{FIRST_CHUNK - 1}"})
    assert status == 202
    session = path_of(headers["location"])
    stored = store.stored_bytes(upload_id)
    held = HeldRequest(server, "PATCH", session, blob.data[FIRST_CHUNK:], {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{FIRST_CHUNK}-{BLOB_SIZE - 1}"})
    held.send_until(lambda: store.stored_bytes(upload_id) >= stored + 2 * store.step,
                    "two pieces of the second PATCH's body in storage")

    assert server.process is not None
    master, worker = server.process.pid, only_worker(server)
    os.kill(master, signal.SIGKILL)
    server.process.wait()
    wait_until(lambda: parent_of(worker) != master, "the worker's new parent")
    wait_until(lambda: f"[{worker}] INFO gunicorn.error: Parent changed, shutting down" in server.log_text(),
               "the orphaned worker start its shutdown")
    status, headers, body = held.finish()
    assert status == 202 and headers["range"] == f"0-{BLOB_SIZE - 1}", body
    wait_gone(worker)

    server.start()
    assert session_range(server, session) == f"0-{BLOB_SIZE - 1}"
    status, _, body = call(server, "PUT", f"{session}?digest={blob.digest}")
    assert status == 201, body
    assert_blob_served(server, name, blob)
    assert_clean_after_purge(store, server.root, sessions=0)


# -- a kill at each step that adds or removes a name in the store (filesystem) ---------------------
#
# strace attached to the worker delivers SIGKILL on entry to the n-th call of one syscall, so the
# kill lands exactly before a chosen link, rename or unlink: the steps that make content visible
# or end an upload. A traced run without the kill (the "plan") finds n for each step, and checks
# that the steps below are all the request's successful link/rename/unlink calls, in this order.

_CALL = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\) += (?P<result>.*)$")
TRACED_CALLS = "link,linkat,unlink,unlinkat,rename,renameat,renameat2"


@dataclass(frozen=True)
class Call:
    tid: int
    name: str
    args: str
    result: str

    @property
    def text(self) -> str:
        return f"{self.name}({self.args}) = {self.result}"


@dataclass(frozen=True)
class Step:
    """A call of the request, by a pattern of its text and which of the matches (-1: the last)."""

    pattern: str
    occurrence: int = 0

    def find(self, calls: list[Call]) -> int:
        matches = [i for i, call in enumerate(calls) if re.match(self.pattern, call.text)]
        assert matches, f"no call matches {self.pattern!r} in {[c.text for c in calls]}"
        return matches[self.occurrence]


#: A closing PUT without a body: record the blob's use (for garbage collection), commit the
#: upload onto the blob's key, end the upload, link the blob into the repository, register the
#: repository. For a kill just before each step: is the
#: blob stored under its key, served in the repository, is the session still open (with all its
#: bytes), and how many sessions does purge-uploads cancel afterwards.
COMMIT_STEPS = {
    "record-use": Step(r'link\("[^"]*/~tmp/[^"]+", "[^"]*/gc/digests/'),
    "drop-record-temporary": Step(r'unlink\("[^"]*/~tmp/[^"]+"\) = 0'),
    "link-blob": Step(r'link\("[^"]*/~uploads/[^"]+", "[^"]*/blobs/'),
    "drop-state": Step(r'unlink\("[^"]*/~uploads/[^"]+\.state"\) = 0'),
    "drop-bytes": Step(r'unlink\("[^"]*/~uploads/[A-Za-z0-9_-]+"\) = 0'),
    "link-layer": Step(r'rename\("[^"]*/~tmp/[^"]+", "[^"]*/_layers/'),
    "register": Step(r'rename\("[^"]*/~tmp/[^"]+", "[^"]*/catalog/'),
    "answer": Step(r"", occurrence=-1),
}
COMMIT_OUTCOMES = {
    "record-use": (False, False, True, 0),
    "drop-record-temporary": (False, False, True, 0),
    "link-blob": (False, False, True, 0),
    "drop-state": (True, False, True, 0),
    "drop-bytes": (True, False, False, 1),
    "link-layer": (True, False, False, 0),
    "register": (True, True, False, 0),
    "answer": (True, True, False, 0),
}
#: A manifest PUT by tag: the manifest's bytes, the temporary file they came from, the revision
#: link, the tag. For a kill just before each step: are the bytes stored, is the manifest served
#: by digest, by tag.
MANIFEST_STEPS = {
    "record-use": Step(r'link\("[^"]*/~tmp/[^"]+", "[^"]*/gc/digests/'),
    "drop-record-temporary": Step(r'unlink\("[^"]*/~tmp/[^"]+"\) = 0'),
    "link-manifest": Step(r'link\("[^"]*/~tmp/[^"]+", "[^"]*/blobs/'),
    "drop-temporary": Step(r'unlink\("[^"]*/~tmp/[^"]+"\) = 0', occurrence=1),
    "write-revision": Step(r'rename\("[^"]*/~tmp/[^"]+", "[^"]*/_manifests/revisions/'),
    "write-tag": Step(r'rename\("[^"]*/~tmp/[^"]+", "[^"]*/_manifests/tags/'),
    "answer": Step(r"", occurrence=-1),
}
MANIFEST_OUTCOMES = {
    "record-use": (False, False, False),
    "drop-record-temporary": (False, False, False),
    "link-manifest": (False, False, False),
    "drop-temporary": (True, False, False),
    "write-revision": (True, False, False),
    "write-tag": (True, True, False),
    "answer": (True, True, True),
}


class Tracer:
    """strace on every thread of a process, recording link/rename/unlink; optionally SIGKILL it
    on entry to the ``n``-th call of one syscall (counted per thread from the attach).

    Each thread's calls go to a file of their own (``-ff``), so that no call is split in two
    by another thread's output.
    """

    def __init__(self, pid: int, out: Path, kill_at: tuple[str, int] | None = None) -> None:
        self.out = out
        command = ["strace", "-ff", "-p", str(pid), "-o", str(out), "-e", f"trace={TRACED_CALLS}"]
        if kill_at is not None:
            command += ["-e", f"inject={kill_at[0]}:signal=KILL:when={kill_at[1]}"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        first = self.process.stderr.readline()  # "strace: Process N attached with K threads"
        if "attached" not in first:
            self.process.kill()
            raise AssertionError(f"strace did not attach: {first}{self.process.communicate()[1]}")

    def finish(self, *, detach: bool) -> list[Call]:
        """Detach (or wait for the traced process to die) and return the calls of the one thread
        that made any."""
        if detach:
            self.process.send_signal(signal.SIGINT)
        self.process.communicate(timeout=PATIENCE)
        threads = []
        for path in self.out.parent.glob(self.out.name + ".*"):
            tid = int(path.suffix[1:])
            calls = [Call(tid, match["name"], match["args"], match["result"])
                     for line in path.read_text().splitlines() if (match := _CALL.match(line))]
            if calls:
                threads.append(calls)
        assert len(threads) == 1, threads
        return threads[0]


def plan(calls: list[Call], steps: dict[str, Step]) -> dict[str, tuple[str, int]]:
    """For each step, the syscall and its number in ``calls``; checks the steps cover the request."""
    positions = {name: step.find(calls) for name, step in steps.items()}
    successful = [i for i, call in enumerate(calls) if call.result == "0"]
    named = sorted(i for name, i in positions.items() if steps[name].pattern)
    assert successful == named, (
        "the request's successful link/rename/unlink calls are not the steps named here:\n"
        + "\n".join(calls[i].text for i in successful))
    return {
        name: (calls[i].name, sum(call.name == calls[i].name for call in calls[: i + 1]))
        for name, i in positions.items()
    }


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, FilesystemStore]]:
    """A filesystem registry with one worker, and strace; for the module's tests that kill at a step."""
    if shutil.which("strace") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("strace is required under CI (apt-get install strace)")
        pytest.skip("strace is not installed")
    base = tmp_path_factory.mktemp("traced")
    running = RegistryServer(base / "root", extra_args=["--workers", "1"], log_path=base / "server.log")
    with running:
        yield running, FilesystemStore(base / "root")
        interrupt_master(running)


def open_session(server: RegistryServer, name: str, data: bytes) -> str:
    """A session of ``name`` holding ``data`` (acknowledged), ready to be closed; its URL path."""
    session = start_session(server, name)
    status, headers, _ = call(server, "PATCH", session, data, {"Content-Type": "application/octet-stream"})
    assert status == 202 and headers["range"] == f"0-{len(data) - 1}"
    return path_of(headers["location"])


def traced_request(server: RegistryServer, out: Path, request: Callable[[], object],
                   kill_at: tuple[str, int] | None) -> list[Call]:
    """Run ``request`` with strace on the worker; killed at ``kill_at``, wait for the new worker."""
    worker = only_worker(server)
    tracer = Tracer(worker, out, kill_at)
    if kill_at is None:
        request()
        return tracer.finish(detach=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        request()
    calls = tracer.finish(detach=False)
    wait_gone(worker)
    wait_until(lambda: server.child_pids() not in ([], [worker]), "a new worker")
    wait_for_http(server.host, server.port, "/v2/")
    return calls


def assert_killed_at(calls: list[Call], step: Step, kill_at: tuple[str, int]) -> None:
    """The request died on entry to the planned call (strace shows its result as ``?``)."""
    last = calls[-1]
    assert last.result == "?" and last.name == kill_at[0], last.text
    assert sum(call.name == kill_at[0] for call in calls) == kill_at[1]
    assert re.match(step.pattern, last.text.replace("= ?", "= 0")) or not step.pattern, last.text


def new_blob(size: int = 2 * MiB) -> Blob:
    data = os.urandom(size)
    return Blob(data, "sha256:" + hashlib.sha256(data).hexdigest())


@pytest.fixture(scope="module")
def commit_plan(traced: tuple[RegistryServer, FilesystemStore],
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, int]]:
    server, _ = traced
    blob = new_blob()
    session = open_session(server, "plan/commit", blob.data)

    def close() -> None:
        assert call(server, "PUT", f"{session}?digest={blob.digest}")[0] == 201

    calls = traced_request(server, tmp_path_factory.mktemp("plan") / "strace.out", close, None)
    return plan(calls, COMMIT_STEPS)


@pytest.fixture(scope="module")
def manifest_plan(traced: tuple[RegistryServer, FilesystemStore],
                  tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, int]]:
    server, _ = traced
    manifest, _ = image(server, "plan/manifest")

    def put() -> None:
        assert call(server, "PUT", "/v2/plan/manifest/manifests/v1", manifest,
                    {"Content-Type": OCI_MANIFEST})[0] == 201

    calls = traced_request(server, tmp_path_factory.mktemp("plan") / "strace.out", put, None)
    return plan(calls, MANIFEST_STEPS)


@pytest.mark.parametrize("step", list(COMMIT_STEPS))
def test_kill_at_each_step_of_a_commit_leaves_the_blob_absent_or_whole(
        traced: tuple[RegistryServer, FilesystemStore], commit_plan: dict[str, tuple[str, int]],
        tmp_path: Path, step: str) -> None:
    """The closing PUT (spec "Pushing a blob in chunks") killed just before each of its steps: the
    blob is absent with the session resumable, or stored whole; served only once linked whole;
    every case ends, as a client would go on, with the blob served byte for byte."""
    server, store = traced
    store.storage().purge_uploads(0)  # whatever an earlier failed test left
    name, blob = f"crash/commit-{step}", new_blob()
    session = open_session(server, name, blob.data)
    calls = traced_request(server, tmp_path / "strace.out",
                           lambda: call(server, "PUT", f"{session}?digest={blob.digest}"),
                           commit_plan[step])
    assert_killed_at(calls, COMMIT_STEPS[step], commit_plan[step])

    assert_commit_outcome(server, store, name, blob, session, COMMIT_OUTCOMES[step])


def assert_commit_outcome(server: RegistryServer, store: Store, name: str, blob: Blob, session: str,
                          outcome: tuple[bool, bool, bool, int]) -> None:
    """What a commit killed at one step leaves (see ``COMMIT_OUTCOMES``), then the client going on:
    closing the session again if it is open, pushing the blob again if it is not served."""
    stored, served, resumable, leftover_sessions = outcome
    assert (blob_key(blob.digest) in assert_nothing_partial(store)) == stored
    if served:
        assert_blob_served(server, name, blob)
    else:
        assert call(server, "HEAD", f"/v2/{name}/blobs/{blob.digest}")[0] == 404
    status, headers, body = call(server, "GET", session)
    if resumable:
        assert status == 204 and headers["range"] == f"0-{len(blob.data) - 1}"
        status, _, body = call(server, "PUT", f"{session}?digest={blob.digest}")
        assert status == 201, body
    else:
        assert (status, error_code(body)) == (404, "BLOB_UPLOAD_UNKNOWN")
        if not served:  # the client pushes the blob again: the stored copy is kept
            status, _, body = call(server, "POST", f"/v2/{name}/blobs/uploads/?digest={blob.digest}",
                                   blob.data)
            assert status == 201, body
    assert_blob_served(server, name, blob)
    assert_clean_after_purge(store, server.root, sessions=leftover_sessions)


@pytest.mark.parametrize("step", list(MANIFEST_STEPS))
def test_kill_at_each_step_of_a_manifest_put_shows_no_partial_manifest(
        traced: tuple[RegistryServer, FilesystemStore], manifest_plan: dict[str, tuple[str, int]],
        tmp_path: Path, step: str) -> None:
    """A manifest PUT by tag (spec "Pushing Manifests") killed just before each of its steps: the
    manifest is served by digest only once its revision is written, by tag only once tagged,
    always whole; the same PUT afterwards gives 201 and the manifest by tag."""
    server, store = traced
    store.storage().purge_uploads(0)  # whatever an earlier failed test left
    name = f"crash/manifest-{step}"
    manifest, digest = image(server, name)
    calls = traced_request(server, tmp_path / "strace.out",
                           lambda: call(server, "PUT", f"/v2/{name}/manifests/v1", manifest,
                                        {"Content-Type": OCI_MANIFEST}),
                           manifest_plan[step])
    assert_killed_at(calls, MANIFEST_STEPS[step], manifest_plan[step])

    stored, by_digest, by_tag = MANIFEST_OUTCOMES[step]
    assert (blob_key(digest) in assert_nothing_partial(store)) == stored
    for reference, visible in ((digest, by_digest), ("v1", by_tag)):
        status, _, body = call(server, "GET", f"/v2/{name}/manifests/{reference}",
                               headers={"Accept": OCI_MANIFEST})
        if visible:
            assert status == 200 and body == manifest
        else:
            assert (status, error_code(body)) == (404, "MANIFEST_UNKNOWN")
    tags = json.loads(call(server, "GET", f"/v2/{name}/tags/list")[2])["tags"]
    assert tags == (["v1"] if by_tag else [])

    status, headers, body = call(server, "PUT", f"/v2/{name}/manifests/v1", manifest,
                                 {"Content-Type": OCI_MANIFEST})
    assert status == 201 and headers["docker-content-digest"] == digest, body
    status, _, body = call(server, "GET", f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert status == 200 and body == manifest
    assert_clean_after_purge(store, server.root, sessions=0)


# -- a kill after each S3 request of a commit ------------------------------------------------------
#
# The registry reaches SeaweedFS through a proxy that passes every request and can hold back the
# answer to a chosen one: the request has taken effect in the store, and the worker is killed
# before it learns so. A run without holding (the "plan") checks that the steps below are all the
# requests of a closing PUT that change the bucket, in this order.

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailers", "transfer-encoding", "upgrade", "expect"})


class _HoldingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HoldingServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _forward(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""  # parts of at most 8 MiB
        held = proxy.record(f"{self.command} {self.path}")
        host, _, port = proxy.backend.rpartition(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=PATIENCE)
        try:
            # The Host header passes unchanged: it is part of the request's SigV4 signature.
            upstream.request(self.command, self.path, body=body, headers={
                k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP})
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        if held:
            proxy.held.set()
            proxy.released.wait(PATIENCE)
            self.close_connection = True
            return
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and (name.lower() != "content-length" or self.command == "HEAD"):
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


class _HoldingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: "HoldingProxy") -> None:
        super().__init__(("127.0.0.1", 0), _HoldingHandler)
        self.proxy = proxy


class HoldingProxy:
    """An HTTP proxy in front of one server (``host:port``) that records the requests it passes
    (``"METHOD /path?query"``) and holds back the answer to the first one matching :meth:`hold`."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.requests: list[str] = []
        self.held, self.released = threading.Event(), threading.Event()
        self._pattern: str | None = None
        self._lock = threading.Lock()
        self._server = _HoldingServer(self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hold(self, pattern: str) -> None:
        """Hold back the answer to the next request matching ``pattern`` until :meth:`release`."""
        with self._lock:
            self._pattern = pattern
            self.held.clear()
            self.released.clear()

    def release(self) -> None:
        self.released.set()

    def record(self, request: str) -> bool:
        """Note ``request``; whether its answer is to be held back."""
        with self._lock:
            self.requests.append(request)
            if self._pattern is not None and re.match(self._pattern, request):
                self._pattern = None
                return True
            return False

    def __enter__(self) -> "HoldingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


#: The requests of a closing PUT (no body) that change the bucket, for a blob of one part and a
#: tail: copy the tail in as the last part, complete the multipart upload, record the upload as
#: sealed, copy the bytes onto the blob's key, delete the upload's objects, link the blob into the
#: repository, register the repository. Killed once each has taken effect, the outcome is read
#: as in ``COMMIT_OUTCOMES``.
S3_COMMIT_STEPS = {
    "record-use": r"PUT /[^?]*/gc/digests/",
    "copy-tail": r"PUT /[^?]*/~uploads/[^/?]+/data\?(partNumber=|.*&partNumber=)",
    "complete-multipart": r"POST /[^?]*/~uploads/[^/?]+/data\?uploadId=",
    "seal": r"PUT /[^?]*/~uploads/[^/?]+/current",
    "copy-blob": r"PUT /[^?]*/blobs/",
    "drop-upload": r"POST /[^?]*\?delete",
    "link-layer": r"PUT /[^?]*/_layers/",
    "register": r"PUT /[^?]*/catalog/",
}
S3_COMMIT_OUTCOMES = {
    "record-use": (False, False, True, 0),
    "copy-tail": (False, False, True, 0),
    "complete-multipart": (False, False, True, 0),
    "seal": (False, False, True, 0),
    "copy-blob": (True, False, True, 0),
    "drop-upload": (True, False, False, 0),
    "link-layer": (True, True, False, 0),
    "register": (True, True, False, 0),
}
#: One 8 MiB part and a 3 MiB tail.
S3_STEP_BLOB = DEFAULT_PART_SIZE + 3 * MiB


@pytest.fixture(scope="module")
def proxied_s3(s3_bucket: S3Bucket, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[RegistryServer, S3Store, HoldingProxy]]:
    """A registry with one worker on S3, reaching SeaweedFS through a :class:`HoldingProxy`."""
    base = tmp_path_factory.mktemp("proxied")
    store = S3Store(s3_bucket, "crash-" + secrets.token_hex(6))
    args = [arg for arg in store.args if not arg.startswith("--s3-endpoint-url=")]
    with HoldingProxy(urllib.parse.urlsplit(s3_bucket.endpoint_url).netloc) as proxy:
        running = RegistryServer(base / "root", extra_args=[
            "--workers", "1", *args, f"--s3-endpoint-url={proxy.url}"], log_path=base / "server.log")
        with running:
            yield running, store, proxy
            interrupt_master(running)


@pytest.fixture(scope="module")
def s3_commit_plan(proxied_s3: tuple[RegistryServer, S3Store, HoldingProxy]) -> list[str]:
    """The bucket-changing requests of a closing PUT, each matched by its step, in order."""
    server, _, proxy = proxied_s3
    blob = new_blob(S3_STEP_BLOB)
    session = open_session(server, "plan/s3-commit", blob.data)
    proxy.requests.clear()
    assert call(server, "PUT", f"{session}?digest={blob.digest}")[0] == 201
    changes = [r for r in proxy.requests if r.split(" ", 1)[0] in ("PUT", "POST", "DELETE")]
    steps = [[name for name, pattern in S3_COMMIT_STEPS.items() if re.match(pattern, r)] for r in changes]
    assert steps == [[name] for name in S3_COMMIT_STEPS], "\n".join(changes)
    return changes


@pytest.mark.s3
@pytest.mark.parametrize("step", list(S3_COMMIT_STEPS))
def test_kill_after_each_s3_request_of_a_commit_leaves_the_blob_absent_or_whole(
        proxied_s3: tuple[RegistryServer, S3Store, HoldingProxy], s3_commit_plan: list[str],
        step: str) -> None:
    """The closing PUT on S3, killed once each of its bucket-changing requests has taken effect:
    as on the filesystem, the blob is absent with the session resumable, or stored whole, and
    served only once linked; the client then gets the blob served byte for byte."""
    server, store, proxy = proxied_s3
    store.storage().purge_uploads(0)  # whatever an earlier failed test left
    name, blob = f"crash/s3-commit-{step}", new_blob(S3_STEP_BLOB)
    session = open_session(server, name, blob.data)
    proxy.hold(S3_COMMIT_STEPS[step])
    held = HeldRequest(server, "PUT", f"{session}?digest={blob.digest}", b"", {})
    wait_until(proxy.held.is_set, f"the answer to the {step} request held back")
    crash(server, "worker")
    proxy.release()
    held.assert_unanswered()
    assert_commit_outcome(server, store, name, blob, session, S3_COMMIT_OUTCOMES[step])
