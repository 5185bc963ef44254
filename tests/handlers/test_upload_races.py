"""One upload session, two requests at once, through the WSGI interface.

A PATCH whose body is held back (the ``wsgi.input`` stops at its first read until the test lets
it go) holds the session on the backends that lock it (memory, filesystem): meanwhile another
PATCH or the closing PUT gets 416 with the session's real ``Range`` and ``Location`` (spec
"Pushing a blob in chunks": the client continues from ``Range``), and a DELETE gets 409. Nothing
another request sends can become the session's bytes while the held one is inside its write.
"""

from __future__ import annotations

import io
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import Storage
from tests.test_content_races import Held, run_held

from . import RawResponse, assert_error, raw_call, sha256


class HeldInput(io.RawIOBase):
    """A request body whose first read waits until :attr:`released`; :attr:`reached` when asked."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)
        self.reached = threading.Event()
        self.released = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.reached.set()
        assert self.released.wait(30), "the test never released the held body"
        data = self.data.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def held_patch(registry: Registry, path: str, body: HeldInput, length: int) -> tuple[threading.Thread, list[RawResponse]]:
    """Start a PATCH of ``path`` whose body is ``body``; return once it waits for its body."""
    answers: list[RawResponse] = []

    def run() -> None:
        environ_body = body

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            environ["wsgi.input"] = environ_body
            return registry(environ, start_response)

        answers.append(raw_call(app, "PATCH", path, b"", {"Content-Type": "application/octet-stream"},
                                content_length=length))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert body.reached.wait(30), "the held PATCH never started reading its body"
    return thread, answers


def test_requests_on_a_held_session_get_416_with_its_range(storage: Storage) -> None:
    registry = Registry(storage=storage)
    app = webtest.TestApp(registry)
    location = app.post("/v2/team/app/blobs/uploads/", status=202).headers["Location"]
    path = location.split("localhost", 1)[-1] if "localhost" in location else location
    first = b"first chunk"
    location = app.patch(path, first, headers={"Content-Type": "application/octet-stream"},
                         status=202).headers["Location"]
    held_bytes = b"held back body"
    body = HeldInput(held_bytes)
    thread, answers = held_patch(registry, path.split("?")[0], body, len(held_bytes))

    response = app.patch(path, b"intruder", headers={"Content-Type": "application/octet-stream"},
                         expect_errors=True)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response.headers["Range"] == f"0-{len(first) - 1}"
    assert response.headers["Location"].endswith(path.split("?")[0])
    # The digest of what the session has recorded: it would commit, but the session is held.
    response = app.put(f"{path}?digest={sha256(first)}", expect_errors=True)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    app.get(f"/v2/team/app/blobs/{sha256(first)}", status=404)
    response = app.delete(path, expect_errors=True)
    assert_error(response, 409, "BLOB_UPLOAD_INVALID")

    body.released.set()
    thread.join(30)
    assert answers and answers[0].status == 202, answers
    assert answers[0].header("Range") == f"0-{len(first + held_bytes) - 1}"
    digest = sha256(first + held_bytes)
    app.put(f"{path}?digest={digest}", status=201)
    assert app.get(f"/v2/team/app/blobs/{digest}").body == first + held_bytes


@pytest.mark.parametrize("body", [b"", b"x" * 10])
def test_failed_monolithic_post_leaves_no_session(storage: Storage, body: bytes) -> None:
    """Section 4: a POST ?digest= with a wrong size or Content-Range leaves nothing behind."""
    app = webtest.TestApp(Registry(storage=storage))
    digest = sha256(b"right bytes")
    for headers in ({"Content-Range": "bogus"}, {"Content-Range": "0-99"}, {}):
        app.post(f"/v2/team/app/blobs/uploads/?digest={digest}", body,
                 headers={"Content-Type": "application/octet-stream", **headers}, expect_errors=True)
    response = raw_call(Registry(storage=storage), "POST", "/v2/team/app/blobs/uploads/",
                        b"short", {"Content-Type": "application/octet-stream"},
                        query=f"digest={digest}", content_length=100)
    assert response.status == 400
    assert list(storage.list_uploads()) == []



def test_concurrent_pushes_of_the_same_blob(every_storage: Storage) -> None:
    """spec "Layer Upload De-duplication": two sessions upload the same bytes at the same time.

    Both bodies are written; the closing PUT of one is held before each of its storage calls in
    turn (its ``commit_upload`` among them) while the other closes whole, then it goes on. Both
    get 201 Created ("Pushing a blob in chunks"), one object is stored, and both repositories
    serve the exact bytes.
    """
    hold_at = 0
    while True:
        data = f"the same layer, held at call {hold_at}; ".encode() * 500
        digest = sha256(data)
        held = Held(every_storage, hold_at)
        registry = Registry(storage=held)  # type: ignore[arg-type]
        app = webtest.TestApp(registry)
        paths = []
        for name in ("team/a", "team/b"):
            location = app.post(f"/v2/{name}/blobs/uploads/", status=202).headers["Location"]
            location = app.patch(location, data, headers={"Content-Type": "application/octet-stream"},
                                 status=202).headers["Location"]
            paths.append(urlsplit(location).path)
        first, answers = run_held(held, lambda: raw_call(registry, "PUT", paths[0], query=f"digest={digest}"))
        reached = held.reached.is_set()
        second = webtest.TestApp(registry).put(f"{paths[1]}?digest={digest}", status=201)
        held.released.set()
        first.join(30)
        assert not first.is_alive(), "the held PUT never finished"
        assert [a.status for a in answers] == [201], (hold_at, held.calls, answers)
        assert answers[0].header("Docker-Content-Digest") == second.headers["Docker-Content-Digest"] == digest
        # One object, and neither session left behind.
        assert [key for key in every_storage.list("blobs/sha256/") if key.endswith(digest[7:])] == [
            f"{digest[7:9]}/{digest[7:]}"]
        assert list(every_storage.list_uploads()) == []
        for name in ("team/a", "team/b"):
            assert app.get(f"/v2/{name}/blobs/{digest}").body == data
        if not reached:  # the PUT ran whole before the other: every call has been a hold point
            break
        hold_at += 1
    assert "commit_upload" in " ".join(held.calls) and hold_at > 3, held.calls
