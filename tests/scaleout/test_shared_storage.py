"""Scale-out: registry processes that share only their storage serve one registry.

OCI Distribution Spec, "Pushing blobs in chunks": POST opens a session, PATCHes append with
``Content-Range``, PUT with ``?digest=`` closes it; here each of those requests goes to another
process, as a load balancer would send them.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


from tests.support.clients import Skopeo
from tests.support.oci_images import assert_same_image, build_multiplatform_image
from tests.support.proxy import RoundRobinProxy
from tests.support.servers import RegistryServer
from tests.support.tools import require_tool

from tests.scaleout.hosts import PART_SIZE, Hosts, registry_logs, sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def data_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_upload_alternating_between_processes(hosts: Hosts, repository: str, registries: list[RegistryServer]) -> None:
    data = data_of(2 * PART_SIZE + PART_SIZE // 2 + 7, seed=1)
    digest = sha256(data)
    status, headers, _ = hosts.request("POST", f"/v2/{repository}/blobs/uploads/", b"", host=0)
    assert status == 202, registry_logs(registries)
    location = headers["location"]
    # Uneven chunks: some fill less than a part, one spans a part boundary, one is chunked-encoded.
    cuts = [0, 1000, PART_SIZE + 3, PART_SIZE + 4, 2 * PART_SIZE + 100, len(data) - 10]
    for number, (start, end) in enumerate(zip(cuts, cuts[1:])):
        piece = data[start:end]
        body: bytes | list[bytes] = piece if number % 2 else [piece[: len(piece) // 2], piece[len(piece) // 2 :]]
        headers_out = {"Content-Type": "application/octet-stream"}
        if isinstance(body, bytes):
            headers_out["Content-Range"] = f"{start}-{end - 1}"
            headers_out["Content-Length"] = str(len(body))
        status, headers, text = hosts.request("PATCH", location, body, headers_out, host=(number + 1) % 2)
        assert status == 202, (number, status, text, registry_logs(registries))
        assert headers["range"] == f"0-{end - 1}"
        location = headers["location"]
    last = cuts[-1]
    status, headers, text = hosts.request(
        "PUT", f"{location}{'&' if '?' in location else '?'}digest={digest}", data[last:],
        {"Content-Type": "application/octet-stream", "Content-Length": str(len(data) - last)},
        host=len(cuts) % 2,
    )
    assert status == 201, (status, text, registry_logs(registries))
    assert headers["docker-content-digest"] == digest
    for host in (0, 1):
        status, headers, _ = hosts.request("HEAD", f"/v2/{repository}/blobs/{digest}", host=host)
        assert status == 200 and int(headers["content-length"]) == len(data)
        status, _, body = hosts.request("GET", f"/v2/{repository}/blobs/{digest}", host=host)
        assert status == 200 and sha256(body) == digest


def test_wrong_digest_on_another_process_is_refused(hosts: Hosts, repository: str) -> None:
    data = data_of(PART_SIZE + 11, seed=2)
    status, headers, _ = hosts.request("POST", f"/v2/{repository}/blobs/uploads/", b"", host=1)
    assert status == 202
    status, headers, _ = hosts.request(
        "PATCH", headers["location"], data,
        {"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(data) - 1}"}, host=0,
    )
    assert status == 202
    wrong = sha256(data + b"!")
    location = headers["location"]
    status, _, text = hosts.request("PUT", f"{location}{'&' if '?' in location else '?'}digest={wrong}", b"", host=1)
    assert status == 400 and json.loads(text)["errors"][0]["code"] == "DIGEST_INVALID"
    for host in (0, 1):
        status, _, _ = hosts.request("HEAD", f"/v2/{repository}/blobs/{wrong}", host=host)
        assert status == 404


def push_image(hosts: Hosts, repository: str, tag: str, layers: list[bytes], config: bytes) -> str:
    """Push blobs (each as POST, PATCH, PUT on whichever process is next) and the manifest."""
    for blob in [*layers, config]:
        digest = sha256(blob)
        status, headers, text = hosts.request("POST", f"/v2/{repository}/blobs/uploads/", b"")
        assert status == 202, text
        half = len(blob) // 2
        status, headers, text = hosts.request(
            "PATCH", headers["location"], blob[:half],
            {"Content-Type": "application/octet-stream", "Content-Range": f"0-{half - 1}" if half else "0-0"},
        ) if half else (202, headers, b"")
        assert status == 202, text
        location = headers["location"]
        status, _, text = hosts.request(
            "PUT", f"{location}{'&' if '?' in location else '?'}digest={digest}", blob[half:],
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, text
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(b), "size": len(b)} for b in layers],
    }).encode()
    status, headers, text = hosts.request(
        "PUT", f"/v2/{repository}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST}
    )
    assert status == 201, text
    return sha256(manifest)


def test_concurrent_pushes_of_overlapping_images(
    hosts: Hosts, repository: str, registries: list[RegistryServer], store: tuple[str, list[str]],
) -> None:
    """32 pushes sharing layers, through both processes, leave every manifest and blob readable.

    On S3 this is also the test that SeaweedFS, under this load, sometimes leaves a small
    PutObject unanswered; S3Storage's short request timeout and retries must ride over it.
    """
    base = data_of(PART_SIZE + PART_SIZE // 3, seed=10)  # in every image: 32 racing commits
    middles = [data_of(300_000 + i, seed=20 + i) for i in range(2)]  # in half of them each
    pushes = 32

    def push(i: int) -> tuple[str, str, list[bytes], bytes]:
        layers = [base, middles[i % 2], data_of(50_000 + i, seed=100 + i)]
        config = json.dumps({"architecture": "amd64", "os": "linux", "push": i}).encode()
        name = f"{repository}/img{i % 4}"
        return name, push_image(hosts, name, f"v{i}", layers, config), layers, config

    with ThreadPoolExecutor(pushes) as pool:
        results = list(pool.map(push, range(pushes)))
    for i, (name, manifest_digest, layers, config) in enumerate(results):
        for host in (0, 1):
            status, headers, body = hosts.request(
                "GET", f"/v2/{name}/manifests/v{i}", headers={"Accept": OCI_MANIFEST}, host=host
            )
            assert status == 200, registry_logs(registries)
            assert sha256(body) == manifest_digest == headers["docker-content-digest"]
            for blob in [*layers, config]:
                status, headers, _ = hosts.request("HEAD", f"/v2/{name}/blobs/{sha256(blob)}", host=host)
                assert status == 200 and int(headers["content-length"]) == len(blob)
        status, _, body = hosts.request("GET", f"/v2/{name}/blobs/{sha256(base)}", host=i % 2)
        assert status == 200 and body == base
    for n in range(4):
        status, _, body = hosts.request("GET", f"/v2/{repository}/img{n}/tags/list")
        assert status == 200
        assert sorted(json.loads(body)["tags"]) == sorted(f"v{i}" for i in range(n, pushes, 4))


def test_skopeo_round_trip_through_round_robin_proxy(
    registries: list[RegistryServer], repository: str, tmp_path: Path
) -> None:
    skopeo_path = require_tool("skopeo", "apt-get install -y skopeo")
    image = build_multiplatform_image(tmp_path / "source", tag="v1", seed=7, big_layer_size=PART_SIZE + 12345)
    with RoundRobinProxy([server.hostport for server in registries]) as proxy:
        skopeo = Skopeo(skopeo_path, proxy.hostport)
        try:
            skopeo.copy(image.reference, skopeo.docker(repository, "v1"), "--all")
            skopeo.copy(skopeo.docker(repository, "v1"), f"oci:{tmp_path / 'pulled'}:v1", "--all")
        except AssertionError:
            print("\n".join(skopeo.transcript[-2:]))
            print(registry_logs(registries))
            raise
        counts = dict(proxy.counts)
    assert all(count > 10 for count in counts.values()), counts
    assert assert_same_image(image.path, "v1", tmp_path / "pulled", "v1") == len(image.blobs)
