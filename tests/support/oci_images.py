"""Build OCI image layouts offline and deterministically, and compare layouts blob by blob.

The layout follows the OCI Image Layout Specification (``oci-image-spec-image-layout.md``:
``oci-layout``, ``index.json``, ``blobs/<alg>/<encoded>``); the image is an image index
(``oci-image-spec-image-index.md``) of two image manifests (``oci-image-spec-manifest.md``),
linux/amd64 and linux/arm64, each with its own config blob and gzip-compressed tar layers. Every
byte is a function of the arguments (fixed tar mtimes and owners, gzip mtime 0, seeded
pseudo-random payloads, canonical JSON), so two builds with the same arguments are identical.

Typical use::

    image = build_multiplatform_image(tmp_path / "layout", tag="v1")
    subprocess.run(["skopeo", "copy", "--all", image.reference, "docker://..."])
    assert_same_image(image.path, "v1", other_layout, "v1")
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = [
    "OCI_INDEX",
    "OCI_MANIFEST",
    "OCI_CONFIG",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_TAR",
    "OCI_EMPTY",
    "Descriptor",
    "OciImage",
    "canonical_json",
    "sha256_digest",
    "make_tar_gz",
    "build_multiplatform_image",
    "read_layout_index",
    "resolve_tag",
    "read_blob",
    "reachable_descriptors",
    "assert_same_image",
    "ArtifactFiles",
    "make_artifact_files",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
FIXED_MTIME = 1_700_000_000  # 2023-11-14, any constant will do

MANIFEST_MEDIA_TYPES = frozenset(
    {
        OCI_INDEX,
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)


def canonical_json(value: Any) -> bytes:
    """Serialize ``value`` compactly with sorted keys: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_digest(data: bytes) -> str:
    """The OCI digest string ``sha256:<hex>`` of ``data`` (descriptor spec, "Digests")."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (``oci-image-spec-descriptor.md``) as built here."""

    media_type: str
    digest: str
    size: int
    platform: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The descriptor's JSON object, with optional fields only when set."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = dict(self.platform)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class OciImage:
    """What :func:`build_multiplatform_image` wrote: the layout, its tag and every descriptor.

    ``index`` is the descriptor of the image index the tag points at; ``manifests`` maps
    ``"linux/amd64"`` and ``"linux/arm64"`` to their manifest descriptors; ``configs`` and
    ``layers`` are keyed the same way; ``blobs`` maps every digest in the image (index,
    manifests, configs, layers) to its bytes' size.
    """

    path: Path
    tag: str
    index: Descriptor
    manifests: Mapping[str, Descriptor]
    configs: Mapping[str, Descriptor]
    layers: Mapping[str, tuple[Descriptor, ...]]
    blobs: Mapping[str, int] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """The skopeo/containers-image transport reference ``oci:<path>:<tag>``."""
        return f"oci:{self.path}:{self.tag}"

    def blob_path(self, digest: str) -> Path:
        """Path of blob ``digest`` inside the layout."""
        algorithm, encoded = digest.split(":", 1)
        return self.path / "blobs" / algorithm / encoded

    def blob_bytes(self, digest: str) -> bytes:
        """The bytes of blob ``digest`` (small test images only: read whole)."""
        return self.blob_path(digest).read_bytes()


def make_tar_gz(files: Mapping[str, bytes], *, mtime: int = FIXED_MTIME,
                compress: bool = True) -> tuple[bytes, str]:
    """Return ``(gzip bytes, diff_id)`` of a tar of ``files`` (path -> content), deterministically.

    Members are sorted, owned by 0:0 with mode 0644 and ``mtime``; directories implied by the
    paths are added first with mode 0755. The gzip header carries mtime 0 and no file name.
    ``diff_id`` is the sha256 digest of the uncompressed tar (config spec, ``rootfs.diff_ids``).
    With ``compress=False`` the first item is the plain tar (its digest is then the diff_id).
    """
    raw = io.BytesIO()
    directories: set[str] = set()
    for name in files:
        parts = name.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            directories.add("/".join(parts[:i]))
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = mtime
            tar.addfile(info)
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name.strip("/"))
            info.size = len(data)
            info.mode = 0o644
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    if not compress:
        return tar_bytes, sha256_digest(tar_bytes)
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
        gz.write(tar_bytes)
    return compressed.getvalue(), sha256_digest(tar_bytes)


