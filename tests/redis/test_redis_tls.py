"""TLS connections (``rediss://``) to a redis-server started by the test.

The test makes a CA, a server certificate for 127.0.0.1 and a client
certificate with the openssl command, and starts redis-server with a TLS
port that requires client certificates.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import datafx
from datafx.connfx import ConfigTarget, Registry
from datafx.connfx.adapters.redis.localserver import LocalRedis, free_port_block
from datafx.connfx.errors import BackendError


def _openssl(*arguments: str, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *arguments],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _make_certificates(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=folder)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-days", "2",
        "-subj", "/CN=datafx test CA", "-out", "ca.pem", cwd=folder,
    )  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=folder)
        _openssl(
            "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}",
            "-out", f"{name}.csr", cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.cnf", "-out", f"{name}.pem", cwd=folder,
        )  # fmt: skip


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("redis-server or openssl is not on PATH")
    certificates = tmp_path / "certs"
    _make_certificates(certificates)
    port = free_port_block(2, start=17600)
    server = LocalRedis(
        port,
        tmp_path / "server",
        extra_arguments=[
            "--tls-port", str(port + 1),
            "--tls-cert-file", str(certificates / "server.pem"),
            "--tls-key-file", str(certificates / "server.key"),
            "--tls-ca-cert-file", str(certificates / "ca.pem"),
            "--tls-auth-clients", "yes",
        ],
    )  # fmt: skip
    server.start()
    yield port + 1, certificates
    server.stop()


async def test_tls_with_client_certificate(tls_server: tuple[int, Path]) -> None:
    port, certificates = tls_server
    target = ConfigTarget(
        dsn=f"rediss://127.0.0.1:{port}/0",
        ca_file=str(certificates / "ca.pem"),
        cert_file=str(certificates / "client.pem"),
        key_file=str(certificates / "client.key"),
    )
    async with Registry.with_defaults() as registry:
        store = datafx.Store(await registry.add_connection("tls", target))
        await store.set("tls:key", {"secure": True})
        assert await store.get("tls:key") == {"secure": True}


async def test_tls_skip_verify_accepts_unknown_ca(
    tls_server: tuple[int, Path],
) -> None:
    port, certificates = tls_server
    dsn = (
        f"rediss://127.0.0.1:{port}/0?tls_skip_verify=true"
        f"&cert_file={certificates / 'client.pem'}"
        f"&key_file={certificates / 'client.key'}"
    )
    async with Registry.with_defaults() as registry:
        store = datafx.Store(await registry.add_connection("tls", dsn))
        await store.set("tls:key", 1)
        assert await store.get("tls:key") == 1


async def test_tls_rejects_unknown_ca(tls_server: tuple[int, Path]) -> None:
    port, certificates = tls_server
    target = ConfigTarget(
        dsn=f"rediss://127.0.0.1:{port}/0?retries=0",
        cert_file=str(certificates / "client.pem"),
        key_file=str(certificates / "client.key"),
    )
    async with Registry.with_defaults() as registry:
        with pytest.raises(BackendError, match="cannot connect to Redis") as info:
            await registry.add_connection("tls", target)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
