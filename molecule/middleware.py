"""The API's own middleware chain, and JSON answers where Django would send a page: a lost
database or a statement over DB_STATEMENT_TIMEOUT (503), an unknown URL (404)."""

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from molecule.http.responses import json_error

logger = logging.getLogger(__name__)

# The API's routes (docs/api.md): bearer-token JSON endpoints. None of them reads a session, a
# cookie, a CSRF token, a message or request.user, and none serves a static file.
API_PATH_PREFIXES = ("/registry/", "/workspaces/", "/uploads/limits")

# What API requests skip; none of it changes an API answer. The admin's: the API views are
# CSRF-exempt and touch no session, message or user, so no cookie or Vary is ever added, and
# serve no static file; django-axes only watches the admin's logins. And django-prometheus'
# per-view, per-method and per-status request metrics (a dozen labelled series updated per
# request, about 0.1 ms of CPU in multiprocess mode, a sixth of a poll): API requests are
# still counted and timed, before the other middleware, by PrometheusBeforeMiddleware
# (docs/metrics.md).
SKIPPED_FOR_API = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "axes.middleware.AxesMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    }
)


class ApiHandler(BaseHandler):
    """Django's request handling with its own middleware list (BaseHandler.load_middleware,
    for synchronous middleware): the API's chain."""

    def __init__(self, middleware: list[str]) -> None:
        super().__init__()
        self._view_middleware: list = []
        self._template_response_middleware: list = []
        self._exception_middleware: list = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(middleware):
            try:
                instance = import_string(path)(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


class ApiRoutingMiddleware:
    """First in MIDDLEWARE: API routes continue through the rest of MIDDLEWARE less
    SKIPPED_FOR_API, in the same order; every other path through all of it.

    A second chain rather than a WSGI-level shortcut, so the test client takes the path
    production takes. The admin keeps its sessions, CSRF, messages and login.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        rest = settings.MIDDLEWARE[settings.MIDDLEWARE.index(_THIS) + 1 :]
        self.api_middleware = [path for path in rest if path not in SKIPPED_FOR_API]
        self.api = ApiHandler(self.api_middleware)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PATH_PREFIXES):
            return self.api._middleware_chain(request)
        return self.get_response(request)


_THIS = f"{__name__}.{ApiRoutingMiddleware.__name__}"

# PostgreSQL's query_canceled: statement_timeout fired (or an operator cancelled the query).
QUERY_CANCELED = "57014"


def is_statement_timeout(exception: BaseException) -> bool:
    cause = exception.__cause__
    return getattr(cause, "sqlstate", None) == QUERY_CANCELED


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        if is_statement_timeout(exception):
            # The session stays usable: autocommit requests have nothing to roll back, and an
            # atomic block has already been rolled back on its way out.
            logger.warning("statement timeout for %s %s", request.method, request.path)
            response = json_error(503, "the database statement took too long, retry later")
        else:
            logger.warning(
                "database unavailable for %s %s: %s", request.method, request.path, exception
            )
            response = json_error(503, "database unavailable, retry later")
        response["Retry-After"] = "5"
        return response


class JsonNotFoundMiddleware:
    """Answer JSON 404s with DEBUG on too (bin/run), as handler404 does with DEBUG off.

    With DEBUG on, Django answers an unknown URL with its HTML technical page before any
    handler runs; API clients of a development server must see the same body as production.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Django's pages are never streamed; a streamed 404 is a workspace's answer, relayed
        # as it came (push mode), and replacing it would also leave it unclosed.
        if (
            response.status_code == 404
            and not response.streaming
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return json_error(404, "not found")
        return response