class _LayoutWriter:
    """Write blobs into ``<root>/blobs/sha256/`` and remember their sizes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        self.sizes: dict[str, int] = {}

    def put(self, media_type: str, data: bytes, **extra: Any) -> Descriptor:
        digest = sha256_digest(data)
        (self.root / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        self.sizes[digest] = len(data)
        return Descriptor(media_type, digest, len(data), **extra)


def _platform_files(arch: str, seed: int, big_layer_size: int) -> list[dict[str, bytes]]:
    """The files of each layer of one platform: a small text layer and a pseudo-random one."""
    rng = random.Random(f"{seed}-{arch}")
    base = {
        "etc/os-release": f'NAME="docker-registry-wsgi test image"\nARCH="{arch}"\nSEED="{seed}"\n'.encode(),
        "usr/share/doc/README": b"Built offline by tests/support/oci_images.py\n" * 20,
    }
    # Random bytes do not compress: the gzip layer stays about big_layer_size, so uploads of
    # several MiB exercise chunked and streamed PATCH bodies.
    payload = {f"opt/{arch}/payload.bin": rng.randbytes(big_layer_size), "opt/VERSION": b"1\n"}
    return [base, payload]


def build_multiplatform_image(
    path: str | Path,
    tag: str = "v1",
    *,
    seed: int = 0,
    big_layer_size: int = 3 * 1024 * 1024 + 12345,
    platforms: Iterable[tuple[str, str]] = (("linux", "amd64"), ("linux", "arm64")),
    index_annotations: Mapping[str, str] | None = None,
    compress_layers: bool = True,
) -> OciImage:
    """Write an OCI image layout at ``path`` holding one multi-platform image tagged ``tag``.

    The image: an image index (``oci-image-spec-image-index.md``) listing one image manifest per
    platform (``oci-image-spec-manifest.md``), each with a config blob (``rootfs.diff_ids``
    matching its layers) and two ``tar+gzip`` layers (a small one, and one of about
    ``big_layer_size`` pseudo-random bytes). The layout's ``index.json`` points at the index
    with the ``org.opencontainers.image.ref.name`` annotation ``tag`` (image-layout spec,
    "index.json file"). ``compress_layers=False`` writes plain ``tar`` layers instead (so that a
    client compressing on the fly pushes bodies of unknown length). Same arguments, same bytes.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    writer = _LayoutWriter(root)
    manifests: dict[str, Descriptor] = {}
    configs: dict[str, Descriptor] = {}
    layers: dict[str, tuple[Descriptor, ...]] = {}
    for os_name, arch in platforms:
        key = f"{os_name}/{arch}"
        layer_descriptors: list[Descriptor] = []
        diff_ids: list[str] = []
        for files in _platform_files(arch, seed, big_layer_size):
            blob, diff_id = make_tar_gz(files, compress=compress_layers)
            layer_descriptors.append(writer.put(OCI_LAYER_GZIP if compress_layers else OCI_LAYER_TAR, blob))
            diff_ids.append(diff_id)
        config = {
            "architecture": arch,
            "os": os_name,
            "created": "2023-11-14T22:13:20Z",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"oci_images.py layer {i}"}
                        for i in range(len(diff_ids))],
        }
        config_descriptor = writer.put(OCI_CONFIG, canonical_json(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor.to_json(),
            "layers": [d.to_json() for d in layer_descriptors],
            "annotations": {"org.opencontainers.image.title": f"test image {key}"},
        }
        manifests[key] = writer.put(
            OCI_MANIFEST, canonical_json(manifest), platform={"architecture": arch, "os": os_name}
        )
        configs[key] = config_descriptor
        layers[key] = tuple(layer_descriptors)
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [d.to_json() for d in manifests.values()],
    }
    if index_annotations:
        index["annotations"] = dict(index_annotations)
    index_descriptor = writer.put(OCI_INDEX, canonical_json(index))
    layout_index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            Descriptor(OCI_INDEX, index_descriptor.digest, index_descriptor.size,
                       annotations={REF_NAME: tag}).to_json()
        ],
    }
    (root / "index.json").write_bytes(canonical_json(layout_index))
    (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    return OciImage(root, tag, index_descriptor, manifests, configs, layers, dict(writer.sizes))


def read_layout_index(layout: str | Path) -> dict[str, Any]:
    """The parsed ``index.json`` of an image layout."""
    return json.loads((Path(layout) / "index.json").read_bytes())


def resolve_tag(layout: str | Path, tag: str) -> dict[str, Any]:
    """The descriptor in ``index.json`` whose ``org.opencontainers.image.ref.name`` is ``tag``.

    Raises ``KeyError`` when no (or more than one) descriptor has that name.
    """
    found = [d for d in read_layout_index(layout).get("manifests", [])
             if (d.get("annotations") or {}).get(REF_NAME) == tag]
    if len(found) != 1:
        raise KeyError(f"{len(found)} descriptors named {tag!r} in {layout}/index.json")
    return found[0]


def read_blob(layout: str | Path, digest: str) -> bytes:
    """The bytes of blob ``digest`` in ``layout``, after checking they match the digest."""
    algorithm, encoded = digest.split(":", 1)
    data = (Path(layout) / "blobs" / algorithm / encoded).read_bytes()
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != encoded:
        raise AssertionError(f"{layout}: blob {digest} holds bytes of digest {algorithm}:{actual}")
    return data


def reachable_descriptors(layout: str | Path, tag: str) -> dict[str, dict[str, Any]]:
    """Every descriptor reachable from ``tag`` (the tag's own, children, configs, layers).

    Keyed by digest. Indexes and manifests are read from the layout and followed
    (``manifests``, ``config``, ``layers``, ``subject`` is not followed: it points outside).
    """
    out: dict[str, dict[str, Any]] = {}
    pending = [resolve_tag(layout, tag)]
    while pending:
        descriptor = pending.pop()
        digest = descriptor["digest"]
        if digest in out:
            continue
        out[digest] = descriptor
        if descriptor.get("mediaType") in MANIFEST_MEDIA_TYPES:
            document = json.loads(read_blob(layout, digest))
            pending.extend(document.get("manifests", []))
            if "config" in document:
                pending.append(document["config"])
            pending.extend(document.get("layers", []))
    return out


def assert_same_image(layout_a: str | Path, tag_a: str, layout_b: str | Path, tag_b: str) -> int:
    """Assert that ``tag_a`` in ``layout_a`` and ``tag_b`` in ``layout_b`` are the same image.

    Same top-level digest, same set of reachable digests, and for each one identical bytes of
    the expected size in both layouts (each verified against its digest). ``index.json`` itself
    is not compared (tools write their own). Returns the number of blobs compared.
    """
    top_a, top_b = resolve_tag(layout_a, tag_a), resolve_tag(layout_b, tag_b)
    assert top_a["digest"] == top_b["digest"], f"top-level digest {top_a['digest']} != {top_b['digest']}"
    reach_a, reach_b = reachable_descriptors(layout_a, tag_a), reachable_descriptors(layout_b, tag_b)
    assert set(reach_a) == set(reach_b), (
        f"only in {layout_a}: {sorted(set(reach_a) - set(reach_b))}; "
        f"only in {layout_b}: {sorted(set(reach_b) - set(reach_a))}"
    )
    for digest, descriptor in reach_a.items():
        a, b = read_blob(layout_a, digest), read_blob(layout_b, digest)
        assert len(a) == descriptor["size"], f"{digest}: {len(a)} bytes, descriptor says {descriptor['size']}"
        assert a == b, f"blob {digest} differs between {layout_a} and {layout_b}"
    return len(reach_a)


@dataclass(frozen=True)
class ArtifactFiles:
    """Files written for an OCI artifact push: ``paths`` (in order) and their expected bytes."""

    directory: Path
    contents: Mapping[str, bytes]

    @property
    def paths(self) -> list[Path]:
        """Absolute paths of the files, sorted by name."""
        return [self.directory / name for name in sorted(self.contents)]

    def digests(self) -> dict[str, str]:
        """File name -> ``sha256:`` digest of its content."""
        return {name: sha256_digest(data) for name, data in self.contents.items()}


def make_artifact_files(directory: str | Path, files: Mapping[str, bytes] | None = None,
                        *, seed: int = 0) -> ArtifactFiles:
    """Write the files of an OCI artifact (artifacts guidance) into ``directory``.

    ``files`` maps plain file names (no directories) to content; by default a small text file,
    a JSON document and 200 KiB of seeded pseudo-random bytes.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if files is None:
        rng = random.Random(f"artifact-{seed}")
        files = {
            "hello.txt": f"hello from docker-registry-wsgi tests, seed {seed}\n".encode(),
            "data.json": canonical_json({"seed": seed, "values": list(range(10))}),
            "blob.bin": rng.randbytes(200 * 1024),
        }
    for name, data in files.items():
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"artifact file names must be plain names, not {name!r}")
        (root / name).write_bytes(data)
    return ArtifactFiles(root, dict(files))
