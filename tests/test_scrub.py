"""Scrubbing (``docker_registry_wsgi.scrub``, ``docker-registry-wsgi scrub``): every stored object is
re-hashed against its digest (OCI image spec, descriptor.md "Digests": the digest identifies the
bytes), with the repositories, tags and manifests that refer to a bad one.

Registries are built through :class:`RegistryContent` (the layer the HTTP API uses) and damaged by
writing other bytes at a blob's key directly through the storage, as a failing disk would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from docker_registry_wsgi.cli import main
from docker_registry_wsgi.content import RegistryContent
from docker_registry_wsgi.content.paths import (
    blob_key,
    layer_key,
    revision_key,
    tags_prefix,
)
from docker_registry_wsgi.digests import Digest, parse_digest
from docker_registry_wsgi.manifests import OCI_INDEX, OCI_MANIFEST
from docker_registry_wsgi.scrub import (
    INVALID,
    MISMATCH,
    MISSING,
    ManifestReference,
    ProgressPrinter,
    ScrubProgress,
    Scrubber,
    _parse_blob_key,
    _parse_repository_key,
    parse_sample,
)
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage
from tests.unit_fixtures import repository_names, tags

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


# -- building registries ------------------------------------------------------------------------


def sha256(data: bytes) -> Digest:
    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


def push_blob(content: RegistryContent, name: str, data: bytes) -> Digest:
    digest = sha256(data)
    upload = content.start_upload(name)
    content.finish(upload, digest, [data], length=len(data))
    return digest


def descriptor(media_type: str, digest: Digest, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": size}


@dataclass
class Image:
    name: str
    manifest: Digest
    config: Digest
    layers: list[Digest]


def push_image(content: RegistryContent, name: str, layers: list[bytes], tag: str | None = None,
               config: bytes | None = None) -> Image:
    """Push the blobs, then an OCI image manifest listing them, tagged ``tag`` if given."""
    if config is None:
        config = json.dumps({"name": name, "tag": tag, "n": len(layers)}).encode()
    config_digest = push_blob(content, name, config)
    layer_digests = [push_blob(content, name, data) for data in layers]
    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG_TYPE, config_digest, len(config)),
        "layers": [descriptor(LAYER_TYPE, d, len(data)) for d, data in zip(layer_digests, layers)],
    }).encode()
    digest, _ = content.put_manifest(name, tag if tag is not None else sha256(body), body, None)
    return Image(name, digest, config_digest, layer_digests)


def push_index(content: RegistryContent, name: str, images: list[Image], tag: str) -> Digest:
    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, image.manifest,
                                 len(content.get_manifest(name, image.manifest).body or b""))
                      for image in images],
    }).encode()
    digest, _ = content.put_manifest(name, tag, body, None)
    return digest


def corrupt(storage: Storage, digest: Digest) -> None:
    """Other bytes at the blob's key, as a failing disk or a hand edit leaves them."""
    original = read(storage, digest)
    storage.write(blob_key(digest), bytes([original[0] ^ 0xFF]) + original[1:])


def read(storage: Storage, digest: Digest) -> bytes:
    reader = storage.open(blob_key(digest))
    try:
        return reader.read()
    finally:
        reader.close()


@dataclass
class Sample:
    """A small registry: two repositories sharing a layer, an index, a tag on each."""

    storage: Storage
    app: Image
    app_v2: Image
    tool: Image
    index: Digest
    shared: Digest = field(init=False)

    def __post_init__(self) -> None:
        self.shared = self.app.layers[0]


@pytest.fixture
def content(storage: Storage) -> RegistryContent:
    return RegistryContent(storage)


@pytest.fixture
def sample(storage: Storage, content: RegistryContent) -> Sample:
    shared = b"shared base layer " * 100
    app = push_image(content, "lib/app", [shared, b"app layer"], tag="v1")
    app_v2 = push_image(content, "lib/app", [shared, b"app layer v2"], tag="v2")
    index = push_index(content, "lib/app", [app, app_v2], tag="multi")
    tool = push_image(content, "team/tool", [shared, b"tool layer"], tag="latest")
    return Sample(storage, app, app_v2, tool, index)


