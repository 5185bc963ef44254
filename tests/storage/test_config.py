"""The storage options of the standalone server: flags, ``REGISTRY_*`` defaults, and build()."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage
from docker_registry_wsgi.storage import config
from docker_registry_wsgi.storage.s3 import S3Storage
from tests.support.seaweedfs import S3Bucket


def parse(args: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, env or {})
    return parser.parse_args(args)


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


def test_unknown_backend_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--storage", "tape"])
    assert "invalid choice" in capsys.readouterr().err


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
    with pytest.raises(ValueError, match="part_size"):
        config.build(parse(["--storage", "s3", "--s3-bucket", "b", "--s3-part-size", "1000"]))


@pytest.mark.s3
def test_build_s3_reaches_the_bucket(s3_bucket: S3Bucket) -> None:
    args = [arg.split("=", 1)[i] for arg in s3_bucket.server_args("cfg") for i in (0, 1)]
    storage = config.build(parse([*args, "--s3-redirect"]))
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.redirect) == (s3_bucket.name, "cfg/", True)
    storage.write("tags/x", b"1")
    assert list(storage.list("tags/")) == ["x"]
    assert storage.redirect_url("tags/x") is not None
    storage.close()
