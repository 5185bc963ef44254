"""The command line: ``docker-registry-wsgi serve`` options, their ``REGISTRY_*`` environment
defaults, and ``python -m docker_registry_wsgi serve --help``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webtest

from docker_registry_wsgi import Registry, __version__
from docker_registry_wsgi.cli import main, parser
from docker_registry_wsgi.server import build_app

ENV_VARS = ("REGISTRY_HOST", "REGISTRY_PORT", "REGISTRY_ROOT", "REGISTRY_WORKERS", "REGISTRY_THREADS",
            "REGISTRY_STORAGE", "REGISTRY_ACCESS_LOG")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not see the REGISTRY_* variables of whoever runs them."""
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def test_serve_defaults() -> None:
    """Defaults: 127.0.0.1:5000, filesystem storage in ./registry-data, a worker per core, 8 threads."""
    args = parser().parse_args(["serve"])
    assert args.command == "serve"
    assert args.host == "127.0.0.1"
    assert args.port == 5000
    assert args.storage == "filesystem"
    assert args.root == "./registry-data"
    assert args.workers == (os.cpu_count() or 1)
    assert args.threads == 8
    assert args.access_log is False


def test_serve_reads_registry_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> None:
    env = {"REGISTRY_HOST": "127.0.0.2", "REGISTRY_PORT": "5123", "REGISTRY_ROOT": str(tmp_path),
           "REGISTRY_WORKERS": "3", "REGISTRY_THREADS": "4", "REGISTRY_STORAGE": "memory",
           "REGISTRY_ACCESS_LOG": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = parser().parse_args(["serve"])
    assert (args.host, args.port, args.root, args.workers, args.threads, args.storage, args.access_log) == (
        "127.0.0.2", 5123, str(tmp_path), 3, 4, "memory", True)


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_PORT", "5123")
    monkeypatch.setenv("REGISTRY_STORAGE", "memory")
    args = parser().parse_args(["serve", "--port", "0", "--storage", "filesystem", "--root", "/srv/r",
                                "--host", "::1", "--workers", "2", "--threads", "16", "--access-log"])
    assert (args.port, args.storage, args.root, args.host, args.workers, args.threads, args.access_log) == (
        0, "filesystem", "/srv/r", "::1", 2, 16, True)


@pytest.mark.parametrize("argv", [[], ["serve", "--storage", "floppy"], ["serve", "--port", "http"],
                                  ["unknown-command"]])
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == __version__


def test_options_build_a_working_registry(tmp_path: os.PathLike[str]) -> None:
    """The parsed options build the WSGI app the server runs (memory and filesystem storage)."""
    for argv in (["serve", "--storage", "memory"], ["serve", "--root", str(tmp_path)]):
        app = build_app(parser().parse_args(argv))
        test = webtest.TestApp(app)
        assert test.get("/v2/").headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert test.get("/readyz").text.strip() == "ok" and test.get("/livez").status_int == 200
        test.post("/v2/lib/app/blobs/uploads/?digest=sha256:"
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", b"", status=201)
    assert os.path.isdir(os.path.join(tmp_path, "blobs"))


def test_python_m_serve_help() -> None:
    """``python -m docker_registry_wsgi serve --help`` documents every option and its variable."""
    result = subprocess.run([sys.executable, "-m", "docker_registry_wsgi", "serve", "--help"],
                            capture_output=True, text=True, timeout=60,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--root", "--workers", "--threads", "--storage"):
        assert option in result.stdout
    for variable in ENV_VARS[:-1]:
        assert variable in result.stdout
    assert "127.0.0.1" in result.stdout and "5000" in result.stdout


def test_python_m_without_command_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "docker_registry_wsgi"], capture_output=True,
                            text=True, timeout=60,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 2
    assert "serve" in result.stderr


def test_purge_uploads_command_cancels_stale_sessions(tmp_path: Path) -> None:
    """``docker-registry-wsgi purge-uploads`` over the same folder the server uses."""
    from docker_registry_wsgi.content import RegistryContent
    from docker_registry_wsgi.storage import FilesystemStorage

    content = RegistryContent(FilesystemStorage(tmp_path))
    stale = content.start_upload("repo/a")
    assert main(["purge-uploads", "--root", str(tmp_path), "--older-than", "1"]) == 0
    assert content.get_upload("repo/a", stale.id)  # younger than an hour: kept
    assert main(["purge-uploads", "--root", str(tmp_path), "--older-than", "0"]) == 0
    assert list(FilesystemStorage(tmp_path).list_uploads()) == []


def _old_garbage(root: Path) -> str:
    """A blob pushed (and last used) three days ago that nothing refers to; its digest."""
    import hashlib

    from docker_registry_wsgi.content import RegistryContent
    from docker_registry_wsgi.digests import parse_digest
    from docker_registry_wsgi.storage import FilesystemStorage
    from docker_registry_wsgi.usage import UsageRecords

    storage = FilesystemStorage(root)
    content = RegistryContent(storage, usage=UsageRecords(storage, clock=lambda: time.time() - 3 * 86400))
    data = b"garbage from three days ago"
    digest = parse_digest("sha256:" + hashlib.sha256(data).hexdigest())
    content.push_blob("team/app", digest, [data], len(data))
    return str(digest)


def test_gc_command_dry_run_then_collect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``docker-registry-wsgi gc``: progress on stderr, what would go, then a summary."""
    digest = _old_garbage(tmp_path)
    assert main(["gc", "--root", str(tmp_path), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert f"would remove blob {digest}" in out and "dry run:" in out and "would free 1" in out
    assert "gc: mark 1/1" in err
    assert (tmp_path / "blobs").exists() and any((tmp_path / "blobs").rglob(digest.split(":")[1]))
    assert main(["gc", "--root", str(tmp_path)]) == 0
    out, _ = capsys.readouterr()
    assert "freed 1 (27 bytes)" in out
    assert not any((tmp_path / "blobs").rglob(digest.split(":")[1]))


def test_gc_and_purge_refuse_a_root_that_holds_no_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    for command in (["gc"], ["purge-uploads"], ["scrub"]):
        assert main([*command, "--root", str(tmp_path / "mistyped")]) == 2
        assert "no such folder" in capsys.readouterr().err
        assert not (tmp_path / "mistyped").exists()
        assert main([*command, "--root", str(tmp_path / "empty")]) == 2
        assert "holds no registry" in capsys.readouterr().err


def test_gc_grace_must_exceed_the_touch_interval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _old_garbage(tmp_path)
    assert main(["gc", "--root", str(tmp_path), "--grace", "0.5"]) == 2
    assert "must be longer than the touch interval" in capsys.readouterr().err


def test_gc_dry_run_shows_what_each_retention_rule_would_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib
    import json as json_module

    from docker_registry_wsgi.content import RegistryContent
    from docker_registry_wsgi.digests import parse_digest
    from docker_registry_wsgi.storage import FilesystemStorage

    root = tmp_path / "registry"
    content = RegistryContent(FilesystemStorage(root))
    for tag in ("v1", "v2"):
        config = tag.encode()
        digest = parse_digest("sha256:" + hashlib.sha256(config).hexdigest())
        content.push_blob("ci/app", digest, [config], len(config))
        body = json_module.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                             "digest": str(digest), "size": len(config)},
                                  "layers": []}).encode()
        content.put_manifest("ci/app", tag, body, "application/vnd.oci.image.manifest.v1+json")
        time.sleep(0.01)
    rules = tmp_path / "rules.json"
    rules.write_text(json_module.dumps({"retention": [{"repositories": ["ci/*"], "keep_last": 1}]}))
    assert main(["gc", "--root", str(root), "--retention", str(rules), "--dry-run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ci/app" in out and "v1" in out and "would remove tag" in out
    assert sorted(os.listdir(root / "repositories" / "ci" / "app" / "_manifests" / "tags")) == ["v1", "v2"]


@pytest.mark.parametrize("argv, env, enabled", [
    ([], None, True),
    (["--no-delete"], None, False),
    ([], "false", False),
    ([], "0", False),
    ([], "TRUE", True),
    (["--delete"], "false", True),  # the flag wins over the environment
    (["--no-delete"], "true", False),
])
def test_serve_delete_switch(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None,
                             enabled: bool) -> None:
    """``--no-delete`` / ``REGISTRY_DELETE_ENABLED=false``: DELETE answers 405 UNSUPPORTED
    (docker-registry-http-api-v2.md "DELETE Manifest", "On Failure: Not allowed")."""
    if env is not None:
        monkeypatch.setenv("REGISTRY_DELETE_ENABLED", env)
    app = build_app(parser().parse_args(["serve", "--storage", "memory", *argv]))
    response = webtest.TestApp(app).delete("/v2/lib/app/manifests/latest", expect_errors=True)
    assert response.status_int == (404 if enabled else 405)
    assert response.json["errors"][0]["code"] == ("MANIFEST_UNKNOWN" if enabled else "UNSUPPORTED")


def test_serve_delete_switch_refuses_a_misspelt_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_DELETE_ENABLED", "flase")
    with pytest.raises(ValueError, match="REGISTRY_DELETE_ENABLED='flase'"):
        build_app(parser().parse_args(["serve", "--storage", "memory"]))


def test_serve_builds_its_background_jobs(tmp_path: Path) -> None:
    """Webhook delivery and periodic collection are built with the app, started per worker."""
    from docker_registry_wsgi.gc import PeriodicCollector
    from docker_registry_wsgi.webhooks import Dispatcher

    background: list[object] = []
    build_app(parser().parse_args(["serve", "--root", str(tmp_path), "--webhook-url",
                                   "http://127.0.0.1:9/hook", "--gc-interval", "6"]), background)
    assert sorted(type(job).__name__ for job in background) == ["Dispatcher", "PeriodicCollector"]
    assert isinstance(background[0], (Dispatcher, PeriodicCollector))
    assert build_app(parser().parse_args(["serve", "--root", str(tmp_path)]), []) is not None
    with pytest.raises(ValueError, match="touch interval"):
        build_app(parser().parse_args(["serve", "--root", str(tmp_path), "--gc-interval", "1",
                                       "--gc-grace", "0.5"]), [])