def blob_count(storage: Storage) -> int:
    return sum(1 for _ in storage.list("blobs/"))


def blob_bytes(storage: Storage) -> int:
    return sum(storage.size("blobs/" + key) for key in storage.list("blobs/"))


# -- a clean registry -----------------------------------------------------------------------------


def test_clean_registry_passes_every_object_checked(sample: Sample) -> None:
    report = Scrubber(sample.storage).run()
    assert report.clean and report.findings == []
    assert report.checked == blob_count(sample.storage) == 11  # 4 manifests, 3 configs, 4 layers (one shared)
    assert report.manifests == 4
    assert report.bytes == blob_bytes(sample.storage)
    assert report.seed is None


def test_empty_registry_is_clean(storage: Storage) -> None:
    report = Scrubber(storage).run()
    assert report.clean and report.checked == 0 and report.bytes == 0


# -- mismatches, with what refers to them ---------------------------------------------------------------


def test_corrupt_shared_layer_names_repositories_tags_and_manifests(sample: Sample) -> None:
    corrupt(sample.storage, sample.shared)
    report = Scrubber(sample.storage).run()
    assert len(report.findings) == 1
    finding = report.mismatches[0]
    assert finding.kind == MISMATCH
    assert finding.digest == sample.shared
    assert finding.key == blob_key(sample.shared)
    damaged = read(sample.storage, sample.shared)
    assert finding.actual == sha256(damaged) and finding.size == len(damaged)
    assert finding.repositories == ("lib/app", "team/tool")
    # The tags of every image holding the layer, and of the index holding those images.
    assert finding.tags == ("lib/app:multi", "lib/app:v1", "lib/app:v2", "team/tool:latest")
    assert set(finding.manifests) == {
        ManifestReference(sample.app.manifest, "layer", ("lib/app",)),
        ManifestReference(sample.app_v2.manifest, "layer", ("lib/app",)),
        ManifestReference(sample.tool.manifest, "layer", ("team/tool",)),
    }
    assert report.checked == 11  # the bad one still counts as checked


def test_corrupt_config_is_listed_as_config(sample: Sample) -> None:
    corrupt(sample.storage, sample.tool.config)
    (finding,) = Scrubber(sample.storage).run().findings
    assert (finding.kind, finding.digest) == (MISMATCH, sample.tool.config)
    assert finding.tags == ("team/tool:latest",)
    assert finding.manifests == (ManifestReference(sample.tool.manifest, "config", ("team/tool",)),)


def test_corrupt_manifest_names_its_tags_and_the_index_listing_it(sample: Sample) -> None:
    corrupt(sample.storage, sample.app.manifest)
    report = Scrubber(sample.storage).run()
    assert len(report.findings) == 1  # its (corrupt) contents are not read as references
    finding = report.mismatches[0]
    assert finding.digest == sample.app.manifest
    assert finding.actual == sha256(read(sample.storage, sample.app.manifest))
    assert finding.repositories == ("lib/app",)
    assert finding.tags == ("lib/app:multi", "lib/app:v1")
    assert finding.manifests == (ManifestReference(sample.index, "manifest", ("lib/app",)),)


def test_corrupt_index_names_its_tag(sample: Sample) -> None:
    corrupt(sample.storage, sample.index)
    (finding,) = Scrubber(sample.storage).run().findings
    assert (finding.kind, finding.digest, finding.tags, finding.manifests) == (
        MISMATCH, sample.index, ("lib/app:multi",), ())


def test_truncated_blob_is_a_mismatch(sample: Sample) -> None:
    data = read(sample.storage, sample.tool.layers[1])
    sample.storage.write(blob_key(sample.tool.layers[1]), data[:-1])
    (finding,) = Scrubber(sample.storage).run().findings
    assert (finding.kind, finding.digest, finding.size) == (MISMATCH, sample.tool.layers[1], len(data) - 1)


