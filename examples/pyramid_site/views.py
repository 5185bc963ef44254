"""The site's pages: a home page and a session login, none of which knows about the registry."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response

from .users import UserStore

PAGE = "<!doctype html><title>Pyramid site</title><h1>Pyramid site</h1>{body}"


def users(request: Request) -> UserStore:
    return UserStore(request.registry.settings["site.users_file"])


def home(request: Request) -> Response:
    name = request.session.get("user")
    who = f"<p>Signed in as {name}. <a href='/logout'>Sign out</a></p>" if name else "<p><a href='/login'>Sign in</a></p>"
    return Response(PAGE.format(body=who + f"<p>Registry: <code>docker login {request.host}</code></p>"))


def login(request: Request) -> Any:
    error = ""
    if request.method == "POST":
        user = users(request).check_password(request.POST.get("username", ""), request.POST.get("password", ""))
        if user is not None:
            request.session["user"] = user.name
            return HTTPFound(location=request.route_url("home"))
        error = "<p>Wrong username or password.</p>"
    form = "<form method='post'><input name='username'> <input name='password' type='password'> <button>Sign in</button></form>"
    return Response(PAGE.format(body=error + form))


def logout(request: Request) -> HTTPFound:
    request.session.invalidate()
    return HTTPFound(location=request.route_url("home"))


def not_found(request: Request) -> Response:
    return Response(PAGE.format(body="<p>This site has no such page.</p>"), status=404)


def includeme(config: Configurator) -> None:
    config.add_route("home", "/")
    config.add_route("login", "/login")
    config.add_route("logout", "/logout")
    config.add_view(home, route_name="home")
    config.add_view(login, route_name="login")
    config.add_view(logout, route_name="logout")
    config.add_notfound_view(not_found)
