"""Drive real registry clients in tests, keeping a transcript of what they sent and got.

- :class:`Skopeo`: the ``skopeo`` command (containers/image) against a plain-HTTP registry.
- :class:`OrasClient`: an ``oras.provider.Registry`` (oras-py) plus the registry's host:port.
- :func:`requests_in`: the HTTP requests containers/image logged with ``--debug``.

Each keeps a ``transcript`` list (commands, exit codes, output; or requests and responses)
that the e2e conftest adds to the report of a failing test.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClientError", "Skopeo", "OrasClient", "requests_in"]


class ClientError(AssertionError):
    """A client command or request failed; the message holds what was sent and received."""


@dataclass
class Skopeo:
    """Run skopeo against a plain-HTTP registry, keeping a transcript for the test report.

    Every command gets ``--insecure-policy`` (no dependence on the machine's policy.json),
    ``--debug`` (each HTTP request skopeo makes is logged as ``<METHOD> <URL>``, which the tests
    read, e.g. to see a cross-repository mount) and ``--command-timeout``. TLS verification is
    off for the registry side (``--tls-verify=false`` / ``--src-/--dest-tls-verify=false``),
    which also lets containers/image fall back from https to http.
    """

    path: str
    hostport: str
    transcript: list[str] = field(default_factory=list)
    timeout: int = 180

    def docker(self, repository: str, reference: str = "") -> str:
        """``docker://<host:port>/<repository>[:tag|@digest]``."""
        sep = "" if not reference else ("@" if ":" in reference and reference.startswith("sha") else ":")
        return f"docker://{self.hostport}/{repository}{sep}{reference}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``skopeo <global options> <args>``; raise :class:`ClientError` on failure if ``check``."""
        command = [self.path, "--insecure-policy", "--debug", f"--command-timeout={self.timeout}s", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout + 30)
        self.transcript.append(f"$ {' '.join(command)}\n[exit {result.returncode}]\n"
                               f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")
        if check and result.returncode != 0:
            raise ClientError(f"skopeo {' '.join(args)} exited {result.returncode}:\n{result.stderr[-6000:]}")
        return result

    def copy(self, source: str, destination: str, *options: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``skopeo copy`` with TLS verification off on both sides."""
        return self.run("copy", "--src-tls-verify=false", "--dest-tls-verify=false", *options,
                        source, destination, check=check)

    def inspect_raw(self, reference: str, *options: str) -> bytes:
        """``skopeo inspect --raw``: the manifest bytes as served (skopeo prints them unchanged)."""
        result = subprocess.run(
            [self.path, "--insecure-policy", "inspect", "--tls-verify=false", "--raw", *options, reference],
            capture_output=True, timeout=self.timeout,
        )
        self.transcript.append(f"$ skopeo inspect --raw {' '.join(options)} {reference}\n[exit {result.returncode}]\n"
                               f"{result.stderr.decode(errors='replace')}")
        if result.returncode != 0:
            raise ClientError(f"skopeo inspect --raw {reference} exited {result.returncode}:\n"
                              f"{result.stderr.decode(errors='replace')}")
        return result.stdout

    def inspect(self, reference: str, *options: str) -> dict[str, Any]:
        """``skopeo inspect`` (parsed JSON)."""
        return json.loads(self.run("inspect", "--tls-verify=false", *options, reference).stdout)

    def list_tags(self, repository: str) -> list[str]:
        """``skopeo list-tags`` of ``repository`` on the registry."""
        out = json.loads(self.run("list-tags", "--tls-verify=false", self.docker(repository)).stdout)
        return list(out["Tags"])

    def delete(self, reference: str) -> subprocess.CompletedProcess[str]:
        """``skopeo delete`` (containers/image resolves a tag to its digest, then deletes by digest)."""
        return self.run("delete", "--tls-verify=false", reference)


def requests_in(debug_output: str) -> list[str]:
    """The ``<METHOD> <URL>`` lines containers/image logs with ``--debug``, in order."""
    found = []
    for line in debug_output.splitlines():
        marker = 'msg="'
        if "level=debug" in line and marker in line:
            message = line.split(marker, 1)[1].rstrip('"')
            method, _, rest = message.partition(" ")
            if method in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} and rest.startswith("http"):
                found.append(f"{method} {rest}")
    return found


@dataclass
class OrasClient:
    """An oras-py client over plain HTTP, with every request and response kept for reports."""

    client: Any
    hostport: str
    transcript: list[str]

    def target(self, repository: str, tag: str) -> str:
        """``<host:port>/<repository>:<tag>`` as oras-py takes it."""
        return f"{self.hostport}/{repository}:{tag}"
