"""A missing optional dependency is one line naming the extra to install, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: (module made unimportable, what to run, the extra the message must name)
CASES = [
    ("bcrypt", "import docker_registry_wsgi.auth.htpasswd", "auth"),
    ("jwt", "import docker_registry_wsgi.auth.token", "auth"),
    ("jwt", "import docker_registry_wsgi.auth.issuer", "auth"),
    ("boto3", "from docker_registry_wsgi.storage.s3 import S3Storage; "
              "S3Storage('bucket', endpoint_url='http://127.0.0.1:9').client", "s3"),
]


def run(missing: str, code: str) -> subprocess.CompletedProcess[str]:
    program = f"import sys; sys.modules[{missing!r}] = None\n{code}"
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


@pytest.mark.parametrize("missing, code, extra", CASES, ids=[c[1][:40] for c in CASES])
def test_import_names_the_extra(missing: str, code: str, extra: str) -> None:
    result = run(missing, code)
    assert result.returncode != 0
    assert f"pip install 'docker-registry-wsgi[{extra}]'" in result.stderr
    assert "MissingExtra" in result.stderr  # an ImportError subclass, for library callers


@pytest.mark.parametrize("missing, argv, extra", [
    ("bcrypt", ["serve", "--auth", "htpasswd", "--htpasswd", "users"], "auth"),
    ("jwt", ["serve", "--auth", "token", "--token-signing-key", "key.pem"], "auth"),
    ("gunicorn", ["serve", "--storage", "memory"], "server"),
])
def test_serve_without_an_extra_is_one_line(missing: str, argv: list[str], extra: str, tmp_path: Path) -> None:
    result = run(missing, f"from docker_registry_wsgi.cli import main; sys.exit(main({argv!r}))")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("docker-registry-wsgi: ")
    assert f"pip install 'docker-registry-wsgi[{extra}]'" in lines[-1]
    assert "Traceback" not in result.stderr


def test_server_extra_brings_every_serve_option() -> None:
    """``pip install docker-registry-wsgi[server]`` makes every ``serve`` option work."""
    from importlib.metadata import requires

    wanted = {r.split(";")[0].replace(" ", "") for r in requires("docker-registry-wsgi") or []
              if 'extra=="server"' in r.replace(" ", "")}
    assert "docker-registry-wsgi[auth,s3]" in wanted and any(w.startswith("gunicorn") for w in wanted)
