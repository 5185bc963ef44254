"""The site's home page; it knows nothing of the registry."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "hub/home.html")
