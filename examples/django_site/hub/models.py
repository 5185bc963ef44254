"""The registry's permissions, as Django permissions the admin can grant to users and groups."""

from django.db import models


class RegistryAccess(models.Model):
    """No table: a holder for the registry permissions (settings.DOCKER_REGISTRY)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("pull_image", "Can pull images from the registry"),
            ("push_image", "Can push images to the registry"),
            ("delete_image", "Can delete images from the registry"),
        ]
