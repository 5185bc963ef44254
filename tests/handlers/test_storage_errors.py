"""A full or read-only disk over HTTP: a clear OCI error, never a 500, and the session resumable.

The integrity issue, section 5: "Disk full or read-only storage answers a generic 500: answer with
a clear error (507 or 503 with an OCI body), keep the session resumable, and recover when space
returns." A real full disk: FilesystemStorage on a 2 MiB tmpfs (the ``small_disk`` fixture).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import FilesystemStorage

from . import OCI_MANIFEST, assert_error, sha256


def fill(path: Path) -> None:
    """Take every free byte of the disk ``path`` is on."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_full_disk_is_507_and_the_upload_resumes(small_disk: Path) -> None:
    app = webtest.TestApp(Registry(storage=FilesystemStorage(small_disk / "root")))
    session = app.post("/v2/team/app/blobs/uploads/", status=202).headers["Location"]
    first, rest = os.urandom(1000), os.urandom(300_000)
    response = app.patch(session, first, headers={"Content-Type": "application/octet-stream"}, status=202)
    session = response.headers["Location"]
    app.post(f"/v2/team/app/blobs/uploads/?digest={sha256(b'x')}", b"x",
             headers={"Content-Type": "application/octet-stream"}, status=201)
    filler = small_disk / "filler"
    fill(filler)
    response = app.patch(session, rest, headers={"Content-Type": "application/octet-stream"},
                         expect_errors=True)
    assert_error(response, 507, "UNAVAILABLE")
    assert response.headers["Retry-After"]
    assert app.get(session, status=204).headers["Range"] == "0-999"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"x"), "size": 1},
        "layers": []}).encode()
    response = app.put("/v2/team/app/manifests/v1", manifest, headers={"Content-Type": OCI_MANIFEST},
                       expect_errors=True)
    assert_error(response, 507, "UNAVAILABLE")
    app.get("/v2/team/app/manifests/v1", status=404)
    filler.unlink()  # space returns
    app.patch(session, rest, headers={"Content-Type": "application/octet-stream"}, status=202)
    app.put(f"{session}&digest={sha256(first + rest)}" if "?" in session
            else f"{session}?digest={sha256(first + rest)}", status=201)
    assert app.get(f"/v2/team/app/blobs/{sha256(first + rest)}", status=200).body == first + rest


def test_read_only_disk_is_503_and_recovers(small_disk: Path) -> None:
    app = webtest.TestApp(Registry(storage=FilesystemStorage(small_disk / "root")))
    session = app.post("/v2/team/app/blobs/uploads/", status=202).headers["Location"]
    data = os.urandom(5000)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        response = app.patch(session, data, headers={"Content-Type": "application/octet-stream"},
                             expect_errors=True)
        assert_error(response, 503, "UNAVAILABLE")
        response = app.post(f"/v2/team/app/blobs/uploads/?digest={sha256(data)}", data,
                            headers={"Content-Type": "application/octet-stream"}, expect_errors=True)
        assert_error(response, 503, "UNAVAILABLE")
        assert app.get(session, status=204).headers["Range"] == "0-0"
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    app.patch(session, data, headers={"Content-Type": "application/octet-stream"}, status=202)
    sep = "&" if "?" in session else "?"
    app.put(f"{session}{sep}digest={sha256(data)}", status=201)
