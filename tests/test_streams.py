"""Request and response bodies in bounded pieces.

Spec: oci-distribution-spec.md "Pushing a blob in chunks" (PATCH bodies with Content-Length; issue
#2: also ``Transfer-Encoding: chunked`` without Content-Length, read only when the server sets
``wsgi.input_terminated``), "Pushing Manifests" (size limit, 413), "Pulling blobs" (ranges served
from a file, bounded by Content-Length); RFC 9112 section 6.1 (transfer codings: only ``chunked``,
else 501) and 7.1 (chunked framing, which the WSGI server decodes); RFC 9110 section 15.5.12 (411)
and 15.5.16 (415 for a content coding the registry would store coded).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st
from werkzeug.wrappers import Request

from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkExtension, InvalidChunkSize, NoMoreData
from werkzeug.exceptions import ClientDisconnected

from docker_registry_wsgi.errors import (
    BlobUploadInvalid,
    ContentCodingUnsupported,
    LengthRequired,
    ManifestInvalid,
    ManifestTooLarge,
    SizeInvalid,
    TransferCodingUnsupported,
)
from docker_registry_wsgi.streams import (
    CHUNK_SIZE,
    BoundedReader,
    check_framing,
    has_body,
    iter_body,
    read_small_body,
)
from tests.handlers import FailingInput
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


@pytest.mark.parametrize("coding", ["Chunked", "gzip, Chunked", "gzip", " identity "])
def test_has_body_with_any_transfer_coding(coding: str) -> None:
    """RFC 9112 6.3: a request with Transfer-Encoding has a body (codings are case-insensitive), so
    the closing PUT reads it, and refuses it if the coding is not ``chunked`` alone."""
    req = request(b"x")
    req.environ["HTTP_TRANSFER_ENCODING"] = coding
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


# -- framing: transfer codings, and servers that do not decode chunked bodies -------------------------


def test_chunked_body_the_server_does_not_decode_is_411_before_reading() -> None:
    """RFC 9110 15.5.12: wsgiref and uWSGI pass a chunked body undecoded (or as nothing) and set no
    ``wsgi.input_terminated``; reading it would store the framing or 0 bytes, so 411, at once."""
    req = request(b"5\r\nhello\r\n0\r\n\r\n", chunked=True)
    with pytest.raises(LengthRequired) as info:
        iter_body(req)  # raised by the call, before anything is iterated
    assert (info.value.status, info.value.code) == (411, "UNSUPPORTED")
    assert req.environ["wsgi.input"].tell() == 0


@pytest.mark.parametrize("extra", [{"wsgi.input_terminated": False}, {"CONTENT_LENGTH": "5"},
                                   {"wsgi.input_terminated": 0, "CONTENT_LENGTH": "20"}])
def test_chunked_without_a_true_input_terminated_is_411(extra: dict[str, Any]) -> None:
    """RFC 9112 6.3: Transfer-Encoding overrides Content-Length, so a length does not make the
    undecoded framing readable; only a true ``wsgi.input_terminated`` does."""
    req = request(b"5\r\nhello\r\n0\r\n\r\n", chunked=True)
    req.environ.update(extra)
    with pytest.raises(LengthRequired):
        check_framing(req)


@pytest.mark.parametrize("coding", ["gzip, chunked", "chunked, gzip", "gzip", "deflate,chunked", "identity",
                                    "chunked, chunked", "x-custom", "br , chunked"])
@pytest.mark.parametrize("terminated", [True, False])
def test_transfer_codings_other_than_chunked_are_501(coding: str, terminated: bool) -> None:
    """RFC 9112 6.1: a server that receives a transfer coding it does not understand SHOULD answer
    501; a ``gzip, chunked`` body would otherwise be stored still gzipped."""
    req = request(b"payload", chunked=True, terminated=terminated)
    req.environ["HTTP_TRANSFER_ENCODING"] = coding
    with pytest.raises(TransferCodingUnsupported) as info:
        iter_body(req)
    assert (info.value.status, info.value.code) == (501, "UNSUPPORTED")
    assert info.value.detail == {"Transfer-Encoding": coding}


CODINGS = ["chunked", "gzip", "deflate", "compress", "identity", "br", "x-y"]


@FAST
@given(codings=st.lists(st.tuples(st.sampled_from(CODINGS), st.sampled_from(["", " ", "\t"]),
                                  st.booleans()), max_size=4),
       terminated=st.booleans(), body=st.binary(max_size=100))
def test_only_chunked_alone_is_read(codings: list[tuple[str, str, bool]], terminated: bool, body: bytes) -> None:
    """RFC 9110 5.6.1 / RFC 9112 6.1: any list of codings, in any case and spacing: ``chunked`` alone
    is read (if the server decoded it), no coding reads by Content-Length, anything else is 501."""
    names = [name for name, _, _ in codings]
    header = ",".join(f"{pad}{name.upper() if upper else name}{pad}" for name, pad, upper in codings)
    req = request(body, content_length=len(body), terminated=terminated)
    if header:
        req.environ["HTTP_TRANSFER_ENCODING"] = header
    if not names:
        assert b"".join(iter_body(req)) == body
    elif names != ["chunked"]:
        with pytest.raises(TransferCodingUnsupported):
            iter_body(req)
    elif not terminated:
        with pytest.raises(LengthRequired):
            iter_body(req)
    else:
        assert b"".join(iter_body(req)) == body


# -- errors of the server's input stream ---------------------------------------------------------------


STREAM_ERRORS = [
    InvalidChunkSize(b"zz"),  # gunicorn, the chunk-size line is not hex
    ChunkMissingTerminator(b"XX"),  # gunicorn, no CRLF after the chunk data
    InvalidChunkExtension("bare CR not allowed"),  # gunicorn
    NoMoreData(b""),  # gunicorn, the client closed mid-body
    OSError("Invalid chunk header"),  # werkzeug's dev server
    ValueError("Size must be positive."),
    ConnectionResetError(104, "Connection reset by peer"),
    ClientDisconnected(),  # werkzeug's LimitedStream, a body shorter than its Content-Length
]


@pytest.mark.parametrize("error", STREAM_ERRORS, ids=lambda e: type(e).__name__)
def test_any_error_of_the_input_stream_is_the_clients(error: BaseException) -> None:
    """spec "Error Codes" BLOB_UPLOAD_INVALID: whatever the server raises while reading the body is
    a broken request (4xx with the server's reason), never a 500; the bytes before it came through."""
    req = request(b"", chunked=True, terminated=True)
    req.environ["wsgi.input"] = FailingInput(b"0123456789", error)
    received = []
    with pytest.raises(BlobUploadInvalid) as info:
        for chunk in iter_body(req, 4):
            received.append(chunk)
    assert b"".join(received) == b"0123456789"
    assert (info.value.status, info.value.code) == (400, "BLOB_UPLOAD_INVALID")
    assert info.value.detail["reason"].startswith(type(error).__name__)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_caller_chooses_the_error_of_an_unreadable_body() -> None:
    """spec "Pushing Manifests": a manifest that breaks off is MANIFEST_INVALID, not a blob error."""
    req = request(b"", chunked=True, terminated=True)
    req.environ["wsgi.input"] = FailingInput(b"{", InvalidChunkSize(b"zz"))
    with pytest.raises(ManifestInvalid) as info:
        read_small_body(req, 100, ManifestTooLarge, ManifestInvalid)
    assert (info.value.status, info.value.code) == (400, "MANIFEST_INVALID")


def test_errors_thrown_in_by_the_consumer_are_not_converted() -> None:
    """Only the server's reads are the client's fault: a storage error at a ``yield`` stays itself."""
    pieces = iter_body(request(b"abcdef", content_length=6), 2)
    assert next(pieces) == b"ab"
    with pytest.raises(KeyError):
        pieces.throw(KeyError("storage"))


def test_streams_does_not_import_gunicorn() -> None:
    """The package serves under any WSGI server: gunicorn's exceptions are caught without importing it."""
    code = "import sys, docker_registry_wsgi.streams, docker_registry_wsgi.app; print('gunicorn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# -- content codings on bodies the registry parses -------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "br", "identity, gzip", "deflate"])
def test_content_coded_small_body_is_415_before_reading(coding: str) -> None:
    """RFC 9110 15.5.16 and 12.5.3: a content-coded manifest would be stored and digested coded;
    415 with ``Accept-Encoding: identity``, and the body is not read."""
    req = request(b"\x1f\x8b...", content_length=5)
    req.environ["HTTP_CONTENT_ENCODING"] = coding
    with pytest.raises(ContentCodingUnsupported) as info:
        read_small_body(req, 100, ManifestTooLarge, ManifestInvalid)
    assert (info.value.status, info.value.code) == (415, "UNSUPPORTED")
    assert info.value.headers == {"Accept-Encoding": "identity"}
    assert req.environ["wsgi.input"].tell() == 0


@pytest.mark.parametrize("coding", ["identity", "", " Identity "])
def test_identity_content_coding_is_no_coding(coding: str) -> None:
    """RFC 9110 8.4.1: ``identity`` means no coding."""
    req = request(b"{}", content_length=2)
    req.environ["HTTP_CONTENT_ENCODING"] = coding
    assert read_small_body(req, 100) == b"{}"


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
