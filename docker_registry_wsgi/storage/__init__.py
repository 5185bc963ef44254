"""Storage backends and the protocol they implement."""

from .base import (
    BlobReader,
    InvalidKey,
    KeyNotFound,
    Storage,
    StorageError,
    StorageFull,
    StorageUnavailable,
    UploadConflict,
    UploadInfo,
    UploadState,
    VersionConflict,
    check_key,
    check_upload_id,
)
from .filesystem import FilesystemStorage
from .memory import MemoryStorage

__all__ = [
    "BlobReader",
    "FilesystemStorage",
    "InvalidKey",
    "KeyNotFound",
    "MemoryStorage",
    "Storage",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "UploadConflict",
    "UploadInfo",
    "UploadState",
    "VersionConflict",
    "check_key",
    "check_upload_id",
]


def __getattr__(name: str) -> object:
    # S3Storage needs the optional boto3; import it only when asked for.
    if name == "S3Storage":
        from .s3 import S3Storage

        return S3Storage
    raise AttributeError(name)
