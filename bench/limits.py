"""The machine's own limits, measured in the same run as the servers: what no server can beat.

A push cannot be faster than hashing its bytes (sha256) and writing them durably (write +
fsync); a pull cannot be faster than a static file server on the same loopback (nginx).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

__all__ = ["sha256_rate", "disk_write_fsync_rate", "random_block"]

BLOCK = 1 << 20


def random_block(size: int) -> bytes:
    """``size`` random bytes (incompressible, so no layer of the stack can shortcut them)."""
    return os.urandom(size)


def sha256_rate(total: int, block: int = BLOCK) -> float:
    """MB/s of hashlib.sha256 over ``total`` bytes fed in ``block``-sized pieces."""
    data = memoryview(random_block(min(total, 64 * BLOCK)))
    h = hashlib.sha256()
    started = time.perf_counter()
    done = 0
    while done < total:
        for offset in range(0, len(data), block):
            piece = data[offset:offset + block]
            h.update(piece)
            done += len(piece)
            if done >= total:
                break
    h.hexdigest()
    return total / (time.perf_counter() - started) / 1e6


def disk_write_fsync_rate(folder: Path, total: int, block: int = BLOCK) -> float:
    """MB/s of writing ``total`` bytes to a new file in ``folder`` and fsyncing it."""
    data = random_block(block)
    path = folder / "disk-limit.bin"
    os.sync()  # write back earlier work first, so that it is not charged to this measurement
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        written = 0
        while written < total:
            written += os.write(fd, data[: min(block, total - written)])
        os.fsync(fd)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink()
    return total / elapsed / 1e6
