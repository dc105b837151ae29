"""Real network parts for the proxy and TLS tests: a tinyproxy on loopback, and certificates.

tinyproxy (Debian's package; ``.ci/run`` installs it) runs as a subprocess on a free loopback
port with its own configuration and log; the tests read its log to see what it was asked to
carry (``CONNECT 127.0.0.1:port`` for a tunnel, ``POST http://...`` for a forwarded request).
Certificates come from ``trustme``: a throw-away CA, and a server certificate for 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from .fleet_support import wait_until

PROXY_USER = "tester"
PROXY_PASSWORD = "pw-proxy-5e7b1c"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class TinyProxy:
    """A running tinyproxy: ``url`` (with the login when it asks for one) and its ``log``."""

    port: int
    log_path: Path
    login: bool

    @property
    def url(self) -> str:
        auth = f"{PROXY_USER}:{PROXY_PASSWORD}@" if self.login else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def requests(self) -> list[str]:
        """The request lines the proxy received (``CONNECT host:port HTTP/1.1``, ...)."""
        marker = "): "
        return [
            line.split(marker, 1)[1]
            for line in self.log().splitlines()
            if "Request (file descriptor" in line and marker in line
        ]

    def saw(self, start: str) -> bool:
        """Whether a request line starting with ``start`` reached the proxy."""
        return any(line.startswith(start) for line in self.requests())


@contextmanager
def tinyproxy(directory: Path, *, login: bool = False) -> Iterator[TinyProxy]:
    """Run tinyproxy on a free loopback port until the block ends."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    port = free_port()
    log_path = directory / f"tinyproxy-{port}.log"
    log_path.touch()
    config = directory / f"tinyproxy-{port}.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        f'LogFile "{log_path}"',
        "LogLevel Info",
        "MaxClients 50",
        "Allow 127.0.0.1",
        "DisableViaHeader Yes",
    ]
    if login:
        lines.append(f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}")
    config.write_text("\n".join(lines) + "\n")
    proxy = TinyProxy(port, log_path, login)
    with subprocess.Popen(
        [binary, "-d", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as process:
        try:
            wait_until(
                lambda: "Accepting connections" in proxy.log() or process.poll() is not None,
                timeout=10.0,
                what="tinyproxy to listen",
            )
            assert process.poll() is None, f"tinyproxy exited: {proxy.log()[-2000:]}"
            yield proxy
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@dataclass(frozen=True)
class Certificates:
    """A CA the tests trust, a server context signed by it, and the CA as a bundle file."""

    server: ssl.SSLContext
    ca_bundle: Path

    def client(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))


def certificates(directory: Path) -> Certificates:
    """A fresh CA and a certificate for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    bundle = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return Certificates(server, bundle)
