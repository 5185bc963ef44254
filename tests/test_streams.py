"""Request and response bodies in bounded pieces.

Spec: oci-distribution-spec.md "Pushing a blob in chunks" (PATCH bodies with Content-Length; issue
#2: also ``Transfer-Encoding: chunked`` without Content-Length, read only when the server sets
``wsgi.input_terminated``), "Pushing Manifests" (size limit, 413), "Pulling blobs" (ranges served
from a file, bounded by Content-Length).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st
from werkzeug.wrappers import Request

from docker_registry_wsgi.errors import BlobUploadInvalid, ManifestTooLarge, SizeInvalid
from docker_registry_wsgi.streams import CHUNK_SIZE, BoundedReader, has_body, iter_body, read_small_body
from tests.unit_fixtures import FAST


def request(body: bytes, *, content_length: int | None = None, chunked: bool = False,
            terminated: bool = False) -> Request:
    """A request whose ``wsgi.input`` holds ``body`` (possibly more or less than it declares)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "PATCH",
        "PATH_INFO": "/v2/a/blobs/uploads/x",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
    }
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    if terminated:
        environ["wsgi.input_terminated"] = True
    return Request(environ)


@FAST
@given(body=st.binary(max_size=5000), chunk_size=st.integers(1, 700))
def test_body_with_content_length_in_bounded_chunks(body: bytes, chunk_size: int) -> None:
    """spec "Pushing a blob in chunks": the body is the chunk, read in pieces of at most ``chunk_size``."""
    chunks = list(iter_body(request(body, content_length=len(body)), chunk_size))
    assert b"".join(chunks) == body
    assert all(0 < len(c) <= chunk_size for c in chunks)


@FAST
@given(body=st.binary(max_size=3000), extra=st.binary(min_size=1, max_size=100))
def test_content_length_is_honoured(body: bytes, extra: bytes) -> None:
    """RFC 9112 6.3: bytes after Content-Length (a pipelined request) are not part of the body."""
    assert b"".join(iter_body(request(body + extra, content_length=len(body)), 256)) == body


@FAST
@given(body=st.binary(max_size=3000), chunk_size=st.integers(1, 500))
def test_chunked_body_read_to_the_end_when_input_terminated(body: bytes, chunk_size: int) -> None:
    """Issue #2: PATCH with ``Transfer-Encoding: chunked`` and no Content-Length (docker, containerd)."""
    chunks = list(iter_body(request(body, chunked=True, terminated=True), chunk_size))
    assert b"".join(chunks) == body and all(len(c) <= chunk_size for c in chunks)


def test_body_shorter_than_content_length_is_a_client_error() -> None:
    """spec "Error Codes": a body that ends before its Content-Length is the client's fault (4xx, not 500)."""
    with pytest.raises(BlobUploadInvalid) as info:
        list(iter_body(request(b"abc", content_length=10), 4))
    assert info.value.status == 400


def test_default_chunk_size_is_bounded() -> None:
    """Never hold a blob in memory: the default piece is 1 MiB."""
    assert CHUNK_SIZE == 1 << 20
    body = b"x" * (CHUNK_SIZE * 2 + 5)
    assert [len(c) for c in iter_body(request(body, content_length=len(body)))] == [CHUNK_SIZE, CHUNK_SIZE, 5]


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"content_length": 5}, True),
        ({"content_length": 0}, False),
        ({}, False),
        ({"chunked": True}, True),
        ({"chunked": True, "terminated": True}, True),
    ],
)
def test_has_body(kwargs: dict[str, Any], expected: bool) -> None:
    """spec "Pushing a blob in chunks": the closing PUT carries a last chunk only if it has a body."""
    assert has_body(request(b"hello", **kwargs)) is expected


def test_has_body_knows_chunked_in_any_case() -> None:
    """RFC 9112 7: transfer codings are case-insensitive."""
    req = request(b"x")
    req.environ["HTTP_TRANSFER_ENCODING"] = "gzip, Chunked"
    assert has_body(req)


@FAST
@given(body=st.binary(max_size=300), limit=st.integers(0, 300), chunked=st.booleans())
def test_small_body_up_to_the_limit(body: bytes, limit: int, chunked: bool) -> None:
    """spec "Pushing Manifests": a manifest over the limit is refused; one at or under it is read whole."""
    req = request(body, chunked=True, terminated=True) if chunked else request(body, content_length=len(body))
    if len(body) <= limit:
        assert read_small_body(req, limit) == body
    else:
        with pytest.raises(SizeInvalid):
            read_small_body(req, limit)


def test_small_body_refused_from_content_length_before_reading() -> None:
    """spec "Pushing Manifests": a declared size over the limit is refused without reading the body (413)."""
    stream = io.BytesIO(b"x" * 100)
    req = request(b"", content_length=100)
    req.environ["wsgi.input"] = stream
    with pytest.raises(ManifestTooLarge) as info:
        read_small_body(req, 10, ManifestTooLarge)
    assert info.value.status == 413 and info.value.detail == {"limit": 10, "size": 100}
    assert stream.tell() == 0


def test_small_chunked_body_over_the_limit_stops_early() -> None:
    """spec "Pushing Manifests": a chunked body is cut off once it passes the limit, not read to the end."""
    stream = io.BytesIO(b"x" * (10 * CHUNK_SIZE))
    req = request(b"", chunked=True, terminated=True)
    req.environ["wsgi.input"] = stream
    with pytest.raises(ManifestTooLarge):
        read_small_body(req, 1000, ManifestTooLarge)
    assert stream.tell() <= 2 * 1001


# -- BoundedReader ----------------------------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=2000), offset=st.integers(0, 2000), length=st.integers(0, 2000),
       sizes=st.lists(st.one_of(st.integers(-1, 300), st.none()), max_size=10))
def test_bounded_reader_never_passes_its_length(data: bytes, offset: int, length: int, sizes: list[int | None]) -> None:
    """spec "Pulling blobs" (Range): a 206 body is exactly the range, however the server reads it."""
    raw = io.BytesIO(data)
    raw.seek(offset)
    reader = BoundedReader(raw, length)
    got = b"".join(reader.read(size) for size in sizes) + b"".join(reader)
    assert got == data[offset : offset + length]
    assert reader.read() == b"" and reader.read(10) == b""


def test_bounded_reader_keeps_fileno_for_sendfile(tmp_path: Path) -> None:
    """Issue #2: file blobs are served with wsgi.file_wrapper, which sendfiles from fileno() and tell()."""
    path = tmp_path / "blob"
    path.write_bytes(b"0123456789")
    f = open(path, "rb")
    f.seek(3)
    reader = BoundedReader(f, 4)
    assert reader.fileno() == f.fileno() and reader.tell() == 3  # type: ignore[attr-defined]
    assert reader.read() == b"3456"
    reader.close()
    assert f.closed


def test_bounded_reader_without_fileno_has_none() -> None:
    """A reader that is not a file must not pretend to be one (the server would sendfile garbage)."""

    class Plain:
        def read(self, size: int = -1) -> bytes:
            return b"abc"[: size if size >= 0 else None]

        def close(self) -> None:
            pass

    assert not hasattr(BoundedReader(Plain(), 2), "fileno")
    assert list(BoundedReader(Plain(), 2)) == [b"ab"]
