"""Start (or reuse) the embedded PostgreSQL that ``pgserver`` ships, for machines without one."""

import logging
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be started."""


def embedded_database_url(data_dir: Path, *, stop_on_exit: bool = True) -> str:
    """Return a libpq URI for a server on ``data_dir``, starting one if none runs there.

    With ``stop_on_exit`` the server stops when the last process holding a handle exits;
    a server that another process started keeps running while that process lives.
    """
    data_dir = Path(data_dir).resolve()
    # pg_ctl's "-o -k <dir>" arguments are not quoted by pgserver, so a space breaks startup.
    if " " in str(data_dir):
        raise EmbeddedPostgresError(
            f"the embedded PostgreSQL data directory may not contain a space: {data_dir}"
        )
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback in /tmp is fine.
        warnings.simplefilter("ignore")
        import pgserver

        try:
            server = pgserver.get_server(data_dir, cleanup_mode="stop" if stop_on_exit else None)
        except Exception as exc:
            raise EmbeddedPostgresError(
                f"could not start the embedded PostgreSQL in {data_dir}: {exc}"
            ) from exc
    return server.get_uri()
