"""An S3 server for the tests and the bench: moto_server on a free port, or the one named by
AWS_ENDPOINT_URL_S3 (an operator's MinIO), with the environment boto3 reads to reach it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devtools.processes.commands import Lifecycle, stop_processes
from devtools.processes.probes import free_port

# moto accepts any credentials; a real server named by the environment brings its own.
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "molecule-test",
    "AWS_SECRET_ACCESS_KEY": "molecule-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server(Lifecycle):
    """``with S3Server() as s3:`` then ``s3.env`` holds AWS_ENDPOINT_URL_S3 and credentials."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def start(self, timeout: float = 30.0) -> S3Server:
        given = os.environ.get("AWS_ENDPOINT_URL_S3")
        if given:
            self.env = {"AWS_ENDPOINT_URL_S3": given}
            return self
        port = free_port()
        moto = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while not _answers(endpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto_server did not answer on {endpoint}")
            time.sleep(0.1)
        self.env = {"AWS_ENDPOINT_URL_S3": endpoint, **MOTO_CREDENTIALS}
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], grace=5)
            self.process = None


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
