"""An example Pyramid site with its own users, and a container registry at /v2/ for them.

Run it (from the ``examples`` folder)::

    python -m pyramid_site --file pyramid_site/users.json add alice --group publishers
    PYTHONPATH=. pserve pyramid_site/site.ini
    # or: gunicorn -k gthread --threads 8 -b 127.0.0.1:6543 --paste pyramid_site/site.ini

The registry's settings are the ``docker_registry.*`` lines of ``site.ini``; the password check
and the groups come from the site's own user file (``site.users_file``), through the factory
named by ``docker_registry.auth``.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.router import Router
from pyramid.session import SignedCookieSessionFactory

from . import views


def main(global_config: dict[str, Any], **settings: Any) -> Router:
    """The PasteDeploy app factory (``use = call:pyramid_site:main`` in ``site.ini``)."""
    with Configurator(settings=settings) as config:
        config.set_session_factory(SignedCookieSessionFactory(settings["site.secret"]))
        config.include(views.includeme)
        config.include("docker_registry_wsgi.contrib.pyramid")
        return config.make_wsgi_app()
