"""Blobs of random size pushed through the app in random chunkings come back byte for byte.

On every backend (memory, filesystem, S3 on SeaweedFS), with request bodies that the server
hands over in short reads of random sizes (as a socket does), so that a body reaches the storage
in many pieces that cross the 1 MiB read size (``streams.CHUNK_SIZE``) and S3's 5 MiB part at random
places. Each
blob is pushed one way: monolithic (spec "Single POST"), POST then a PUT carrying the whole body
("POST then PUT"), PATCHes of random sizes with ``Content-Range`` and the rest on the closing
PUT, or one streamed PATCH with ``Transfer-Encoding: chunked`` ("Pushing a blob in chunks");
then a GET must return exactly the bytes pushed.
"""

from __future__ import annotations

import io
import random
from itertools import cycle
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import Storage
from docker_registry_wsgi.storage.s3 import S3Storage

from . import raw_call, sha256

MiB = 1 << 20
MODES = ["monolithic", "post-put", "patches", "streamed"]


class ShortReads(io.RawIOBase):
    """A request body whose reads return at most the next of ``sizes`` bytes (cycled)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data = memoryview(data)
        self.position = 0
        self.sizes = cycle(sizes)
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), next(self.sizes), len(self.data) - self.position)
        buffer[:size] = self.data[self.position:self.position + size]
        self.position += size
        self.reads += 1
        return size


def _cuts(size: int, fractions: list[float]) -> list[tuple[int, int]]:
    """``[start, end)`` pieces of a body of ``size`` bytes, cut at the given fractions of it."""
    bounds = sorted({0, size, *(int(f * size) for f in fractions)})
    return list(zip(bounds, bounds[1:]))


def _push(registry: Registry, name: str, data: bytes, mode: str, fractions: list[float],
          sizes: list[int]) -> list[ShortReads]:
    """Push ``data`` to ``name`` the way ``mode`` says; return the bodies sent (for their reads)."""
    digest = sha256(data)
    bodies: list[ShortReads] = []

    def send(method: str, path: str, body: bytes, query: str = "", headers: dict[str, str] | None = None,
             chunked: bool = False) -> Any:
        stream = ShortReads(body, sizes)
        bodies.append(stream)
        return raw_call(registry, method, path, body, {"Content-Type": "application/octet-stream", **(headers or {})},
                        query=query, chunked=chunked, wsgi_input=stream)

    uploads = f"/v2/{name}/blobs/uploads/"
    if mode == "monolithic":
        response = send("POST", uploads, data, f"digest={digest}")
        assert response.status == 201, response.body
        return bodies
    started = raw_call(registry, "POST", uploads)
    assert started.status == 202, started.body
    location = urlsplit(started.header("Location")).path
    last = b""
    if mode == "post-put":
        last = data
    elif mode == "streamed":
        response = send("PATCH", location, data, chunked=True)
        assert response.status == 202 and response.header("Range") == f"0-{max(len(data) - 1, 0)}", response.body
    else:
        pieces = _cuts(len(data), fractions)
        *patched, final = pieces or [(0, 0)]
        for start, end in patched:
            response = send("PATCH", location, data[start:end], headers={"Content-Range": f"{start}-{end - 1}"})
            assert response.status == 202 and response.header("Range") == f"0-{end - 1}", response.body
            location = urlsplit(response.header("Location")).path
        last = data[final[0]:final[1]]
    response = send("PUT", location, last, f"digest={digest}")
    assert response.status == 201, response.body
    assert response.header("Docker-Content-Digest") == digest
    return bodies


def _pushed_and_pulled(storage: Storage, seed: int, size: int, mode: str, fractions: list[float],
                       sizes: list[int]) -> None:
    data = random.Random(seed).randbytes(size)
    registry = Registry(storage=storage)
    name = f"prop/{mode}"
    bodies = _push(registry, name, data, mode, fractions, sizes)
    if size > max(sizes):
        assert sum(b.reads for b in bodies) > 1  # the bodies did arrive in several reads
    head = raw_call(registry, "HEAD", f"/v2/{name}/blobs/{sha256(data)}")
    assert head.status == 200 and head.header("Content-Length") == str(size)
    pulled = raw_call(registry, "GET", f"/v2/{name}/blobs/{sha256(data)}")
    assert pulled.status == 200 and pulled.header("Docker-Content-Digest") == sha256(data)
    assert len(pulled.body) == size and pulled.body == data


#: Small blobs, blobs near a multiple of the 1 MiB read size or of S3's smallest part (5 MiB, the
#: part size these tests' S3Storage uses), and any size up to 3 MiB.
sizes_of_blobs = st.one_of(
    st.integers(0, 4096),
    st.builds(lambda base, delta: base + delta, st.sampled_from([MiB, 2 * MiB, 3 * MiB, 5 * MiB]),
              st.integers(-4096, 4096)),
    st.integers(0, 3 * MiB),
)
#: Reads of 1 byte to 512 KiB; the first of at least 4 KiB, so that a 3 MiB body takes thousands of
#: reads at most, not millions.
read_sizes = st.tuples(st.integers(4096, 512 << 10), st.lists(st.integers(1, 512 << 10), max_size=5)).map(
    lambda t: [t[0], *t[1]])
cut_fractions = st.lists(st.floats(0, 1), max_size=6)


def _examples(storage: Storage) -> int:
    """S3 requests cost milliseconds each: fewer examples there, to stay within about 20 s."""
    return 10 if isinstance(storage, S3Storage) else 30


def test_blobs_pushed_in_random_chunkings_come_back_exact(every_storage: Storage) -> None:
    """Property: for any size, chunking and read sizes, the blob pulled is the blob pushed."""

    @settings(max_examples=_examples(every_storage), deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(seed=st.integers(0, 2**32), size=sizes_of_blobs, mode=st.sampled_from(MODES),
           fractions=cut_fractions, sizes=read_sizes)
    @example(seed=1, size=MiB + 1, mode="patches", fractions=[0.5], sizes=[MiB - 1])
    @example(seed=2, size=3 * MiB, mode="streamed", fractions=[], sizes=[65536, 1, 100_000])
    @example(seed=6, size=5 * MiB + 1, mode="patches", fractions=[0.3, 0.99999], sizes=[MiB + 7])
    @example(seed=7, size=5 * MiB, mode="streamed", fractions=[], sizes=[300_001, 17])
    @example(seed=3, size=0, mode="monolithic", fractions=[], sizes=[1])
    @example(seed=4, size=0, mode="patches", fractions=[], sizes=[1])
    def check(seed: int, size: int, mode: str, fractions: list[float], sizes: list[int]) -> None:
        _pushed_and_pulled(every_storage, seed, size, mode, fractions, sizes)

    check()


@pytest.mark.parametrize("mode", MODES)
def test_a_blob_across_the_read_size_in_one_byte_reads_at_its_boundary(every_storage: Storage, mode: str) -> None:
    """A 1 MiB + 1 byte blob whose reads end one byte before and one byte after the 1 MiB mark."""
    _pushed_and_pulled(every_storage, 5, MiB + 1, mode, [0.25, 0.999], [MiB - 1, 1, 1, MiB])
