"""HTTP helpers of the scale-out tests: requests spread over several registry processes."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import threading
from typing import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from tests.support.servers import RegistryServer

__all__ = ["Hosts", "PART_SIZE", "sha256", "registry_logs"]

#: S3's smallest part: uploads of a few MiB already span several parts.
PART_SIZE = 5 * 1024 * 1024


class Hosts:
    """HTTP requests to a set of registries, round robin (or to a chosen one) per request."""

    def __init__(self, hostports: Iterable[str]) -> None:
        self.hostports = list(hostports)
        self._cycle = itertools.cycle(range(len(self.hostports)))
        self._lock = threading.Lock()

    def pick(self) -> int:
        with self._lock:
            return next(self._cycle)

    def request(
        self,
        method: str,
        target: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        host: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request to registry ``host`` (next in turn if ``None``); return status, headers, body.

        ``target`` may be a path or an absolute URL (a ``Location``): only its path and query count.
        """
        parts = urlsplit(target)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        index = self.pick() if host is None else host
        connection = http.client.HTTPConnection(*self._address(index), timeout=60)
        try:
            chunked = body is not None and not isinstance(body, (bytes, bytearray))
            connection.request(method, path, body=body, headers=dict(headers or {}), encode_chunked=chunked)
            response = connection.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            connection.close()

    def _address(self, index: int) -> tuple[str, int]:
        host, _, port = self.hostports[index].rpartition(":")
        return host, int(port)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def registry_logs(registries: Sequence[RegistryServer]) -> str:
    """The end of each registry's log, for assertion messages."""
    return "\n".join(f"--- {s.hostport} ---\n{s.log_text()[-4000:]}" for s in registries)
