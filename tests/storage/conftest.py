"""Fixtures of the storage tests: a real SeaweedFS for the S3 backend.

The SeaweedFS fixtures live in the plugin module :mod:`tests.support.seaweedfs` (so that other
folders, e.g. the scale-out tests, can use the same server); they are imported here.
"""

from __future__ import annotations

from tests.support.seaweedfs import s3_bucket, seaweedfs  # noqa: F401 - pytest fixtures

__all__ = ["s3_bucket", "seaweedfs"]
