"""Scrubbing: re-hash stored blobs and manifests and report any whose bytes no longer match.

Storage can rot (a bad disk, a bug, a hand edit) and a registry that serves content-addressed
bytes should notice before its clients do. :class:`Scrubber` lists what the registry holds, reads
every manifest (to verify it and to learn what refers to what), then streams the blobs through
``hashlib`` in bounded reads and reports each object whose bytes do not hash to its digest, each
blob that something needs but that is gone, and each manifest or tag that does not parse, with
the repositories, tags and manifests that refer to it. ``docker-registry-wsgi scrub`` runs it.

It only reads, so it is safe while the registry serves. Links are listed before blobs: a blob is
committed before it is linked, so a link seen in the first listing has its blob in the second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import secrets
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, TextIO

# Private key-layout helpers of the sibling content layer: one definition of where things are
# stored, shared on purpose (the scrubber reads that layout; it must not keep a copy of it).
from .content.paths import blob_key, catalog_key, layer_key, repo, revision_key, tags_prefix
from .digests import Digest, parse_digest
from .errors import DigestInvalid, NameInvalid, RegistryError
from .manifests import Manifest, parse_manifest
from .options import Option, integer, text
from .references import parse_name
from .storage import config as storage_config
from .storage.base import KeyNotFound, Storage

__all__ = [
    "Scrubber",
    "ScrubReport",
    "ScrubProgress",
    "Finding",
    "ManifestReference",
    "MISMATCH",
    "MISSING",
    "INVALID",
    "parse_sample",
    "OPTIONS",
    "ProgressPrinter",
    "format_report",
    "run_command",
]

#: A stored object whose bytes do not hash to its digest.
MISMATCH = "mismatch"
#: A blob or manifest that a repository links or a manifest lists, absent from the storage.
MISSING = "missing"
#: A manifest whose (intact) bytes do not parse, or a tag record that is not readable.
INVALID = "invalid"

CHUNK_SIZE = 1 << 20
_REPOSITORIES = repo("")  # "repositories/": the prefix every repository's keys share
_BLOBS = "blobs/"


@dataclass(frozen=True)
class ManifestReference:
    """A manifest that lists a digest: its digest, as what it lists it, and where it is stored.

    ``role`` is ``"config"``, ``"layer"``, ``"manifest"`` (an index's child) or ``"subject"``.
    """

    manifest: Digest
    role: str
    repositories: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    """One problem: its kind (:data:`MISMATCH`, :data:`MISSING`, :data:`INVALID`) and who refers to it.

    ``tags`` are ``repo:tag`` of the tags that point at the object or at an image or index that
    contains it; ``repositories`` link it directly; ``manifests`` list it.
    """

    kind: str
    key: str
    digest: Digest | None
    message: str
    actual: Digest | None = None
    size: int | None = None
    repositories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    manifests: tuple[ManifestReference, ...] = ()


@dataclass(frozen=True)
class ScrubProgress:
    """Where a scrub is: its phase (``"manifests"`` then ``"blobs"``), objects of it done and to do."""

    phase: str
    done: int
    total: int
    bytes: int
    seconds: float


@dataclass
class ScrubReport:
    """What a scrub checked and found."""

    #: Objects re-hashed (manifests included) and their bytes.
    checked: int = 0
    bytes: int = 0
    #: Of :attr:`checked`, how many were manifests (always all of them in scope).
    manifests: int = 0
    #: Blobs other than manifests in scope, before sampling.
    candidates: int = 0
    seconds: float = 0.0
    #: The seed of the sample (``None`` when everything was checked), to draw the same one again.
    seed: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    @property
    def mismatches(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == MISMATCH]

    @property
    def missing(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == MISSING]

    @property
    def invalid(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == INVALID]

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Index:
    """Who refers to what, from the repositories' links and the manifests' contents."""

    layers: dict[Digest, set[str]] = field(default_factory=lambda: defaultdict(set))
    revisions: dict[Digest, set[str]] = field(default_factory=lambda: defaultdict(set))
    tags: dict[Digest, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: digest -> (manifest, role) of every parsed manifest that lists it.
    listed_in: dict[Digest, set[tuple[Digest, str]]] = field(default_factory=lambda: defaultdict(set))
    #: Digests that parsed manifests need stored (foreign layers and subjects are not needed).
    required: set[Digest] = field(default_factory=set)


@dataclass(frozen=True)
class _Hashed:
    """The outcome of streaming one object: its digest, size, and its bytes if kept."""

    actual: Digest
    size: int
    body: bytes | None


class Scrubber:
    """Re-hash a registry's stored objects: all of them, one repository's, or a sample.

    :param repository: check only what this repository links (its layers and manifests, and
        the blobs its manifests list), and name references within it only.
    :param sample: check only some blobs other than manifests: a fraction (float in (0, 1]) or
        a count (int). Manifests are always all checked: they are read anyway, to index them.
    :param seed: the sample's random seed (default: a fresh one, given in the report).
    :param progress: called with a :class:`ScrubProgress` after every chunk and object.
    :param max_manifest_size: a manifest longer than this is reported, not parsed.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        repository: str | None = None,
        sample: float | int | None = None,
        seed: int | None = None,
        progress: Callable[[ScrubProgress], None] | None = None,
        max_manifest_size: int = 4 * 1024 * 1024,
        chunk_size: int = CHUNK_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if repository is not None:
            try:
                parse_name(repository)
            except NameInvalid:
                raise ValueError(f"invalid repository name: {repository!r}") from None
        _check_sample(sample)
        self.storage = storage
        self.repository = repository
        self.sample = sample
        self.seed = seed
        self.progress = progress
        self.max_manifest_size = max_manifest_size
        self.chunk_size = chunk_size
        self.clock = clock

    def run(self) -> ScrubReport:
        """Scrub once and return what was found; :class:`ValueError` for an unknown repository."""
        report = ScrubReport()
        start = self.clock()
        index, findings = self._index()
        listed = self._list_blobs() if self.repository is None else None
        self._check_manifests(index, report, findings, start)
        candidates = self._candidates(index, listed)
        report.candidates = len(candidates)
        chosen = self._choose(candidates, report)
        self._check_blobs(chosen, index, report, findings, start)
        self._check_present(index, listed, set(chosen), findings)
        report.seconds = self.clock() - start
        report.findings = [self._describe(f, index) for f in findings]
        return report

    # -- listing ----------------------------------------------------------------------------------

    def _index(self) -> tuple[_Index, list[Finding]]:
        """Every link and tag in scope; tags are read, each a small record."""
        index = _Index()
        findings: list[Finding] = []
        if self.repository is None:
            prefix, base = _REPOSITORIES, ""
        else:
            prefix, base = repo(self.repository) + "/", self.repository + "/"
        tag_keys: list[tuple[str, str]] = []
        for relative in self.storage.list(prefix):
            parsed = _parse_repository_key(base + relative)
            if parsed is None or (self.repository is not None and parsed[1] != self.repository):
                continue  # referrer indexes, and repositories nested below the one asked for
            kind, name, value = parsed
            if isinstance(value, str):
                tag_keys.append((name, value))
            elif kind == "layer":
                index.layers[value].add(name)
            else:
                index.revisions[value].add(name)
        if self.repository is not None and not tag_keys and not index.layers and not index.revisions:
            if not _exists(self.storage, catalog_key(self.repository)):
                raise ValueError(f"no repository {self.repository!r} in this registry")
        for name, tag in tag_keys:
            key = tags_prefix(name) + tag
            try:
                digest = parse_digest(json.loads(self.storage.read(key))["digest"])
            except KeyNotFound:
                continue  # deleted since the listing
            except (ValueError, KeyError, TypeError, DigestInvalid):
                findings.append(Finding(INVALID, key, None, "tag record is not JSON with a valid digest",
                                        repositories=(name,), tags=(f"{name}:{tag}",)))
                continue
            index.tags[digest].add(f"{name}:{tag}")
        return index, findings

    def _list_blobs(self) -> dict[Digest, None]:
        """Every stored blob, in key order (a dict as an ordered set)."""
        listed: dict[Digest, None] = {}
        for relative in self.storage.list(_BLOBS):
            digest = _parse_blob_key(relative)
            if digest is not None:
                listed[digest] = None
        return listed

    # -- hashing ----------------------------------------------------------------------------------

    def _hash(self, key: str, digest: Digest, keep: int, report: ScrubReport, phase: str,
              done: int, total: int, start: float) -> _Hashed:
        """Stream ``key`` through the digest's hash in bounded reads; keep its bytes up to ``keep``."""
        hasher = hashlib.new(digest.algorithm)
        kept: bytearray | None = bytearray() if keep else None
        size = 0
        reader = self.storage.open(key)
        try:
            while chunk := reader.read(self.chunk_size):
                hasher.update(chunk)
                size += len(chunk)
                report.bytes += len(chunk)
                if kept is not None:
                    kept += chunk
                    if len(kept) > keep:
                        kept = None
                self._report(phase, done, total, report, start)
        finally:
            reader.close()
        return _Hashed(Digest(digest.algorithm, hasher.hexdigest()), size,
                       bytes(kept) if kept is not None else None)

    def _report(self, phase: str, done: int, total: int, report: ScrubReport, start: float) -> None:
        if self.progress is not None:
            self.progress(ScrubProgress(phase, done, total, report.bytes, self.clock() - start))

    def _check_manifests(self, index: _Index, report: ScrubReport, findings: list[Finding],
                         start: float) -> None:
        """Verify every manifest in scope and index what the intact ones list."""
        manifests = sorted(index.revisions)
        self._report("manifests", 0, len(manifests), report, start)
        for done, digest in enumerate(manifests, 1):
            finding = self._check_manifest(digest, index, report, (done - 1, len(manifests), start))
            if finding is not None:
                findings.append(finding)
            self._report("manifests", done, len(manifests), report, start)

    def _check_manifest(self, digest: Digest, index: _Index, report: ScrubReport,
                        where: tuple[int, int, float]) -> Finding | None:
        key = blob_key(digest)
        try:
            hashed = self._hash(key, digest, self.max_manifest_size, report, "manifests", *where)
        except KeyNotFound:
            return Finding(MISSING, key, digest, "manifest is linked but not stored")
        report.checked += 1
        report.manifests += 1
        if hashed.actual != digest:
            # Not parsed: what a corrupted manifest lists is not what was pushed.
            return Finding(MISMATCH, key, digest, "manifest bytes do not match its digest",
                           actual=hashed.actual, size=hashed.size)
        if hashed.body is None:
            return Finding(INVALID, key, digest,
                           f"manifest longer than {self.max_manifest_size} bytes: not parsed",
                           size=hashed.size)
        try:
            manifest = parse_manifest(hashed.body, None)
        except RegistryError as exc:
            return Finding(INVALID, key, digest, f"manifest does not parse: {exc.message}",
                           size=hashed.size)
        _index_manifest(index, digest, manifest)
        return None

    def _candidates(self, index: _Index, listed: dict[Digest, None] | None) -> list[Digest]:
        """The blobs other than manifests in scope: all stored ones, or those of the repository."""
        if listed is not None:
            return [d for d in listed if d not in index.revisions]
        return sorted((set(index.layers) | index.required) - set(index.revisions))

    def _choose(self, candidates: list[Digest], report: ScrubReport) -> list[Digest]:
        """All candidates, or a random sample of them (kept in key order)."""
        if self.sample is None:
            return candidates
        seed = self.seed if self.seed is not None else secrets.randbits(32)
        report.seed = seed
        if isinstance(self.sample, int):
            count = min(self.sample, len(candidates))
        else:
            count = math.ceil(self.sample * len(candidates))
        chosen = set(random.Random(seed).sample(candidates, count))
        return [d for d in candidates if d in chosen]

    def _check_blobs(self, chosen: list[Digest], index: _Index, report: ScrubReport,
                     findings: list[Finding], start: float) -> None:
        self._report("blobs", 0, len(chosen), report, start)
        for done, digest in enumerate(chosen, 1):
            finding = self._check_blob(digest, index, report, (done - 1, len(chosen), start))
            if finding is not None:
                findings.append(finding)
            self._report("blobs", done, len(chosen), report, start)

    def _check_blob(self, digest: Digest, index: _Index, report: ScrubReport,
                    where: tuple[int, int, float]) -> Finding | None:
        key = blob_key(digest)
        try:
            hashed = self._hash(key, digest, 0, report, "blobs", *where)
        except KeyNotFound:
            if digest in index.layers or digest in index.required:
                return Finding(MISSING, key, digest, "blob is linked or listed but not stored")
            return None  # an unreferenced blob deleted since the listing
        report.checked += 1
        if hashed.actual != digest:
            return Finding(MISMATCH, key, digest, "blob bytes do not match its digest",
                           actual=hashed.actual, size=hashed.size)
        return None

    def _check_present(self, index: _Index, listed: dict[Digest, None] | None,
                       hashed: set[Digest], findings: list[Finding]) -> None:
        """Report needed blobs that were not hashed and are not stored (a sample hashes only some)."""
        needed = (set(index.layers) | index.required) - set(index.revisions) - hashed
        for digest in sorted(needed):
            if listed is not None and digest in listed:
                continue
            # Not in the listing: asked once more, so that a blob pushed since is not reported.
            if not _exists(self.storage, blob_key(digest)):
                findings.append(Finding(MISSING, blob_key(digest), digest,
                                        "blob is linked or listed but not stored"))

    # -- references -------------------------------------------------------------------------------

    def _describe(self, finding: Finding, index: _Index) -> Finding:
        """The finding with the repositories, tags and manifests that refer to its object."""
        digest = finding.digest
        if digest is None:
            return finding
        repositories = index.layers.get(digest, set()) | index.revisions.get(digest, set())
        manifests = tuple(
            ManifestReference(m, role, tuple(sorted(index.revisions.get(m, ()))))
            for m, role in sorted(index.listed_in.get(digest, ()), key=lambda r: (str(r[0]), r[1]))
        )
        return Finding(
            finding.kind, finding.key, digest, finding.message, finding.actual, finding.size,
            tuple(sorted(repositories)), tuple(sorted(_tags_reaching(index, digest))), manifests,
        )


def _index_manifest(index: _Index, digest: Digest, manifest: Manifest) -> None:
    """Record what an intact manifest lists, and what of it must be stored."""
    for position, blob in enumerate(manifest.blobs):
        index.listed_in[blob.digest].add((digest, "config" if position == 0 else "layer"))
    index.required.update(blob.digest for blob in manifest.required_blobs())
    for child in manifest.children:
        index.listed_in[child.digest].add((digest, "manifest"))
        index.required.add(child.digest)
    if manifest.subject is not None:
        index.listed_in[manifest.subject.digest].add((digest, "subject"))


def _tags_reaching(index: _Index, digest: Digest) -> set[str]:
    """Tags of the object and of every image or index containing it (not through ``subject``)."""
    tags: set[str] = set()
    seen, todo = {digest}, [digest]
    while todo:
        current = todo.pop()
        tags |= index.tags.get(current, set())
        for parent, role in index.listed_in.get(current, ()):
            if role != "subject" and parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return tags


def _check_sample(sample: float | int | None) -> None:
    if sample is None:
        return
    if isinstance(sample, bool) or not isinstance(sample, (int, float)):
        raise ValueError(f"sample must be a fraction or a count, not {sample!r}")
    if isinstance(sample, int) and sample < 1:
        raise ValueError(f"a sample count must be at least 1, not {sample}")
    if isinstance(sample, float) and not 0.0 < sample <= 1.0:
        raise ValueError(f"a sample fraction must be in (0, 1], not {sample}")


def parse_sample(text: str) -> float | int:
    """``--sample``: a count (``100``) or, with a decimal point or exponent, a fraction (``0.05``)."""
    try:
        value: float | int = float(text) if any(c in text for c in ".eE") else int(text)
        _check_sample(value)
    except ValueError as exc:
        raise ValueError(
            "give a count of blobs (e.g. 100) or a fraction in (0, 1] (e.g. 0.05)"
            + (f"; {exc}" if "sample" in str(exc) else "")) from None
    return value


def _digest(algorithm: str, hex_: str) -> Digest | None:
    try:
        return parse_digest(f"{algorithm}:{hex_}")
    except DigestInvalid:
        return None


def _parse_blob_key(relative: str) -> Digest | None:
    """The digest of a key below ``blobs/``, if it is where :func:`blob_key` puts that digest."""
    parts = relative.split("/")
    digest = _digest(parts[0], parts[-1]) if len(parts) == 3 else None
    return digest if digest is not None and blob_key(digest) == _BLOBS + relative else None


def _parse_repository_key(relative: str) -> tuple[str, str, Digest | str] | None:
    """``("layer" | "revision" | "tag", name, digest or tag)`` of a key below ``repositories/``.

    Name components never start with ``_`` and the repository's own folders do, so the first
    such component ends the name. Only keys the content layer's helpers would build count.
    """
    parts = relative.split("/")
    end = next((i for i, part in enumerate(parts) if part.startswith("_")), 0)
    if end == 0:
        return None
    name, rest, full = "/".join(parts[:end]), parts[end:], _REPOSITORIES + relative
    if len(rest) == 3 and rest[0] == "_layers":
        digest = _digest(rest[1], rest[2])
        if digest is not None and layer_key(name, digest) == full:
            return "layer", name, digest
    elif len(rest) == 4 and rest[:2] == ["_manifests", "revisions"]:
        digest = _digest(rest[2], rest[3])
        if digest is not None and revision_key(name, digest) == full:
            return "revision", name, digest
    elif len(rest) == 3 and rest[:2] == ["_manifests", "tags"] and tags_prefix(name) + rest[2] == full:
        return "tag", name, rest[2]
    return None


def _exists(storage: Storage, key: str) -> bool:
    try:
        storage.size(key)
    except KeyNotFound:
        return False
    return True


# -- the command ------------------------------------------------------------------------------------


#: The ``scrub`` command's own options (it also takes the storage options ``serve`` takes).
OPTIONS = (
    Option("repository", text(metavar="NAME"), "check only what this repository links, and name "
           "references within it", env=False, file=False, group="scrub", default_text="all"),
    Option("sample", text(parse_sample, "a count (100) or a fraction (0.05)", "FRACTION_OR_COUNT"),
           "check only some blobs; manifests are always all checked", env=False, file=False,
           group="scrub", default_text="all blobs"),
    Option("seed", integer(), "random seed of the sample", env=False, file=False, group="scrub",
           default_text="a fresh one, printed"),
)


class ProgressPrinter:
    """Prints a scrub's progress at most once per ``interval`` seconds, and at each phase's end."""

    def __init__(self, out: TextIO, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.interval, self.clock = out, interval, clock
        self._last = -math.inf

    def __call__(self, progress: ScrubProgress) -> None:
        now = self.clock()
        if progress.done < progress.total and now - self._last < self.interval:
            return
        self._last = now
        rate = progress.bytes / progress.seconds if progress.seconds > 0 else 0.0
        print(f"scrub: {progress.phase} {progress.done}/{progress.total}, "
              f"{_megabytes(progress.bytes)}, {_megabytes(rate)}/s", file=self.out, flush=True)


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


def format_report(report: ScrubReport) -> Iterable[str]:
    """The findings, then a summary line, as ``scrub`` prints them."""
    for finding in report.findings:
        head = f"{finding.kind.upper()} {finding.digest or finding.key}: {finding.message}"
        if finding.actual is not None:
            head += f" (actual {finding.actual}, {finding.size} bytes)"
        yield head
        yield f"  key: {finding.key}"
        if finding.repositories:
            yield "  repositories: " + ", ".join(finding.repositories)
        if finding.tags:
            yield "  tags: " + ", ".join(finding.tags)
        for ref in finding.manifests:
            where = ", ".join(ref.repositories) or "no repository"
            yield f"  listed as {ref.role} by manifest {ref.manifest} ({where})"
    sample = (f", a sample of {report.checked - report.manifests} of {report.candidates} blobs "
              f"(seed {report.seed})" if report.seed is not None else "")
    yield (f"checked {report.checked} objects ({report.manifests} of them manifests{sample}), "
           f"{_megabytes(report.bytes)} in {report.seconds:.1f} s ({_megabytes(report.bytes_per_second)}/s): "
           f"{len(report.mismatches)} mismatched, {len(report.missing)} missing, "
           f"{len(report.invalid)} invalid")


def run_command(namespace: argparse.Namespace, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    """``docker-registry-wsgi scrub``: 0 when clean, 1 when anything was found.

    :class:`ValueError` (exit status 2) for a storage that holds no registry or a bad repository.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    storage = storage_config.build_existing(namespace)
    try:
        report = Scrubber(storage, repository=namespace.repository, sample=namespace.sample,
                          seed=namespace.seed, progress=ProgressPrinter(err)).run()
    finally:
        storage.close()
    for line in format_report(report):
        print(line, file=out)
    return 0 if report.clean else 1
