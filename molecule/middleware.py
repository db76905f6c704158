"""JSON answers where Django would send a page: a lost database or a statement over
DB_STATEMENT_TIMEOUT (503), an unknown URL (404)."""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from molecule.http import json_error

logger = logging.getLogger(__name__)

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