def test_unreferenced_blob_is_checked_too(storage: Storage, content: RegistryContent) -> None:
    orphan = push_blob(content, "lib/app", b"pushed, never in a manifest")
    content.delete_blob("lib/app", orphan)  # unlinked: the bytes stay until a garbage collection
    corrupt(storage, orphan)
    (finding,) = Scrubber(storage).run().findings
    assert (finding.kind, finding.digest, finding.repositories, finding.tags) == (MISMATCH, orphan, (), ())


def test_sha512_blob_is_hashed_with_sha512(storage: Storage, content: RegistryContent) -> None:
    data = b"sha512 content"
    digest = parse_digest("sha512:" + hashlib.sha512(data).hexdigest())
    upload = content.start_upload("lib/app", "sha512")
    content.finish(upload, digest, [data], length=len(data))
    assert Scrubber(storage).run().clean
    storage.write(blob_key(digest), b"other")
    (finding,) = Scrubber(storage).run().findings
    assert finding.actual == parse_digest("sha512:" + hashlib.sha512(b"other").hexdigest())


# -- missing and invalid ------------------------------------------------------------------------------


def test_missing_layer_is_reported_with_its_references(sample: Sample) -> None:
    sample.storage.delete(blob_key(sample.app_v2.layers[1]))
    report = Scrubber(sample.storage).run()
    assert report.mismatches == [] and report.invalid == []
    (finding,) = report.missing
    assert finding.kind == MISSING and finding.digest == sample.app_v2.layers[1]
    assert finding.actual is None and finding.size is None
    assert finding.repositories == ("lib/app",)
    assert finding.tags == ("lib/app:multi", "lib/app:v2")
    assert finding.manifests == (ManifestReference(sample.app_v2.manifest, "layer", ("lib/app",)),)


def test_missing_manifest_is_reported(sample: Sample) -> None:
    sample.storage.delete(blob_key(sample.tool.manifest))
    (finding,) = Scrubber(sample.storage).run().findings
    assert (finding.kind, finding.digest, finding.repositories, finding.tags) == (
        MISSING, sample.tool.manifest, ("team/tool",), ("team/tool:latest",))


def test_blob_listed_by_a_manifest_but_unlinked_and_gone_is_missing(sample: Sample) -> None:
    """A blob deleted from storage after ``DELETE /blobs`` unlinked it, while a manifest still lists it."""
    digest = sample.tool.layers[1]
    sample.storage.delete(layer_key("team/tool", digest))
    sample.storage.delete(blob_key(digest))
    (finding,) = Scrubber(sample.storage).run().findings
    assert (finding.kind, finding.digest, finding.repositories) == (MISSING, digest, ())
    assert finding.manifests == (ManifestReference(sample.tool.manifest, "layer", ("team/tool",)),)


def test_intact_manifest_that_does_not_parse_is_invalid(storage: Storage, content: RegistryContent) -> None:
    """Bytes that match their digest but are no manifest (stored by something that did not validate)."""
    body = b'{"schemaVersion": 1, "name": "lib/old"}'
    digest = sha256(body)
    storage.write(blob_key(digest), body)
    link = {"mediaType": OCI_MANIFEST, "size": len(body)}
    storage.write(revision_key("lib/old", digest), json.dumps(link).encode())
    storage.write(tags_prefix("lib/old") + "ancient", json.dumps({"digest": str(digest)}).encode())
    (finding,) = Scrubber(storage).run().findings
    assert (finding.kind, finding.digest, finding.size) == (INVALID, digest, len(body))
    assert finding.tags == ("lib/old:ancient",)
    assert "schema1" in finding.message


def test_unreadable_tag_record_is_invalid(sample: Sample) -> None:
    key = tags_prefix("team/tool") + "broken"
    sample.storage.write(key, b"not json")
    (finding,) = Scrubber(sample.storage).run().findings
    assert (finding.kind, finding.key, finding.digest) == (INVALID, key, None)
    assert finding.tags == ("team/tool:broken",)


def test_oversized_manifest_is_reported_not_parsed(sample: Sample) -> None:
    (finding,) = Scrubber(sample.storage, max_manifest_size=100).run().findings[:1]
    assert finding.kind == INVALID and "longer than 100 bytes" in finding.message


