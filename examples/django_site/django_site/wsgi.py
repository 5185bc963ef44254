"""The site's WSGI application, with the registry of ``settings.DOCKER_REGISTRY`` at /v2/.

Serve it with ``gunicorn -k gthread --threads 8 -b 127.0.0.1:8000 django_site.wsgi``
(from the folder of ``manage.py``).
"""

import os

from django.core.wsgi import get_wsgi_application

from docker_registry_wsgi.contrib.django import with_registry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.settings")

application = with_registry(get_wsgi_application())
