"""An example Flask site with its own users, and a container registry at /v2/ for them.

Run it (from the ``examples`` folder)::

    flask --app flask_site add-user alice --role publisher      # asks for a password
    gunicorn -k gthread --threads 8 -b 127.0.0.1:8000 'flask_site:create_app()'
    skopeo copy --dest-creds alice:PASSWORD --dest-tls-verify=false \\
        oci:./layout:v1 docker://127.0.0.1:8000/alice/demo:v1

Configuration comes from ``app.config``, and so from ``FLASK_*`` environment variables:
``FLASK_SITE_DATABASE`` (the users' SQLite file), ``FLASK_DOCKER_REGISTRY_ROOT`` (the registry's
folder), ``FLASK_SECRET_KEY``. Both files default to the Flask instance folder.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from flask import Flask

from docker_registry_wsgi.auth.basic import BasicAuth
from docker_registry_wsgi.auth.credentials import CachedPasswordCheck
from docker_registry_wsgi.contrib.flask import DockerRegistry

from . import users, views

registry = DockerRegistry()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The site: pages, the users' database and the registry, configured from the environment."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY="dev only: set FLASK_SECRET_KEY",
        SITE_DATABASE=os.path.join(app.instance_path, "users.sqlite3"),
        DOCKER_REGISTRY_ROOT=os.path.join(app.instance_path, "registry-data"),
    )
    app.config.from_prefixed_env()
    if config:
        app.config.update(config)
    os.makedirs(os.path.dirname(os.path.abspath(app.config["SITE_DATABASE"])), exist_ok=True)

    users.init_app(app)
    app.register_blueprint(views.pages)
    # The site's own password check and roles decide who may pull and push. Clients send the
    # password with every request; remembering a good one for a minute spares the slow hash.
    check = CachedPasswordCheck(users.check_password, ttl=60)
    registry.init_app(app, auth=BasicAuth(check, policy=users.RolePolicy(), realm="flask site"))
    return app
