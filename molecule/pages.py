"""The one HTML page outside the admin: ``/``, a signpost to the admin, /metrics and the API."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, URLResolver, get_resolver

from molecule.http.responses import api_view

# Routes that are not the workspace API: the page links to them itself, or they are Django's.
NOT_API = ("admin/", "metrics", "internal/auth", "")


def _routes(patterns: list[URLPattern | URLResolver], prefix: str = "") -> list[str]:
    routes: list[str] = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern) not in NOT_API:
                routes.extend(_routes(pattern.url_patterns, route))
        elif str(pattern.pattern) not in NOT_API:
            routes.append("/" + route.replace("<str:", "<"))
    return routes


@api_view("GET", "HEAD")
def home(request: HttpRequest) -> HttpResponse:
    """List the API's routes (read from the URL configuration, so the list cannot go stale)."""
    return render(request, "molecule/home.html", {"routes": _routes(get_resolver().url_patterns)})
