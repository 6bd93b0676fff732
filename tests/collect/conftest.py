"""Fixtures for the collect tests: a local HTTP server, a TLS proxy in front of it, a test certificate."""

from __future__ import annotations

import pytest

from collect_helpers import FakeServer, InterceptingProxy


@pytest.fixture
def server():
    fake = FakeServer()
    fake._thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """A throwaway self-signed certificate (the proxied client runs with verify=False)."""
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@pytest.fixture
def proxy(server, tls_cert):
    fake = InterceptingProxy(server, *tls_cert)
    fake._thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
