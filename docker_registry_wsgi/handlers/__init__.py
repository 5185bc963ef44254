"""HTTP handlers, one module per endpoint group: each reads a request, asks the content layer, and answers.

Registry rules (mounts, uploads, manifest limits) live in :mod:`~docker_registry_wsgi.content`;
no handler reaches the storage or its key layout.
"""
