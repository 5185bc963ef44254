"""The storage options of the command line: flags, ``REGISTRY_*`` variables, build(), and the
check of the root folder before the server starts."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from docker_registry_wsgi import options
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage
from docker_registry_wsgi.storage import config
from docker_registry_wsgi.storage.s3 import S3Storage
from tests.support.seaweedfs import S3Bucket


def parse(args: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    return options.parse(config.OPTIONS, args, env or {})


def test_defaults() -> None:
    namespace = parse([])
    assert namespace.storage == "filesystem"
    assert namespace.root == "./registry-data"
    assert namespace.s3_bucket is None and namespace.s3_redirect is False


def test_environment_gives_defaults_and_flags_win() -> None:
    env = {
        "REGISTRY_STORAGE": "s3",
        "REGISTRY_S3_BUCKET": "from-env",
        "REGISTRY_S3_PREFIX": "reg",
        "REGISTRY_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "REGISTRY_S3_REGION": "eu-west-1",
        "REGISTRY_S3_ACCESS_KEY": "ak",
        "REGISTRY_S3_SECRET_KEY": "sk",
        "REGISTRY_S3_REDIRECT": "true",
        "REGISTRY_S3_PART_SIZE": str(16 << 20),
        "REGISTRY_ROOT": "/srv/registry",
    }
    namespace = parse([], env)
    assert (namespace.storage, namespace.s3_bucket, namespace.s3_prefix) == ("s3", "from-env", "reg")
    assert namespace.s3_redirect is True and namespace.s3_part_size == 16 << 20
    assert namespace.root == "/srv/registry"
    namespace = parse(["--s3-bucket", "from-flag", "--no-s3-redirect", "--storage", "memory"], env)
    assert (namespace.storage, namespace.s3_bucket, namespace.s3_redirect) == ("memory", "from-flag", False)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(options.OptionErrors, match="^--storage tape: expected one of filesystem, memory, s3$"):
        parse(["--storage", "tape"])


def test_build_memory_and_filesystem(tmp_path: Path) -> None:
    assert isinstance(config.build(parse(["--storage", "memory"])), MemoryStorage)
    storage = config.build(parse(["--root", str(tmp_path / "data")]))
    assert isinstance(storage, FilesystemStorage)
    storage.write("k", b"v")
    assert (tmp_path / "data" / "k").read_bytes() == b"v"


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="--s3-bucket"):
        config.build(parse(["--storage", "s3"]))


def test_s3_keys_go_together() -> None:
    with pytest.raises(ValueError, match="together"):
        config.build(parse(["--storage", "s3", "--s3-bucket", "b", "--s3-access-key", "ak"]))


def test_s3_part_size_below_minimum_is_refused() -> None:
    with pytest.raises(options.OptionErrors, match="^--s3-part-size 1000: expected a whole number of bytes, at least 5242880$"):
        parse(["--storage", "s3", "--s3-bucket", "b", "--s3-part-size", "1000"])


def test_s3_read_settings_reach_the_backend() -> None:
    """--s3-read-part-size and --s3-read-concurrency (or their variables) go to S3Storage;
    without them it gets its defaults. Building makes no request (the client comes on first use)."""
    storage = config.build(parse(["--storage", "s3", "--s3-bucket", "b"]))
    assert isinstance(storage, S3Storage)
    assert (storage.read_part_size, storage.read_concurrency) == (8 << 20, 4)
    namespace = parse(["--storage", "s3", "--s3-bucket", "b", "--s3-read-concurrency", "6"],
                      {"REGISTRY_S3_READ_PART_SIZE": str(16 << 20), "REGISTRY_S3_READ_CONCURRENCY": "2"})
    storage = config.build(namespace)
    assert isinstance(storage, S3Storage)
    assert (storage.read_part_size, storage.read_concurrency) == (16 << 20, 6)


@pytest.mark.parametrize("flag,value,expected", [
    ("--s3-read-part-size", "65536", "expected a whole number of bytes, at least 1048576"),
    ("--s3-read-concurrency", "0", "expected a whole number, at least 1"),
])
def test_s3_read_settings_below_their_minimum_are_refused(flag: str, value: str, expected: str) -> None:
    with pytest.raises(options.OptionErrors, match=f"^{flag} {value}: {expected}$"):
        parse(["--storage", "s3", "--s3-bucket", "b", flag, value])


# -- the root folder, checked before the server starts ------------------------------------------


def test_a_root_that_can_be_created_or_written_passes(tmp_path: Path) -> None:
    assert config.check_root(str(tmp_path)) is None
    assert config.check_root(str(tmp_path / "new" / "deeper")) is None
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_a_root_with_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert config.check_root(str(tmp_path / "file")) == "not a folder"
    assert config.check_root(str(tmp_path / "file" / "registry")) == f"cannot create it: {tmp_path / 'file'} is not a folder"
    namespace = parse(["--root", str(tmp_path / "file" / "registry")])
    with pytest.raises(ValueError, match=f"^--root {tmp_path}/file/registry: cannot create it"):
        config.check(namespace)
    namespace = parse([], {"REGISTRY_ROOT": str(tmp_path / "file")})
    with pytest.raises(ValueError, match=f"^REGISTRY_ROOT='{tmp_path}/file': not a folder$"):
        config.check(namespace)


def test_a_root_this_user_cannot_write(tmp_path: Path) -> None:
    """A folder without write permission for this user: refused by name. The check runs in a
    user namespace of its own (``unshare --user``), where even root gets only the owner's
    permission bits; a read-only mount is left to the start check (docs/operations.rst)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    script = ("import sys; from docker_registry_wsgi.storage.config import check_root; "
              "print(check_root(sys.argv[1]), check_root(sys.argv[1] + '/registry'), sep='|')")
    probe = subprocess.run(["unshare", "--user", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a user namespace here: {probe.stderr.strip()}")
    result = subprocess.run(["unshare", "--user", sys.executable, "-c", script, str(locked)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    uid = "65534"  # the overflow uid: this user has no mapping in the new namespace
    assert result.stdout.strip() == (f"not writable by this user (uid {uid})|cannot create it: {locked} "
                                     f"is not writable by this user (uid {uid})")
