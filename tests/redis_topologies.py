"""Redis as managed services run it, started on loopback by the tests: a 3-master Redis Cluster,
and one master watched by one Sentinel.

Each server is a ``redis-server`` subprocess on ports the OS handed out, in a temporary
directory, with nothing persisted (``--save "" --appendonly no``); the cluster's own
``nodes.conf`` stays in each node's directory, so a node restarted there rejoins as itself.
Every wait polls the servers' own state (``cluster_state:ok``, the sentinel's master address)
up to a deadline.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from . import fleet_support as fs

NODE_TIMEOUT_MS = 1000
"""cluster-node-timeout: how soon the other masters call a silent node failed (default 15 s)."""
WAIT = 30.0
"""Bound of every wait: a loaded two-core machine may be slow to start servers."""


def missing_binaries() -> str | None:
    """What is missing to start the servers here (``None``: nothing)."""
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            return f"{binary} is not on PATH"
    return None


def _client(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0, socket_connect_timeout=1.0)


def _info(port: int, section: str) -> dict[str, str]:
    """``CLUSTER INFO`` (or another ``key:value`` listing) of one node; empty if it is down."""
    import redis

    client = _client(port)
    try:
        text = client.execute_command(section)
    except (redis.RedisError, OSError):
        return {}
    finally:
        client.close()
    if isinstance(text, dict):  # redis-py parses some listings itself
        return {str(k): str(v) for k, v in text.items()}
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(fs.free_port())
    return sorted(ports)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus port (the port + 10000, as every Redis version has it) is
    free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = fs.free_port()
        if port not in ports and port + 10000 < 65536 and _bindable(port + 10000):
            ports.append(port)
    return ports


class _Process:
    """One ``redis-server`` subprocess with its arguments, to kill and start again."""

    def __init__(self, args: list[str], port: int, workdir: Path) -> None:
        self.args = args
        self.port = port
        self.dir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            ["redis-server", *self.args],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        fs.wait_until(self._answers, timeout=WAIT, what=f"redis-server on {self.port}")

    def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"redis-server on {self.port} exited ({self._process.returncode})")
        return fs._ping(f"redis://127.0.0.1:{self.port}/0")

    def ensure_running(self) -> None:
        """Start it if it was killed."""
        if self._process is None:
            self.start()

    def kill(self) -> None:
        """SIGKILL: nothing is saved, as when a machine dies."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()


class ClusterServers:
    """Three masters, no replicas, every slot assigned by ``redis-cli --cluster create``."""

    def __init__(self, workdir: Path) -> None:
        self.nodes: dict[int, _Process] = {}
        for port in _cluster_ports(3):
            args = [
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            self.nodes[port] = _Process(args, port, workdir / f"node-{port}")
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.nodes)

    def start(self) -> None:
        """Start the nodes, create the cluster, and wait until every node says it is ok."""
        for node in self.nodes.values():
            node.start()
        subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{port}" for port in self.nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=WAIT,
        )  # fmt: skip
        self.wait_ok()

    def wait_ok(self) -> None:
        """Until every node reports ``cluster_state:ok`` and knows all three masters."""

        def ok() -> bool:
            infos = [_info(port, "CLUSTER INFO") for port in self.nodes]
            return all(
                info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == "3"
                for info in infos
            )

        fs.wait_until(ok, timeout=WAIT, what="cluster_state:ok on every node")

    def owner(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        client = _client(next(iter(self.nodes)))
        try:
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(master[1])
        finally:
            client.close()
        raise AssertionError(f"no node serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL one node (its keys are gone: nothing is saved)."""
        self.nodes[port].kill()

    def restart(self, port: int) -> None:
        """Start a killed node again (it rejoins from its nodes.conf) and wait for the cluster."""
        self.nodes[port].start()
        self.wait_ok()

    def ensure_running(self) -> None:
        """Start every killed node again and wait for the cluster (after a failed test)."""
        for node in self.nodes.values():
            node.ensure_running()
        self.wait_ok()

    def run_on_every_node(self, *command: str) -> None:
        """One command on each master (e.g. ``SCRIPT FLUSH``)."""
        for port in self.nodes:
            client = _client(port)
            try:
                client.execute_command(*command)
            finally:
                client.close()

    def stop(self) -> None:
        """Kill every node."""
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.kill()


class SentinelServers:
    """A master (and, with ``replica=True``, its replica) watched by one ``redis-server
    --sentinel`` as service ``fleet`` (quorum 1: the one sentinel decides a failover)."""

    SERVICE = "fleet"

    def __init__(self, workdir: Path, *, replica: bool = False) -> None:
        master_port, replica_port, sentinel_port = _free_ports(3)
        plain = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.master = _Process(["--port", str(master_port), *plain], master_port, workdir / "m")
        self.replica: _Process | None = None
        if replica:
            self.replica = _Process(
                ["--port", str(replica_port), *plain, "--replicaof", "127.0.0.1", str(master_port)],
                replica_port,
                workdir / "r",
            )
        config = workdir / "sentinel" / "sentinel.conf"  # Sentinel rewrites its config file
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} {NODE_TIMEOUT_MS}\n"
            f"sentinel failover-timeout {self.SERVICE} 10000\n",
            encoding="utf-8",
        )
        self.sentinel = _Process([str(config), "--sentinel"], sentinel_port, config.parent)
        self.url = f"redis+sentinel://127.0.0.1:{sentinel_port}/{self.SERVICE}/0"

    def start(self) -> None:
        """Start every server; wait until the sentinel names the master (and knows the replica
        in sync)."""
        for process in (self.master, self.replica, self.sentinel):
            if process is not None:
                process.start()
        fs.wait_until(
            lambda: self.master_port() == self.master.port,
            timeout=WAIT,
            what="the sentinel to watch the master",
        )
        if self.replica is not None:
            fs.wait_until(self._replica_ready, timeout=WAIT, what="the sentinel to see a replica")

    def _ask(self, *command: str) -> Any:
        client = _client(self.sentinel.port)
        try:
            return client.execute_command(*command)
        except Exception:
            return None
        finally:
            client.close()

    def master_port(self) -> int | None:
        """The master's port as the sentinel names it now."""
        address = self._ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)
        return int(address[1]) if address else None

    def _replica_ready(self) -> bool:
        replicas = self._ask("SENTINEL", "REPLICAS", self.SERVICE) or []
        for replica in replicas:
            if not isinstance(replica, dict):  # a flat name, value, ... list
                pairs = iter(replica)
                replica = dict(zip(pairs, pairs, strict=True))
            fields = {_text(k): _text(v) for k, v in replica.items()}
            if fields.get("flags") == "slave" and fields.get("master-link-status") == "ok":
                return True
        return False

    def stop(self) -> None:
        """Kill every server."""
        for process in (self.sentinel, self.replica, self.master):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.kill()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