# -- one repository ---------------------------------------------------------------------------------


def test_repository_scope_checks_only_what_it_links(sample: Sample, content: RegistryContent) -> None:
    nested = push_image(content, "team/tool/sub", [b"nested layer"], tag="x")
    corrupt(sample.storage, sample.app.layers[1])  # lib/app only
    corrupt(sample.storage, nested.layers[0])  # a repository below team/tool, not in it
    corrupt(sample.storage, sample.shared)
    report = Scrubber(sample.storage, repository="team/tool").run()
    assert report.checked == 4 and report.manifests == 1  # manifest, config, two layers
    (finding,) = report.findings
    assert finding.digest == sample.shared
    # References within the repository only.
    assert finding.repositories == ("team/tool",)
    assert finding.tags == ("team/tool:latest",)
    assert finding.manifests == (ManifestReference(sample.tool.manifest, "layer", ("team/tool",)),)


def test_repository_scope_reports_missing(sample: Sample) -> None:
    sample.storage.delete(blob_key(sample.tool.layers[1]))
    for sampled in (None, 1):  # hashed, or found absent without hashing
        report = Scrubber(sample.storage, repository="team/tool", sample=sampled, seed=3).run()
        assert [(f.kind, f.digest) for f in report.findings] == [(MISSING, sample.tool.layers[1])]


def test_unknown_or_invalid_repository_is_refused(sample: Sample) -> None:
    with pytest.raises(ValueError, match="no repository 'lib/nope'"):
        Scrubber(sample.storage, repository="lib/nope").run()
    with pytest.raises(ValueError, match="invalid repository name"):
        Scrubber(sample.storage, repository="Lib/App")


# -- sampling ---------------------------------------------------------------------------------------


def corrupt_every_blob(sample: Sample) -> set[Digest]:
    manifests = {sample.app.manifest, sample.app_v2.manifest, sample.tool.manifest, sample.index}
    blobs = {d for key in sample.storage.list("blobs/") if (d := _parse_blob_key(key))} - manifests
    for digest in blobs:
        corrupt(sample.storage, digest)
    return blobs


@pytest.mark.parametrize("size, expected", [(3, 3), (1, 1), (100, 7), (0.5, 4), (0.01, 1), (1.0, 7)])
def test_sample_checks_the_asked_number(sample: Sample, size: float, expected: int) -> None:
    """Every blob is bad, so the findings are exactly the blobs the sample hashed."""
    corrupt_every_blob(sample)
    report = Scrubber(sample.storage, sample=size, seed=11).run()
    assert report.checked == 4 + expected and report.manifests == 4
    assert report.candidates == 7
    assert len(report.mismatches) == expected and report.missing == []
    assert report.seed == 11


def test_same_seed_same_sample_and_a_fresh_seed_is_reported(sample: Sample) -> None:
    corrupt_every_blob(sample)
    first = {f.digest for f in Scrubber(sample.storage, sample=3, seed=5).run().findings}
    again = {f.digest for f in Scrubber(sample.storage, sample=3, seed=5).run().findings}
    assert first == again
    unseeded = Scrubber(sample.storage, sample=3).run()
    assert unseeded.seed is not None
    replay = Scrubber(sample.storage, sample=3, seed=unseeded.seed).run()
    assert {f.digest for f in replay.findings} == {f.digest for f in unseeded.findings}


def test_missing_blobs_are_reported_outside_the_sample(sample: Sample) -> None:
    gone = sample.tool.layers[1]
    sample.storage.delete(blob_key(gone))
    for seed in range(4):
        report = Scrubber(sample.storage, sample=1, seed=seed).run()
        assert [(f.kind, f.digest) for f in report.findings] == [(MISSING, gone)]


@pytest.mark.parametrize("bad", [0, -1, 0.0, 1.5, -0.1, True, "3", float("nan")])
def test_bad_sample_values_are_refused(storage: Storage, bad: Any) -> None:
    with pytest.raises(ValueError):
        Scrubber(storage, sample=bad)


