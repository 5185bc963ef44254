"""``docker-registry-wsgi gc`` in a loop while skopeo pushes, pulls and deletes multi-platform images.

The standalone registry runs with ``--touch-interval 2`` so that a collector with an 18 s grace
(``--grace 0.005`` hours) is allowed (docs/gc.rst: the grace must be longer than the touch
interval, and a push must end within ``grace - touch_interval``, here 16 s: a push of these
images takes a second or two). Three threads share the registry for a bounded time:

* the collector, run again and again as a subprocess with ``--delete-untagged``;
* a writer: ``skopeo copy --all`` pushes of images to new tags, pushes over existing tags (a tag
  moving to another image), ``skopeo delete`` by tag and by digest (OCI Distribution Spec
  "Deleting Manifests"), and deletes of platform manifests no tagged index lists any more;
* a reader: ``skopeo copy --all`` pulls of tags that exist, each compared byte for byte with the
  layout it was pushed from (spec "Pulling manifests", "Pulling blobs").

The images share content the way real ones do: some have the same platform manifests under
another index, some share one platform, some share nothing. Images are pushed, deleted and
pushed again, so a push often finds its blobs still stored but unreferenced (and skips them after
a ``HEAD``), which is the case the usage records exist for. After the loop and one grace period,
a last collection must leave exactly what the remaining tags need: the blobs, the links, the
manifests, the usage records and the catalog, read from the store itself.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from tests.support.clients import Skopeo
from tests.support.oci_images import OciImage, assert_same_image, build_multiplatform_image
from tests.support.servers import RegistryServer

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
TOUCH_INTERVAL = 2.0  # seconds: the server's --touch-interval
GRACE_HOURS = 0.003  # 10.8 s: longer than the touch interval, far longer than a push here
GRACE = GRACE_HOURS * 3600
LOOP_SECONDS = 32.0
MAX_WRITES = 1000  # bounds the writer even on a fast machine
REPOSITORIES = ("loop/app", "loop/base")
AMD64, ARM64, S390X, PPC64LE = ("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x"), ("linux", "ppc64le")
#: (seed, platforms, index annotations) of each image; equal (seed, platform) pairs give equal
#: platform manifests, configs and layers.
IMAGES = (
    (0, (AMD64, ARM64), None),
    (0, (AMD64, ARM64), {"org.opencontainers.image.version": "b"}),  # 0's manifests, another index
    (0, (AMD64, S390X), None),  # shares 0's amd64 manifest
    (1, (AMD64, ARM64), None),  # nothing in common with 0-2
    (1, (ARM64, PPC64LE), None),  # shares 3's arm64 manifest
    (2, (AMD64, ARM64), None),
    (3, (AMD64, ARM64), None),
)
#: Images the writer uses all the time; the others go cold for the middle of the loop (deleted,
#: pushed nowhere), long enough to be collected, and are pushed again (uploaded afresh) after.
HOT = (0, 3)
COLD_FROM, COLD_UNTIL = 0.2, 0.8  # fractions of the loop: 19 s out of 32, the grace is 10.8 s
FREED = re.compile(r"freed (\d+) \(([\d.,]+) (bytes|KB|MB|GB)\)")
UNITS = {"bytes": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}


@dataclass
class Backend:
    """Where the registry keeps its data, the gc options that reach it, and a raw key listing."""

    kind: str
    storage_args: list[str]
    list_keys: Callable[[str], list[str]]  # keys below a prefix ("blobs/"), read from the store


@pytest.fixture(scope="module", params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """A fresh folder, or a fresh prefix in the session's SeaweedFS bucket."""
    base = tmp_path_factory.mktemp(f"gc-{request.param}")
    if request.param == "filesystem":
        root = base / "data"
        root.mkdir()

        def list_files(prefix: str) -> list[str]:
            top = root / prefix
            return sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file()) if top.exists() else []

        return Backend("filesystem", ["--root", str(root)], list_files)
    bucket = request.getfixturevalue("s3_bucket")
    s3_prefix = "gc-loop-" + base.name
    client = bucket.shared_client

    def list_objects(prefix: str) -> list[str]:
        full = f"{s3_prefix}/{prefix}"
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name, Prefix=full):
            keys.extend(item["Key"][len(full):] for item in page.get("Contents", []))
        return sorted(keys)

    return Backend("s3", bucket.server_args(s3_prefix), list_objects)


