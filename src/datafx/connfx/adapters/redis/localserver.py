"""Throw-away ``redis-server`` processes on loopback ports, for tests and benchmarks.

:class:`LocalRedis` starts one server (optionally with AOF persistence) and
:class:`LocalCluster` starts three masters joined into a Redis Cluster. Both
live in a temporary folder and stop their processes on ``stop()``. They need
the ``redis-server`` binary on ``PATH``; the cluster also needs ``redis-cli``.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LocalCluster", "LocalRedis", "free_port_block", "shared_cluster"]

_logger = logging.getLogger("datafx.connfx.redis.localserver")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int, start: int = 17000, stop: int = 17990) -> int:
    """Return the first port of ``count`` consecutive free loopback ports.

    A cluster node also listens on its port plus 10000 (the cluster bus),
    so both ranges are checked.
    """
    for first in range(start, stop, count):
        ports = range(first, first + count)
        if all(_port_free(p) and _port_free(p + 10000) for p in ports):
            return first
    raise RuntimeError(f"no {count} free loopback ports between {start} and {stop}")


def _stop_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when its parent dies.

    A test run that is killed never reaches ``stop()`` or its ``atexit``
    hook, and its servers would otherwise keep their ports. Linux ties the
    signal to the thread that started the server, so a server started from
    a worker thread stops when that thread ends.
    """
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG in <sys/prctl.h>
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(set_parent_death_signal, signal.SIGTERM)


def _wait_until_ready(
    port: int, process: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"redis-server on port {port} exited with code {process.returncode}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"redis-server on port {port} did not reply to PING within {timeout} s; "
        "see redis.log in its folder"
    )


class LocalRedis:
    """One redis-server on ``127.0.0.1:port``; ``aof=True`` persists every write.

    ``extra_arguments`` are appended to the command line, for example the
    ``--tls-port`` options of a TLS test.
    """

    def __init__(
        self,
        port: int,
        directory: Path,
        *,
        aof: bool = False,
        cluster: bool = False,
        extra_arguments: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.directory = directory
        self.aof = aof
        self.cluster = cluster
        self.extra_arguments = list(extra_arguments)
        self.process: subprocess.Popen[bytes] | None = None

    def _arguments(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; install the Redis server")
        arguments = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.aof:
            arguments += ["--appendonly", "yes", "--appendfsync", "always"]
        if self.cluster:
            arguments += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.directory / "nodes.conf"),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        return arguments + self.extra_arguments

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self._arguments(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
        _wait_until_ready(self.port, self.process, timeout)
        _logger.info("started redis-server on port %d in %s", self.port, self.directory)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        _logger.info("stopped redis-server on port %d", self.port)

    def restart(self) -> None:
        self.stop()
        self.start()


class LocalCluster:
    """Three master nodes on consecutive free ports, joined by ``redis-cli --cluster``.

    The folder and the processes are removed by :meth:`stop`.
    """

    def __init__(self, masters: int = 3) -> None:
        self.masters = masters
        self.root = Path(tempfile.mkdtemp(prefix="datafx-redis-cluster-"))
        first = free_port_block(masters)
        self.nodes = [
            LocalRedis(port, self.root / str(port), cluster=True)
            for port in range(first, first + masters)
        ]

    @property
    def dsn(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{hosts}"

    def start(self, timeout: float = 30.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._create(timeout)
        except BaseException:
            self.stop()
            raise

    def _create(self, timeout: float) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH; install the Redis tools")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = subprocess.run(
                [cli, "-p", str(self.nodes[0].port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=timeout,
            ).stdout
            if "cluster_state:ok" in info:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the cluster on {addresses} did not reach state ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


_SHARED_CLUSTER: LocalCluster | None = None


def shared_cluster() -> LocalCluster:
    """Return a cluster shared by the whole process, started on first use.

    It is stopped when the interpreter exits.
    """
    global _SHARED_CLUSTER
    if _SHARED_CLUSTER is None:
        cluster = LocalCluster()
        cluster.start()
        atexit.register(cluster.stop)
        _SHARED_CLUSTER = cluster
    return _SHARED_CLUSTER