@given(st.integers(min_value=1, max_value=10**9))
def test_parse_sample_counts(count: int) -> None:
    assert parse_sample(str(count)) == count and isinstance(parse_sample(str(count)), int)


@given(st.floats(min_value=0.0, max_value=1.0, exclude_min=True))
def test_parse_sample_fractions(fraction: float) -> None:
    assert parse_sample(repr(fraction)) == fraction
    assert isinstance(parse_sample(repr(fraction)), float)


NUMBERS = r"-?[0-9]{0,3}(\.[0-9]{0,3})?([eE]-?[0-9])?"


@given(st.one_of(st.text(max_size=12), st.from_regex(NUMBERS, fullmatch=True)))
def test_parse_sample_takes_a_count_or_a_fraction_only(text: str) -> None:
    """Whatever the text, a count of at least 1, a fraction in (0, 1], or a usage error."""
    try:
        value = parse_sample(text)
    except ValueError:
        return
    if isinstance(value, int):
        assert value >= 1 and value == int(text)
    else:
        assert 0.0 < value <= 1.0 and value == float(text)


# -- key layout (the content layer's helpers are the one definition) --------------------------------


digests = st.builds(lambda alg, data: parse_digest(f"{alg}:{hashlib.new(alg, data).hexdigest()}"),
                    st.sampled_from(["sha256", "sha512"]), st.binary(max_size=16))


@given(repository_names(max_components=4), digests, tags)
def test_repository_keys_parse_back(name: str, digest: Digest, tag: str) -> None:
    relative = len("repositories/")
    assert _parse_repository_key(layer_key(name, digest)[relative:]) == ("layer", name, digest)
    assert _parse_repository_key(revision_key(name, digest)[relative:]) == ("revision", name, digest)
    assert _parse_repository_key((tags_prefix(name) + tag)[relative:]) == ("tag", name, tag)
    assert _parse_blob_key(blob_key(digest)[len("blobs/"):]) == digest


@pytest.mark.parametrize("key", [
    "lib/app/_referrers/sha256/" + "a" * 64 + "/sha256:" + "b" * 64,
    "lib/app/_layers/sha256/" + "A" * 64,
    "lib/app/_layers/md5/" + "a" * 32,
    "_layers/sha256/" + "a" * 64,
    "lib/app/_manifests/revisions/sha256",
    "lib/app/_manifests/tags/v1/extra",
    "lib/app/_uploads/x",
])
def test_other_repository_keys_are_ignored(key: str) -> None:
    assert _parse_repository_key(key) is None


@pytest.mark.parametrize("key", ["sha256/bb/" + "a" * 64, "sha256/" + "a" * 64, "md5/aa/" + "a" * 32, "x"])
def test_misplaced_blob_keys_are_ignored(key: str) -> None:
    assert _parse_blob_key(key) is None


# -- streaming and progress ---------------------------------------------------------------------------


def test_blobs_are_streamed_in_bounded_reads(tmp_path: Path) -> None:
    """A 24 MiB layer is hashed with well under its size in memory (1 MiB reads)."""
    storage = FilesystemStorage(tmp_path)
    content = RegistryContent(storage)
    big = os.urandom(1 << 20) * 24
    image = push_image(content, "lib/big", [big], tag="v1")
    del big
    tracemalloc.start()
    try:
        report = Scrubber(storage).run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.clean and report.bytes > 24 << 20
    assert peak < 4 << 20, peak
    assert image.layers[0] in {d for k in storage.list("blobs/") if (d := _parse_blob_key(k))}


def test_progress_reports_each_phase_to_its_end(sample: Sample) -> None:
    seen: list[ScrubProgress] = []
    report = Scrubber(sample.storage, progress=seen.append, chunk_size=512).run()
    phases = [p.phase for p in seen]
    assert phases == sorted(phases, key=["manifests", "blobs"].index)
    for phase, total in (("manifests", 4), ("blobs", 7)):
        events = [p for p in seen if p.phase == phase]
        assert events[0].done == 0 and events[-1].done == events[-1].total == total
        assert all(p.total == total for p in events)
    assert [p.bytes for p in seen] == sorted(p.bytes for p in seen)
    assert seen[-1].bytes == report.bytes
    # The 1800-byte shared layer in 512-byte reads: several events inside one blob.
    assert sum(1 for p in seen if p.phase == "blobs" and p.done == 0) > 1


