"""The registry as a plain WSGI application, served by any WSGI server.

    gunicorn -k gthread --threads 8 -b 127.0.0.1:5000 examples.standalone:application

Environment: ``REGISTRY_ROOT`` (default ``./registry-data``).
"""

import os

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import FilesystemStorage

application = Registry(storage=FilesystemStorage(os.environ.get("REGISTRY_ROOT", "./registry-data")))
