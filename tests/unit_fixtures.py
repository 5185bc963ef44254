"""Hypothesis strategies and helpers shared by the unit tests of the parsers and the content layer.

The strategies generate from the grammars of the specs (OCI distribution spec, "Pulling
manifests"; OCI image spec, descriptor.md "Digests"), independently of the package's own regexes,
so that a test compares the package against the spec rather than against itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from contextlib import contextmanager
from typing import Iterator

from hypothesis import settings, strategies as st

from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage

#: Bounded, deadline-free settings: the whole unit suite must stay well under a minute.
FAST = settings(max_examples=40, deadline=None)
QUICK = settings(max_examples=25, deadline=None)

#: The spec's regexes, copied verbatim from oci-distribution-spec.md "Pulling manifests".
SPEC_NAME = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
SPEC_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
#: Words that are also path segments of the API, to make routing ambiguous on purpose.
API_WORDS = ("manifests", "blobs", "uploads", "tags", "list", "referrers", "v2", "_catalog")

alnum_runs = st.text(alphabet=_ALNUM, min_size=1, max_size=8)
separators = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def name_components(draw: st.DrawFn) -> str:
    """One path component: ``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*``, API words included."""
    if draw(st.integers(0, 4)) == 0:
        word = draw(st.sampled_from(API_WORDS[:-1]))  # "_catalog" starts with a separator
        return word
    parts = [draw(alnum_runs)]
    for _ in range(draw(st.integers(0, 3))):
        parts.append(draw(separators))
        parts.append(draw(alnum_runs))
    return "".join(parts)


@st.composite
def repository_names(draw: st.DrawFn, max_components: int = 12) -> str:
    """A valid repository name of one or more components, at most 255 characters."""
    components = draw(st.lists(name_components(), min_size=1, max_size=max_components))
    name = "/".join(components)
    while len(name) > 255:
        components.pop()
        name = "/".join(components)
    return name


tags = st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", fullmatch=True)

algorithms = st.sampled_from(["sha256", "sha512"])


@st.composite
def digest_strings(draw: st.DrawFn) -> str:
    """``<alg>:<hex>`` of random bytes, as hashlib writes it."""
    algorithm = draw(algorithms)
    return f"{algorithm}:{hashlib.new(algorithm, draw(st.binary(max_size=64))).hexdigest()}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


BACKENDS = ("memory", "filesystem")


@contextmanager
def make_storage(backend: str) -> Iterator[Storage]:
    """A fresh, empty storage of the given kind (hypothesis tests need one per example)."""
    if backend == "memory":
        yield MemoryStorage()
        return
    with tempfile.TemporaryDirectory(prefix="drw-unit-") as root:
        yield FilesystemStorage(os.path.join(root, "registry"), fsync=False)
