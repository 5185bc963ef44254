"""The auth hook protocol and the schemes that implement it."""

from .base import DELETE, PULL, PUSH, Access, AccessPolicy, AllowAll, Auth, ReadOnly

__all__ = ["Access", "AccessPolicy", "AllowAll", "Auth", "ReadOnly", "PULL", "PUSH", "DELETE"]
