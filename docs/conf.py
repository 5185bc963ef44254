"""Sphinx configuration."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "docker-registry-wsgi"
author = "docker-registry-wsgi developers"
copyright = "2026, docker-registry-wsgi developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
exclude_patterns = ["_build"]
# Defaults as written (RouteTable(routes=ROUTES)), not as the repr of their value.
autodoc_preserve_defaults = True
html_theme = "alabaster"
nitpicky = True
# The build is offline (no intersphinx): names from the standard library and third-party
# packages that annotations mention are not link targets.
nitpick_ignore_regex = [
    ("py:(class|exc|func|meth|obj|data|mod)", r"(argparse|logging|os|datetime|concurrent\.futures|hmac|"
     r"threading|http|io|socket|ssl|typing|collections\.abc|pathlib|werkzeug|prometheus_client|"
     r"flask|pyramid|django|botocore|gunicorn)\..*"),
    ("py:mod", r"ast"),
    ("py:class", r"CollectorRegistry|Flask|WSGIEnvironment|StartResponse|Request|PrivateKey"),
    # Type aliases and private helpers that annotations name (autodoc shows the name only).
    ("py:class", r"(docker_registry_wsgi\.\S*\.)?(WSGIApp|Handler|PolicyFunction|Progress|Happened|"
     r"_\w+|T|'RepositoryPlan')"),
    # Methods and attributes named from inside their class that have no docstring of their own.
    ("py:meth", r"load|read"),
    ("py:attr", r"event|reached"),
]



def _resolve_short_names(app, env, node, contnode):
    """Docstrings name objects as their module sees them (``KeyNotFound``, ``base.check_key``):
    resolve such a name to the one documented object whose full name ends with it."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    domain = env.get_domain("py")
    found = {}
    for name, entry in domain.objects.items():
        if name == target or name.endswith("." + target):
            found.setdefault((entry.docname, entry.node_id), name)
    # A package's re-export (docker_registry_wsgi.Registry, proxy.Mirror.from_mapping): the
    # longest tail of the name that one documented object ends with.
    parts = target.split(".")
    for start in range(1, len(parts)):
        if found:
            break
        tail = ".".join(parts[start:])
        for name, entry in domain.objects.items():
            if name.endswith("." + tail) and entry.objtype != "module":
                found.setdefault((entry.docname, entry.node_id), name)
    if len(found) != 1:
        return None
    (name,) = found.values()
    return domain.resolve_xref(env, node.get("refdoc"), app.builder, node["reftype"], name,
                               node, contnode)


def setup(app):
    app.connect("missing-reference", _resolve_short_names)