def test_progress_printer_throttles_but_prints_each_phase_end() -> None:
    now = [0.0]
    out = io.StringIO()
    printer = ProgressPrinter(out, interval=1.0, clock=lambda: now[0])
    for done in range(5):
        printer(ScrubProgress("blobs", done, 10, done * 2_000_000, 2.0))
    now[0] = 1.5
    printer(ScrubProgress("blobs", 6, 10, 12_000_000, 3.0))
    printer(ScrubProgress("blobs", 10, 10, 20_000_000, 4.0))
    assert out.getvalue().splitlines() == [
        "scrub: blobs 0/10, 0.0 MB, 0.0 MB/s",
        "scrub: blobs 6/10, 12.0 MB, 4.0 MB/s",
        "scrub: blobs 10/10, 20.0 MB, 5.0 MB/s",
    ]


# -- the property: one flipped byte anywhere is found, and only it ----------------------------------


@st.composite
def registries(draw: st.DrawFn) -> list[tuple[str, list[list[bytes]]]]:
    """Repositories, each with images, each with layers of random bytes (duplicates allowed)."""
    names = draw(st.lists(st.sampled_from(["a", "b/c", "b/c/d", "e-f"]), min_size=1, max_size=3, unique=True))
    layer = st.binary(min_size=1, max_size=64)
    return [(name, draw(st.lists(st.lists(layer, min_size=1, max_size=3), min_size=1, max_size=3)))
            for name in names]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(registry=registries(), choice=st.integers(min_value=0), position=st.integers(min_value=0),
       flip=st.integers(min_value=1, max_value=255), indexed=st.booleans())
def test_one_flipped_byte_is_found_exactly(registry: list[tuple[str, list[list[bytes]]]], choice: int,
                                           position: int, flip: int, indexed: bool) -> None:
    storage = MemoryStorage()
    content = RegistryContent(storage)
    for name, images in registry:
        pushed = [push_image(content, name, layers, tag=f"t{i}") for i, layers in enumerate(images)]
        if indexed:
            push_index(content, name, pushed, tag="all")
    assert Scrubber(storage).run().clean
    keys = sorted(storage.list("blobs/"))
    victim = _parse_blob_key(keys[choice % len(keys)])
    assert victim is not None
    data = bytearray(read(storage, victim))
    data[position % len(data)] ^= flip
    storage.write(blob_key(victim), bytes(data))
    report = Scrubber(storage).run()
    assert [(f.kind, f.digest, f.actual) for f in report.findings] == [
        (MISMATCH, victim, sha256(bytes(data)))]
    assert report.checked == len(keys)


# -- S3 --------------------------------------------------------------------------------------------


@pytest.mark.s3
def test_scrub_on_s3_finds_a_corrupt_layer(s3_bucket: Any) -> None:
    from docker_registry_wsgi.storage.s3 import S3Storage

    prefix = "scrub-" + secrets.token_hex(6)
    storage = S3Storage(s3_bucket.name, prefix, endpoint_url=s3_bucket.endpoint_url,
                        region=s3_bucket.region, access_key=s3_bucket.access_key,
                        secret_key=s3_bucket.secret_key, client=s3_bucket.shared_client)
    content = RegistryContent(storage)
    image = push_image(content, "lib/app", [b"first layer", b"second layer"], tag="v1")
    assert Scrubber(storage).run().clean
    corrupt(storage, image.layers[1])
    (finding,) = Scrubber(storage).run().findings
    assert (finding.kind, finding.digest, finding.repositories, finding.tags) == (
        MISMATCH, image.layers[1], ("lib/app",), ("lib/app:v1",))
    # The command over the same bucket and prefix, and over a mistyped prefix.
    assert main(["scrub", *s3_bucket.server_args(prefix)]) == 1
    assert main(["scrub", *s3_bucket.server_args(prefix + "-typo")]) == 2


