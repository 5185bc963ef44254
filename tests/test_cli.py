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
from docker_registry_wsgi.cli import main, parse
from docker_registry_wsgi.options import OptionErrors
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
    args = parse(["serve"])
    assert args.command == "serve"
    assert args.host == "127.0.0.1"
    assert args.port == 5000
    assert args.storage == "filesystem"
    assert args.root == "./registry-data"
    assert args.workers is None  # serve runs one per core
    assert args.threads == 8
    assert args.access_log is False


def test_serve_reads_registry_environment(tmp_path: os.PathLike[str]) -> None:
    env = {"REGISTRY_HOST": "127.0.0.2", "REGISTRY_PORT": "5123", "REGISTRY_ROOT": str(tmp_path),
           "REGISTRY_WORKERS": "3", "REGISTRY_THREADS": "4", "REGISTRY_STORAGE": "memory",
           "REGISTRY_ACCESS_LOG": "1"}
    args = parse(["serve"], env)
    assert (args.host, args.port, args.root, args.workers, args.threads, args.storage, args.access_log) == (
        "127.0.0.2", 5123, str(tmp_path), 3, 4, "memory", True)


def test_flags_override_environment() -> None:
    env = {"REGISTRY_PORT": "5123", "REGISTRY_STORAGE": "memory", "REGISTRY_ACCESS_LOG": "off"}
    args = parse(["serve", "--port", "0", "--storage", "filesystem", "--root", "/srv/r",
                  "--host", "::1", "--workers", "2", "--threads", "16", "--access-log"], env)
    assert (args.port, args.storage, args.root, args.host, args.workers, args.threads, args.access_log) == (
        0, "filesystem", "/srv/r", "::1", 2, 16, True)


