"""The site's pages: a home page and a session login, none of which knows about the registry."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template_string, request, session, url_for
from werkzeug.wrappers import Response

from .users import check_password, find_user

pages = Blueprint("pages", __name__)

HOME = """<!doctype html>
<title>Flask site</title>
<h1>Flask site</h1>
{% if user %}<p>Signed in as {{ user.name }} ({{ user.role }}). <a href="{{ url_for('pages.logout') }}">Sign out</a></p>
{% else %}<p><a href="{{ url_for('pages.login') }}">Sign in</a></p>{% endif %}
<p>Registry: <code>docker login {{ request.host }}</code> with your site password.</p>
"""

LOGIN = """<!doctype html>
<title>Sign in</title>
{% if error %}<p>{{ error }}</p>{% endif %}
<form method="post"><input name="username"> <input name="password" type="password"> <button>Sign in</button></form>
"""


@pages.route("/")
def home() -> str:
    name = session.get("user")
    return render_template_string(HOME, user=find_user(name) if name else None)


@pages.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    if request.method == "POST":
        user = check_password(request.form.get("username", ""), request.form.get("password", ""))
        if user is not None:
            session["user"] = user.name
            return redirect(url_for("pages.home"))
        return render_template_string(LOGIN, error="Wrong username or password.")
    return render_template_string(LOGIN, error=None)


@pages.route("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("pages.home"))


@pages.app_errorhandler(404)
def not_found(error: Exception) -> tuple[str, int]:
    return "<!doctype html><title>Not found</title><p>This site has no such page.</p>", 404
