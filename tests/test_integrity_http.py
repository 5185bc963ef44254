"""The integrity attacks, reproduced over HTTP against ``docker-registry-wsgi serve``.

As the review found them (the integrity issue, section 1): with htpasswd auth, mallory may push
only to ``c/*``; alice keeps a layer and a manifest in ``b/secret``. Mallory opens a session,
sends a PATCH's headers and holds back its body, completes the session with the bytes of
alice's layer (or manifest), and then lets the held body through, or closes the connection.
Alice's blob and manifest must come back byte for byte, whatever the server answered.

On the filesystem the test waits until the server holds the upload (it cannot take the upload's
``flock`` itself), so the held request is inside its write when the others arrive; on S3 the
server keeps no lock, and the test checks the same outcome.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import http.client
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

import bcrypt
import pytest

from tests.support.servers import RegistryServer

pytestmark = pytest.mark.s3

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ALICE, MALLORY = _basic("alice", "alice-secret"), _basic("mallory", "mallory-secret")


@pytest.fixture(scope="module", params=["filesystem", "s3"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    base = tmp_path_factory.mktemp("integrity")
    users = base / "users.htpasswd"
    users.write_text("".join(
        f"{name}:{bcrypt.hashpw(f'{name}-secret'.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
        for name in ("alice", "mallory")
    ))
    rules = base / "rules.json"
    rules.write_text(json.dumps({"rules": [
        {"repositories": ["b/*"], "users": ["alice"], "actions": ["*"]},
        {"repositories": ["c/*"], "users": ["mallory"], "actions": ["*"]},
    ]}))
    storage_args: list[str] = []
    if request.param == "s3":
        storage_args = request.getfixturevalue("s3_bucket").server_args("integrity-" + base.name)
    with RegistryServer(base / "root", extra_args=[
        "--auth", "htpasswd", "--htpasswd", str(users), "--access-rules", str(rules),
        "--workers", "1", *storage_args,
    ], log_path=base / "server.log") as running:
        running.storage_kind = request.param  # type: ignore[attr-defined]
        yield running


def call(server: RegistryServer, method: str, path: str, auth: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={
            "Authorization": auth, "Content-Length": str(len(body)), **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(server: RegistryServer, name: str, data: bytes) -> str:
    digest = digest_of(data)
    status, _, body = call(server, "POST", f"/v2/{name}/blobs/uploads/?digest={digest}", ALICE, data)
    assert status == 201, body
    return digest


def alices_secrets(server: RegistryServer) -> tuple[str, bytes, str, bytes]:
    """A layer and a manifest in ``b/secret``: (layer digest, layer, manifest digest, manifest)."""
    layer = os.urandom(200_000)
    config = b'{"architecture": "amd64", "os": "linux"}'
    layer_digest = push_blob(server, "b/secret", layer)
    config_digest = push_blob(server, "b/secret", config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}],
    }).encode()
    status, headers, _ = call(server, "PUT", "/v2/b/secret/manifests/v1", ALICE, manifest,
                              {"Content-Type": OCI_MANIFEST})
    assert status == 201
    return layer_digest, layer, headers["docker-content-digest"], manifest


def wait_until_held(server: RegistryServer, upload_id: str) -> None:
    """Until the server holds the upload's lock (filesystem): the parked PATCH is inside its write."""
    if getattr(server, "storage_kind") != "filesystem":
        return
    path = server.root / "~uploads" / upload_id
    deadline = time.monotonic() + 30
    with open(path, "rb") as f:
        while time.monotonic() < deadline:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            time.sleep(0.01)
    raise AssertionError("the server never started writing the parked PATCH")


@pytest.mark.parametrize("target", ["layer", "manifest"])
@pytest.mark.parametrize("ending", ["sends-the-body", "closes"])
def test_parked_patch_cannot_change_another_teams_content(server: RegistryServer, target: str, ending: str) -> None:
    layer_digest, layer, manifest_digest, manifest = alices_secrets(server)
    victim, victim_bytes = (layer_digest, layer) if target == "layer" else (manifest_digest, manifest)

    status, headers, _ = call(server, "POST", "/v2/c/mine/blobs/uploads/", MALLORY)
    assert status == 202
    location = headers["location"].split(f"{server.port}", 1)[-1]
    upload_id = headers["docker-upload-uuid"]

    attacker = b"A" * 500_000
    parked = socket.create_connection((server.host, server.port), timeout=30)
    parked.sendall((
        f"PATCH {location} HTTP/1.1\r\nHost: {server.hostport}\r\nAuthorization: {MALLORY}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(attacker)}\r\n\r\n"
    ).encode() + attacker[:10])
    wait_until_held(server, upload_id)

    patch, _, _ = call(server, "PATCH", location, MALLORY, victim_bytes,
                       {"Content-Type": "application/octet-stream"})
    put, _, _ = call(server, "PUT", f"{location}?digest={victim}", MALLORY)
    # 400 DIGEST_INVALID when the victim's bytes were refused and the session is still empty.
    assert patch in (202, 416) and put in (201, 400, 404, 416), (patch, put)
    if getattr(server, "storage_kind") == "filesystem":
        assert patch == 416 and put != 201, "the held upload must refuse other requests"

    if ending == "closes":
        parked.close()
    else:
        parked.sendall(attacker[10:])
        parked.settimeout(30)
        answer = parked.recv(65536)
        assert answer.startswith(b"HTTP/1.1 "), answer[:100]
        parked.close()

    status, headers, body = call(server, "GET", f"/v2/b/secret/blobs/{layer_digest}", ALICE)
    assert status == 200 and body == layer
    status, headers, body = call(server, "GET", "/v2/b/secret/manifests/v1", ALICE,
                                 headers={"Accept": OCI_MANIFEST})
    assert status == 200 and body == manifest and headers["docker-content-digest"] == manifest_digest
    status, _, body = call(server, "GET", f"/v2/b/secret/manifests/{manifest_digest}", ALICE,
                           headers={"Accept": OCI_MANIFEST})
    assert status == 200 and body == manifest
    if put == 201:
        status, _, body = call(server, "GET", f"/v2/c/mine/blobs/{victim}", MALLORY)
        assert status == 200 and body == victim_bytes
    assert "Traceback" not in Path(server.log_path).read_text()


def test_deleted_manifest_is_not_a_blob(server: RegistryServer) -> None:
    """Section 3: a manifest deleted by digest is not served at /blobs/ nor mountable."""
    _, _, manifest_digest, _ = alices_secrets(server)
    status, _, _ = call(server, "DELETE", f"/v2/b/secret/manifests/{manifest_digest}", ALICE)
    assert status == 202
    for path in (f"/v2/b/secret/blobs/{manifest_digest}", f"/v2/b/secret/manifests/{manifest_digest}"):
        status, _, _ = call(server, "GET", path, ALICE)
        assert status == 404, path
    status, headers, _ = call(server, "POST",
                              f"/v2/b/other/blobs/uploads/?mount={manifest_digest}&from=b/secret", ALICE)
    assert status == 202  # not mounted: a fresh session instead
    call(server, "DELETE", headers["location"].split(f"{server.port}", 1)[-1], ALICE)