@pytest.fixture(scope="module")
def registry(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The standalone registry over ``backend``: two workers, touch interval 2 s, access log.

    Named ``registry`` so that the e2e conftest's ``skopeo`` fixture and its failure report (the
    registry log of the test, the client transcript) apply.
    """
    base = tmp_path_factory.mktemp(f"gc-registry-{backend.kind}")
    args = ["--workers", "2", "--access-log", "--touch-interval", str(TOUCH_INTERVAL)]
    if backend.kind == "s3":
        args += backend.storage_args
        root = base / "unused"
    else:
        root = Path(backend.storage_args[1])
    server = RegistryServer(root, extra_args=args, log_path=base / "registry.log", show_log_on_stop=False)
    with server:
        yield server


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[OciImage]:
    """The images of :data:`IMAGES`, each in its own layout, small (256 KiB random layers)."""
    folder = tmp_path_factory.mktemp("gc-layouts")
    return [
        build_multiplatform_image(folder / f"image-{i}", tag=f"src{i}", seed=seed, platforms=platforms,
                                  index_annotations=annotations, big_layer_size=256 * 1024 + i)
        for i, (seed, platforms, annotations) in enumerate(IMAGES)
    ]


@dataclass
class World:
    """What the registry should hold: each tag's image; the tags pulls are reading, and moving."""

    images: list[OciImage]
    tags: dict[tuple[str, str], int] = field(default_factory=dict)
    pinned: Counter[tuple[str, str]] = field(default_factory=Counter)
    moving: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def busy(self, repository: str, image: int) -> bool:
        """Whether a pull is reading a tag of ``repository`` that names ``image`` (its index)."""
        return any(self.tags.get(key) == image for key in self.pinned if key[0] == repository and self.pinned[key])

    def children(self, image: int) -> set[str]:
        return {d.digest for d in self.images[image].manifests.values()}

    def needed(self) -> dict[str, dict[str, set[str]]]:
        """Per repository: the manifests (indexes, children) and the blobs its tags reach."""
        out: dict[str, dict[str, set[str]]] = {}
        for (repository, _), i in self.tags.items():
            image = self.images[i]
            entry = out.setdefault(repository, {"manifests": set(), "blobs": set()})
            entry["manifests"] |= {image.index.digest} | self.children(i)
            entry["blobs"] |= {d.digest for d in image.configs.values()}
            entry["blobs"] |= {d.digest for layers in image.layers.values() for d in layers}
        return out


@dataclass
class Tally:
    """What happened during the loop, for the assertions and the printed summary."""

    pushes: int = 0
    moves: int = 0
    deletes: int = 0
    child_deletes: int = 0
    children_already_gone: int = 0
    pulls: int = 0
    seconds: float = 0.0
    blobs_compared: int = 0
    gc_runs: int = 0
    blobs_freed: int = 0
    bytes_freed: float = 0.0
    summaries: list[str] = field(default_factory=list)


def _gc_command(backend: Backend) -> list[str]:
    return [sys.executable, "-m", "docker_registry_wsgi", "gc", *backend.storage_args, "--grace", str(GRACE_HOURS),
            "--touch-interval", str(TOUCH_INTERVAL), "--delete-untagged", "--quiet"]