@pytest.mark.parametrize("argv", [[], ["unknown-command"], ["serve", "--no-such-option"]])
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("argv, line", [
    (["serve", "--storage", "floppy"], "--storage floppy: expected one of filesystem, memory, s3"),
    (["serve", "--port", "http"], "--port http: expected a whole number from 0 to 65535"),
    (["serve", "--port", "99999"], "--port 99999: expected a whole number from 0 to 65535"),
])
def test_bad_values_exit_2_in_one_line(argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"docker-registry-wsgi: {line}\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == __version__


def test_options_build_a_working_registry(tmp_path: os.PathLike[str]) -> None:
    """The parsed options build the WSGI app the server runs (memory and filesystem storage)."""
    for argv in (["serve", "--storage", "memory"], ["serve", "--root", str(tmp_path)]):
        app = build_app(parse(argv))
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
def test_serve_delete_switch(argv: list[str], env: str | None, enabled: bool) -> None:
    """``--no-delete`` / ``REGISTRY_DELETE_ENABLED=false``: DELETE answers 405 UNSUPPORTED
    (docker-registry-http-api-v2.md "DELETE Manifest", "On Failure: Not allowed")."""
    environ = {"REGISTRY_DELETE_ENABLED": env} if env is not None else {}
    app = build_app(parse(["serve", "--storage", "memory", *argv], environ))
    response = webtest.TestApp(app).delete("/v2/lib/app/manifests/latest", expect_errors=True)
    assert response.status_int == (404 if enabled else 405)
    assert response.json["errors"][0]["code"] == ("MANIFEST_UNKNOWN" if enabled else "UNSUPPORTED")


def test_serve_delete_switch_refuses_a_misspelt_environment() -> None:
    with pytest.raises(OptionErrors, match="^REGISTRY_DELETE_ENABLED='flase': expected true or false"):
        parse(["serve", "--storage", "memory"], {"REGISTRY_DELETE_ENABLED": "flase"})


def test_serve_builds_its_background_jobs(tmp_path: Path) -> None:
    """Webhook delivery and periodic collection are built with the app, started per worker."""
    from docker_registry_wsgi.gc import PeriodicCollector
    from docker_registry_wsgi.webhooks import Dispatcher

    background: list[object] = []
    build_app(parse(["serve", "--root", str(tmp_path), "--webhook-url", "http://127.0.0.1:9/hook",
                     "--gc-interval", "6"]), background)
    assert sorted(type(job).__name__ for job in background) == ["Dispatcher", "PeriodicCollector"]
    assert isinstance(background[0], (Dispatcher, PeriodicCollector))
    assert build_app(parse(["serve", "--root", str(tmp_path)]), []) is not None
    with pytest.raises(ValueError, match="touch interval"):
        build_app(parse(["serve", "--root", str(tmp_path), "--gc-interval", "1", "--gc-grace", "0.5"]), [])


# -- the configuration file, and bad settings in one line -------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_file_then_environment_then_flags(tmp_path: Path) -> None:
    """``serve --config``: the file's keys are the options; variables override it, flags them."""
    config = _write(tmp_path / "registry.toml", 'port = 5100\nhost = "::"\nthreads = 4\naccess-log = true\n'
                    'storage = "memory"\n[gunicorn]\nkeepalive = 5\n')
    args = parse(["serve", "--config", str(config)])
    assert (args.port, args.host, args.threads, args.access_log, args.storage, args.gunicorn) == (
        5100, "::", 4, True, "memory", {"keepalive": 5})
    args = parse(["serve", "--config", str(config), "--port", "5300"],
                 {"REGISTRY_PORT": "5200", "REGISTRY_THREADS": "2", "REGISTRY_ACCESS_LOG": "no"})
    assert (args.port, args.threads, args.access_log) == (5300, 2, False)
    assert parse(["serve"], {"REGISTRY_CONFIG": str(config)}).port == 5100


def test_config_check_ok_and_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path / "good.toml", f'root = "{tmp_path}/data"\nport = 5000\n'
                  '[[webhooks]]\nurl = "https://ci.example/hook"\nactions = ["push"]\n')
    assert main(["config", "check", str(good)]) == 0
    assert capsys.readouterr().out == "ok\n"
    bad = _write(tmp_path / "bad.toml", 'port = "5000"\nthreads = 0\nacess-log = true\n'
                 'auth = "kerberos"\nmetrics = "yes"\n[[webhooks]]\nurl = "gopher://x/"\n')
    assert main(["config", "check", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"docker-registry-wsgi: {bad}: unknown key 'acess-log' (did you mean 'access-log'?)"]
    bad.write_text(bad.read_text().replace("acess-log", "access-log"))
    assert main(["config", "check", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"docker-registry-wsgi: {bad}: port = '5000': expected a whole number from 0 to 65535",
        f"docker-registry-wsgi: {bad}: threads = 0: expected a whole number, at least 1",
        f"docker-registry-wsgi: {bad}: auth = 'kerberos': expected one of none, read-only, htpasswd, token",
        f"docker-registry-wsgi: {bad}: webhooks[0]: webhook 'gopher://x/': url must be an http:// or "
        "https:// URL (ASCII, non-ASCII characters percent-encoded)",
        f"docker-registry-wsgi: {bad}: metrics = 'yes': expected true or false",
    ]


def test_config_check_reports_what_serve_would_refuse_together(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Settings each fine alone but not together, and the files they name, as serve checks them
    at start (without opening the storage)."""
    (tmp_path / "file").write_text("")
    config = _write(tmp_path / "registry.toml", 'storage = "s3"\nauth = "htpasswd"\n'
                    'gc-interval = 1\ngc-grace = 0.5\n[gunicorn]\nworkers = 3\n')
    assert main(["config", "check", str(config)]) == 2
    assert capsys.readouterr().err == f"docker-registry-wsgi: {config}: gunicorn.workers: set by serve; use --workers\n"
    config.write_text(config.read_text().replace("workers = 3", "keepalive = 5"))
    assert main(["config", "check", str(config)], {"GUNICORN_CMD_ARGS": "--keep-alive=soon"}) == 2
    assert capsys.readouterr().err.splitlines() == [
        "docker-registry-wsgi: --storage s3 needs --s3-bucket (or REGISTRY_S3_BUCKET, or s3-bucket in the "
        "configuration file)",
        "docker-registry-wsgi: --htpasswd is required for --auth htpasswd",
        "docker-registry-wsgi: the grace period (1800 s) must be longer than the touch interval (3600 s)",
        "docker-registry-wsgi: GUNICORN_CMD_ARGS: argument --keep-alive: invalid int value: 'soon'",
    ]
    # The environment completes the file, as it would for serve; --ignore-env checks the file alone.
    config.write_text(f'root = "{tmp_path}/file/data"\n')
    assert main(["config", "check", str(config)], {"REGISTRY_ROOT": str(tmp_path / "data")}) == 0
    assert main(["config", "check", "--ignore-env", str(config)], {"REGISTRY_ROOT": str(tmp_path / "data")}) == 2
    assert capsys.readouterr().err.endswith(
        f"{config}: root = '{tmp_path}/file/data': cannot create it: {tmp_path}/file is not a folder\n")


def test_config_check_of_a_missing_or_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err == f"docker-registry-wsgi: --config {tmp_path}/none.toml: no such file\n"
    broken = _write(tmp_path / "broken.toml", "[server\n")
    assert main(["config", "check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"docker-registry-wsgi: {broken}: not valid TOML: ") and err.count("\n") == 1


@pytest.mark.parametrize("setting, why", [
    ("access-rules", "unknown action"),
    ("gc-retention", "keep_last"),
])
def test_malformed_rules_files_exit_2_naming_the_setting(tmp_path: Path, setting: str, why: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    rules = _write(tmp_path / "rules.json", '{"rules": [{"actions": ["fly"]}]}' if setting == "access-rules"
                   else '{"retention": [{"repositories": ["*"], "keep_last": -1}]}')
    assert main(["serve", "--storage", "memory", f"--{setting}", str(rules)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"docker-registry-wsgi: --{setting} {rules}: ") and why in err and err.count("\n") == 1
    config = _write(tmp_path / "registry.toml", f'{setting} = "rules.json"\n')
    assert main(["serve", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith(f"docker-registry-wsgi: {config}: {setting} = 'rules.json': ")


def test_bad_htpasswd_and_root_exit_2_before_anything_starts(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--auth", "htpasswd", "--htpasswd", str(tmp_path / "users")]) == 2
    assert capsys.readouterr().err == f"docker-registry-wsgi: --htpasswd {tmp_path}/users: no such file\n"
    (tmp_path / "file").write_text("")
    assert main(["serve", "--root", str(tmp_path / "file" / "registry")]) == 2
    assert capsys.readouterr().err == (f"docker-registry-wsgi: --root {tmp_path}/file/registry: cannot "
                                       f"create it: {tmp_path}/file is not a folder\n")


def test_gc_purge_and_scrub_read_the_storage_from_the_file(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The commands beside serve take its --config: the same storage, and a mistyped root there
    is refused, naming the key, not made into a new empty registry."""
    root = tmp_path / "registry"
    digest = _old_garbage(root)
    config = _write(tmp_path / "registry.toml", 'root = "registry"\nport = 5000\ntouch-interval = 60\n')
    assert main(["gc", "--config", str(config), "--dry-run", "--quiet", "--grace", "0.1"]) == 0
    assert f"would remove blob {digest}" in capsys.readouterr().out
    assert main(["scrub", "--config", str(config)]) == 0
    assert main(["purge-uploads", "--config", str(config)]) == 0
    capsys.readouterr()
    config.write_text('root = "regsitry"\n')
    for command in ("gc", "purge-uploads", "scrub"):
        assert main([command, "--config", str(config)]) == 2
        assert capsys.readouterr().err == (f"docker-registry-wsgi: {config}: root = '{tmp_path}/regsitry': "
                                           "no such folder\n")
    assert not (tmp_path / "regsitry").exists()


def test_auth_read_only_is_none_and_read_only(tmp_path: Path) -> None:
    """``--auth read-only`` (deprecated) is ``--auth none --read-only``: pulls open, pushes 405."""
    app = webtest.TestApp(build_app(parse(["serve", "--storage", "memory", "--auth", "read-only"])))
    assert app.get("/v2/").status_int == 200
    response = app.post("/v2/lib/app/blobs/uploads/", expect_errors=True)
    assert response.status_int == 405 and response.json["errors"][0]["code"] == "UNSUPPORTED"


HOSTILE = {"REGISTRY_PORT": "abc", "REGISTRY_ACCESS_LOG": "maybe", "REGISTRY_WORKERS": "-1",
           "REGISTRY_CONFIG": "/nonexistent.toml", "REGISTRY_METRICS": "perhaps", "REGISTRY_STORAGE": "floppy",
           "REGISTRY_TOKEN_PUBLIC_KEY": "/no/such.pem", "REGISTRY_HOST": "not a host"}


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run([sys.executable, "-m", "docker_registry_wsgi", *argv], capture_output=True,
                          text=True, timeout=60, env={**clean, **(env or {})},
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_help_works_whatever_the_environment_holds() -> None:
    for argv in (["serve", "--help"], ["gc", "--help"], ["scrub", "--help"], ["--help"],
                 ["config", "check", "--help"]):
        result = _run(*argv, env=HOSTILE)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: docker-registry-wsgi") and result.stderr == ""


def test_bad_settings_in_a_real_process_one_line_each_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in HOSTILE.items() if k != "REGISTRY_CONFIG"}
    result = _run("serve", "--port", "99999", env=env)
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "docker-registry-wsgi: REGISTRY_HOST='not a host': expected a host name, an IPv4 address or an IPv6 address",
        "docker-registry-wsgi: --port 99999: expected a whole number from 0 to 65535",
        "docker-registry-wsgi: REGISTRY_WORKERS='-1': expected a whole number, at least 1",
        "docker-registry-wsgi: REGISTRY_ACCESS_LOG='maybe': expected true or false (or yes/no, on/off, 1/0)",
        "docker-registry-wsgi: REGISTRY_STORAGE='floppy': expected one of filesystem, memory, s3",
        "docker-registry-wsgi: REGISTRY_TOKEN_PUBLIC_KEY='/no/such.pem': no such file",
        "docker-registry-wsgi: REGISTRY_METRICS='perhaps': expected true or false (or yes/no, on/off, 1/0)",
    ]
    result = _run("serve", env={"REGISTRY_CONFIG": str(tmp_path / "missing.toml")})
    assert (result.returncode, result.stderr) == (
        2, f"docker-registry-wsgi: REGISTRY_CONFIG='{tmp_path}/missing.toml': no such file\n")
    rules = _write(tmp_path / "rules.toml", "[[rules]\n")
    result = _run("serve", "--storage", "memory", "--auth", "htpasswd", "--htpasswd", str(rules),
                  "--access-rules", str(rules))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"docker-registry-wsgi: --access-rules {rules}: ")
    assert result.stderr.count("\n") == 1


def test_gc_and_purge_write_their_textfiles(tmp_path: Path) -> None:
    """``--metrics-textfile`` (docs/operations.rst, "Garbage collection and purges")."""
    root = tmp_path / "registry"
    _old_garbage(root)
    gc_file, purge_file = tmp_path / "gc.prom", tmp_path / "purge.prom"
    assert main(["gc", "--root", str(root), "--quiet", "--metrics-textfile", str(gc_file), "--dry-run"]) == 0
    assert not gc_file.exists()  # a dry run writes nothing
    assert main(["gc", "--root", str(root), "--quiet"], {"REGISTRY_GC_METRICS_TEXTFILE": str(gc_file)}) == 0
    assert "registry_gc_last_run_freed_blobs 1.0" in gc_file.read_text()
    assert main(["purge-uploads", "--root", str(root), "--metrics-textfile", str(purge_file)]) == 0
    assert "registry_purge_last_run_cancelled_uploads 0.0" in purge_file.read_text()
