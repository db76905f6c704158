"""Debian's nginx running the shipped deploy/nginx config, rendered for a test port and upstream."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from devtools.processes.commands import BASE_DIR, Lifecycle, stop_processes
from devtools.processes.probes import free_port
from devtools.processes.procfs import process_children, process_open_file_bytes, process_rss_bytes

SITE_CONF = BASE_DIR / "deploy" / "nginx" / "molecule-uploads.conf"
# The shipped file's deployment-specific lines, each present exactly once.
SHIPPED_LISTEN_TLS = "listen 443 ssl;"
SHIPPED_LISTEN_PLAIN = "listen 80;"
SHIPPED_LISTEN_PRIVATE = "listen 127.0.0.1:8081;"
SHIPPED_UPSTREAM = "server 127.0.0.1:8000;"
SHIPPED_CERT = "/etc/ssl/certs/molecule-uploads.pem"
SHIPPED_KEY = "/etc/ssl/private/molecule-uploads.key"

MAIN_CONF = """\
{user}worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/molecule-uploads.conf;
}}
"""


def nginx_binary() -> str | None:
    """Path of the nginx executable (Debian puts it in /usr/sbin), or None when not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def site_render(
    *, tls_port: int, plain_port: int, private_port: int, upstream: str, cert: Path, key: Path
) -> str:
    """The shipped site config with its ports, upstream and certificate swapped for these."""
    text = SITE_CONF.read_text()
    for shipped, ours in (
        (SHIPPED_LISTEN_TLS, f"listen 127.0.0.1:{tls_port} ssl;"),
        (SHIPPED_LISTEN_PLAIN, f"listen 127.0.0.1:{plain_port};"),
        (SHIPPED_LISTEN_PRIVATE, f"listen 127.0.0.1:{private_port};"),
        (SHIPPED_UPSTREAM, f"server {upstream};"),
        (SHIPPED_CERT, str(cert)),
        (SHIPPED_KEY, str(key)),
    ):
        if text.count(shipped) != 1:
            raise ValueError(f"{SITE_CONF.name} should hold {shipped!r} exactly once")
        text = text.replace(shipped, ours)
    return text


def site_conn_limit(zone: str) -> int:
    """The shipped config's ``limit_conn <zone> N``: requests in progress per client address."""
    (limit,) = re.findall(
        rf"^\s*limit_conn\s+{re.escape(zone)}\s+(\d+);", SITE_CONF.read_text(), re.M
    )
    return int(limit)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost/127.0.0.1, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def client_tls_context(cert: Path) -> ssl.SSLContext:
    """A client context that trusts exactly the proxy's throwaway certificate."""
    return ssl.create_default_context(cafile=str(cert))


class NginxProxy(Lifecycle):
    """nginx with the shipped site config in front of ``upstream`` (host:port), on loopback."""

    def __init__(self, upstream: str, *, root: Path | None = None) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
        self.binary = binary
        self.upstream = upstream
        self._owns_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="nginx-"))
        self.tls_port = free_port()
        self.plain_port = free_port()
        # The operators' server (the admin and /metrics), plain HTTP.
        self.private_port = free_port()
        self.cert = self.root / "cert.pem"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    def start(self, timeout: float = 10.0) -> NginxProxy:
        self.root.mkdir(parents=True, exist_ok=True)
        # nginx's workers run as an unprivileged user when started by root: let them in.
        self.root.chmod(0o755)
        self.cert, key = self_signed_certificate(self.root)
        site = site_render(
            tls_port=self.tls_port,
            plain_port=self.plain_port,
            private_port=self.private_port,
            upstream=self.upstream,
            cert=self.cert,
            key=key,
        )
        (self.root / "molecule-uploads.conf").write_text(site)
        # Running as root, workers would switch to "nobody", who cannot read the key.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = self.root / "nginx.conf"
        conf.write_text(MAIN_CONF.format(user=user, root=self.root))
        error_log = str(self.root / "error.log")
        self.process = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.root),
                "-c",
                str(conf),
                "-e",
                error_log,
                "-g",
                "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                stderr = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(
                    f"nginx exited with {self.process.returncode}: {stderr}{self.error_log()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1),
            ):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"nginx did not listen within {timeout:.0f} s\n{self.error_log()}"
                )
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        return process_children(self.process.pid) if self.process is not None else []

    def temp_file_bytes(self, area: str) -> int:
        """Bytes nginx's workers now hold in temporary files of ``area``: client_body, proxy."""
        return sum(process_open_file_bytes(pid, self.root / area) for pid in self.worker_pids())

    def workers_rss_bytes(self) -> int:
        return sum(process_rss_bytes(pid) or 0 for pid in self.worker_pids())

    def error_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "error.log").read_text(errors="replace")
        return ""

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], grace=5.0)
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