def _run_gc(backend: Backend, tally: Tally) -> str:
    """One collection as a subprocess; its summary line. Fails on a non-zero exit or any error."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(_gc_command(backend), capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"gc exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    summary = result.stdout.strip().splitlines()[-1]
    found = FREED.search(summary)
    assert found and " 0 errors;" in summary, summary
    tally.gc_runs += 1
    tally.blobs_freed += int(found.group(1))
    tally.bytes_freed += float(found.group(2).replace(",", "")) * UNITS[found.group(3)]
    tally.summaries.append(summary)
    return summary


class Loop:
    """The three threads of the test: collector, writer (this one) and reader."""

    def __init__(self, world: World, skopeo: Skopeo, backend: Backend, workdir: Path, seed: int) -> None:
        self.world, self.skopeo, self.backend, self.workdir = world, skopeo, backend, workdir
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        self.next_tag = 0
        self.pushed: set[int] = set()

    def guarded(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                self.failures.append(exc)
                self.stop.set()
        return run

    # -- the collector ------------------------------------------------------------------------

    def collect(self) -> None:
        while not self.stop.is_set():
            _run_gc(self.backend, self.tally)
            self.stop.wait(0.5)  # leave the 2 cores some room for the clients

    # -- the reader ---------------------------------------------------------------------------

    def read(self) -> None:
        rng, pulls = random.Random(self.rng.random()), 0
        while not self.stop.is_set():
            with self.world.lock:
                choices = sorted(set(self.world.tags) - self.world.moving)
                if not choices:
                    key = None
                else:
                    key = rng.choice(choices)
                    self.world.pinned[key] += 1
                    image = self.world.images[self.world.tags[key]]
            if key is None:
                self.stop.wait(0.2)
                continue
            try:
                repository, tag = key
                target = self.workdir / f"pull-{pulls}"
                pulls += 1
                self.skopeo.copy("--all", "--preserve-digests", self.skopeo.docker(repository, tag),
                                 f"oci:{target}:{tag}")
                self.tally.blobs_compared += assert_same_image(image.path, image.tag, target, tag)
                self.tally.pulls += 1
                shutil.rmtree(target)
            finally:
                with self.world.lock:
                    self.world.pinned[key] -= 1

    # -- the writer ---------------------------------------------------------------------------

    def push(self, image: int, repository: str, tag: str) -> None:
        source = self.world.images[image]
        self.skopeo.copy("--all", "--preserve-digests", source.reference, self.skopeo.docker(repository, tag))
        with self.world.lock:
            self.world.tags[(repository, tag)] = image
        self.pushed.add(image)

    def write_once(self, elapsed: float) -> None:
        """One push, move or delete; while the cold images are cold, their tags go first."""
        world, rng = self.world, self.rng
        cold = COLD_FROM * LOOP_SECONDS <= elapsed < COLD_UNTIL * LOOP_SECONDS
        usable = [i for i in range(len(world.images)) if i in HOT or not cold]
        with world.lock:
            live = sorted(world.tags)
            free = [key for key in live if not world.pinned[key]]
            retiring = [key for key in free if world.tags[key] not in usable]
        actions = ["push"] * (3 if len(live) < 6 else 1)
        if free:
            actions += ["move", "delete tag", "delete digest"] * (2 if len(live) > 3 else 1)
        if retiring:
            free, actions = retiring, ["move", "delete tag", "delete digest"]
        action = rng.choice(actions)
        if action == "push":
            tag = f"v{self.next_tag}"
            self.next_tag += 1
            unseen = [i for i in usable if i not in self.pushed]  # each image early, for garbage
            self.push(rng.choice(unseen or usable), rng.choice(REPOSITORIES), tag)
            self.tally.pushes += 1
        elif action == "move":
            key = rng.choice(free)
            with world.lock:
                if world.pinned[key]:
                    return  # a pull began meanwhile
                current = world.tags[key]
                world.moving.add(key)  # no pull starts on a tag whose image is changing
            try:
                self.push(rng.choice([i for i in usable if i != current]), *key)
            finally:
                with world.lock:
                    world.moving.discard(key)
            self.tally.moves += 1
        else:
            self.delete(rng.choice(free), by_digest=action == "delete digest")

    def delete(self, key: tuple[str, str], *, by_digest: bool) -> None:
        """Delete a tag's index (and so every tag naming it), then maybe its orphaned children."""
        world, repository = self.world, key[0]
        with world.lock:
            image = world.tags[key]
            if world.busy(repository, image):
                return
            # Spec "Deleting Manifests": deleting by digest removes the manifest, and its tags.
            doomed = [k for k, i in world.tags.items() if k[0] == repository and i == image]
            for k in doomed:
                del world.tags[k]
            still_needed = set().union(*(world.children(i) for k, i in world.tags.items() if k[0] == repository))
        reference = world.images[image].index.digest if by_digest else key[1]
        self.skopeo.delete(self.skopeo.docker(repository, reference))
        self.tally.deletes += 1
        if self.rng.random() < 0.5:
            return
        for child in sorted(world.children(image) - still_needed):
            result = self.skopeo.run("delete", "--tls-verify=false", self.skopeo.docker(repository, child),
                                     check=False)
            if result.returncode == 0:
                self.tally.child_deletes += 1
            else:
                # The collector may have taken the untagged child first (it was stale). skopeo
                # says so in its own words when the GET before the DELETE is the 404.
                said = result.stderr.lower()
                assert "manifest unknown" in said or "image may not exist" in said, result.stderr[-3000:]
                self.tally.children_already_gone += 1

    def write(self) -> None:
        started = time.monotonic()
        writes = 0
        while not self.stop.is_set() and time.monotonic() - started < LOOP_SECONDS and writes < MAX_WRITES:
            self.write_once(time.monotonic() - started)
            writes += 1
        self.tally.seconds = time.monotonic() - started