# -- the command ------------------------------------------------------------------------------------


@pytest.fixture
def on_disk(tmp_path: Path) -> Sample:
    storage = FilesystemStorage(tmp_path / "registry")
    content = RegistryContent(storage)
    shared = b"shared base layer " * 100
    app = push_image(content, "lib/app", [shared, b"app layer"], tag="v1")
    app_v2 = push_image(content, "lib/app", [shared, b"app layer v2"], tag="v2")
    index = push_index(content, "lib/app", [app, app_v2], tag="multi")
    tool = push_image(content, "team/tool", [shared, b"tool layer"], tag="latest")
    return Sample(storage, app, app_v2, tool, index)


def scrub(root: Path, *args: str) -> int:
    return main(["scrub", "--root", str(root), *args])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def test_command_clean_exit_0(on_disk: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert scrub(tmp_path / "registry") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].startswith("checked 11 objects (4 of them manifests), ")
    assert captured.out.splitlines()[-1].endswith(": 0 mismatched, 0 missing, 0 invalid")
    assert "MB/s" in captured.out
    assert "scrub: manifests 4/4" in captured.err and "scrub: blobs 7/7" in captured.err


def test_command_reports_findings_exit_1(on_disk: Sample, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    corrupt(on_disk.storage, on_disk.shared)
    on_disk.storage.delete(blob_key(on_disk.tool.layers[1]))
    assert scrub(tmp_path / "registry") == 1
    out = capsys.readouterr().out
    assert f"MISMATCH {on_disk.shared}: blob bytes do not match its digest (actual " in out
    assert "  repositories: lib/app, team/tool" in out
    assert "  tags: lib/app:multi, lib/app:v1, lib/app:v2, team/tool:latest" in out
    assert f"  listed as layer by manifest {on_disk.tool.manifest} (team/tool)" in out
    assert f"MISSING {on_disk.tool.layers[1]}: blob is linked or listed but not stored" in out
    assert out.splitlines()[-1].endswith(": 1 mismatched, 1 missing, 0 invalid")


def test_command_repository_and_sample(on_disk: Sample, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    corrupt(on_disk.storage, on_disk.app.layers[1])
    assert scrub(tmp_path / "registry", "--repository", "team/tool") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("checked 4 objects (1 of them manifests)")
    found = Scrubber(on_disk.storage, sample=2, seed=9).run().findings
    assert scrub(tmp_path / "registry", "--sample", "2", "--seed", "9") == (1 if found else 0)
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith("checked 6 objects (4 of them manifests, a sample of 2 of 7 blobs (seed 9))")


@pytest.mark.parametrize("setup, message", [
    ("absent", "no such folder"),
    ("empty", "holds no registry"),
])
def test_command_refuses_a_root_without_a_registry(tmp_path: Path, setup: str, message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "typo"
    if setup == "empty":
        root.mkdir()
    assert scrub(root) == 2
    assert message in capsys.readouterr().err
    assert root.exists() == (setup == "empty")  # a mistyped root is not created
    if setup == "empty":
        assert list(root.iterdir()) == []


def test_command_refuses_memory_storage_and_unknown_repository(on_disk: Sample, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scrub", "--storage", "memory"]) == 2
    assert "nothing to work on" in capsys.readouterr().err
    assert scrub(tmp_path / "registry", "--repository", "lib/nope") == 2
    assert "no repository 'lib/nope'" in capsys.readouterr().err
    assert scrub(tmp_path / "registry", "--repository", "Not A Name") == 2
    assert "invalid repository name" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-3", "1.5", "half", "0.0", ""])
def test_command_bad_sample_is_a_usage_error(tmp_path: Path, bad: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scrub", "--root", str(tmp_path), "--sample", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"docker-registry-wsgi: --sample {bad or repr(bad)}: give a count of blobs")
    assert err.count("\n") == 1
