"""The site's URLs. /v2/ is not among them: wsgi.py mounts the registry in front of Django."""

from django.contrib.auth import views as auth_views
from django.urls import path

from hub import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