def _digests(keys: list[str]) -> set[str]:
    """``sha256:<hex>`` of keys ``sha256/<hex>`` or ``sha256/<xx>/<hex>``."""
    return {f"{key.split('/')[0]}:{key.split('/')[-1]}" for key in keys}


def test_gc_loop_while_skopeo_pushes_pulls_and_deletes(registry: RegistryServer, backend: Backend, skopeo: Skopeo,
                                                       images: list[OciImage], tmp_path: Path) -> None:
    """Every push succeeds and every pull is byte-exact while gc runs; gc frees garbage meanwhile."""
    seed = random.randrange(1 << 30)
    skopeo.transcript.append(f"random seed of the writer: {seed}")
    world = World(images)
    loop = Loop(world, skopeo, backend, tmp_path, seed)
    loop.push(0, REPOSITORIES[0], "first")  # gc refuses a store that holds no registry yet
    loop.push(len(images) - 1, REPOSITORIES[1], "cold")  # shares nothing: garbage once cold
    threads = [threading.Thread(target=loop.guarded(body), name=name)
               for name, body in (("gc", loop.collect), ("pulls", loop.read))]
    for thread in threads:
        thread.start()
    try:
        loop.guarded(loop.write)()
    finally:
        loop.stop.set()
        for thread in threads:
            thread.join(timeout=300)
    if loop.failures:
        raise loop.failures[0]
    tally = loop.tally
    print(f"\n{backend.kind} (seed {seed}), {tally.seconds:.0f} s: {tally.pushes} pushes, {tally.moves} tag moves, "
          f"{tally.deletes} deletes, "
          f"{tally.child_deletes} child manifests deleted ({tally.children_already_gone} already collected), "
          f"{tally.pulls} byte-exact pulls ({tally.blobs_compared} blobs compared); {tally.gc_runs} gc runs freed "
          f"{tally.blobs_freed} blobs, {tally.bytes_freed / 1e6:.1f} MB")
    assert tally.pulls > 0 and tally.deletes > 0 and tally.gc_runs > 1
    assert tally.blobs_freed > 0 and tally.bytes_freed > 0, "\n".join(tally.summaries)

    # Nothing runs now: after one grace period everything the tags do not need is stale.
    time.sleep(GRACE + 1.0)
    final = _run_gc(backend, tally)
    print(f"final gc: {final}")
    needed = world.needed()
    for repository in REPOSITORIES:
        want = needed.get(repository, {"manifests": set(), "blobs": set()})
        assert _digests(backend.list_keys(f"repositories/{repository}/_manifests/revisions/")) == want["manifests"]
        assert _digests(backend.list_keys(f"repositories/{repository}/_layers/")) == want["blobs"]
        tags = {tag for (name, tag) in world.tags if name == repository}
        assert set(backend.list_keys(f"repositories/{repository}/_manifests/tags/")) == tags
    everything = set().union(*(entry["manifests"] | entry["blobs"] for entry in needed.values()))
    assert _digests(backend.list_keys("blobs/")) == everything
    assert _digests(backend.list_keys("gc/digests/")) == everything
    catalog: dict[str, Any] = requests.get(f"{registry.url}/v2/_catalog", timeout=30).json()
    assert sorted(catalog["repositories"]) == sorted(needed)
    for (repository, tag), i in sorted(world.tags.items()):
        target = tmp_path / f"final-{repository.replace('/', '-')}-{tag}"
        skopeo.copy("--all", "--preserve-digests", skopeo.docker(repository, tag), f"oci:{target}:{tag}")
        assert_same_image(images[i].path, images[i].tag, target, tag)
