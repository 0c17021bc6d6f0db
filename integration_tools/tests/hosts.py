"""Worker "hosts" for the many-hosts drill: network namespaces on one switch, and TCP forwarders to the
services that listen on loopback only.

Each host is a network namespace whose veth pair is plugged into a bridge in the root namespace; the bridge
holds SERVICES_ADDRESS, where the receiver listens and where forwarders relay PostgreSQL and Redis from
127.0.0.1. Taking a host's switch port down (`ip link set ... down`) cuts it off as a pulled cable would: its
connections neither close nor answer.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading

BRIDGE = "itdrillbr"
SERVICES_ADDRESS = "10.213.0.1"
PREFIX_LENGTH = 24


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    try:
        made = ip("netns", "add", "itdrill-probe", check=False)
    except FileNotFoundError:
        return "the `ip` command (iproute2) is not installed"
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()} (needs root or CAP_NET_ADMIN)"
    ip("netns", "del", "itdrill-probe", check=False)
    return None


class Host:
    """A namespace `name` whose worker reaches SERVICES_ADDRESS through switch port `port`."""

    def __init__(self, name: str, address: str):
        self.name = name
        self.address = address
        self.port = f"{name}-sw"
        self.command_prefix = ("ip", "netns", "exec", name)

    def create(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "add", self.port, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        ip("link", "set", self.port, "master", BRIDGE, "up")
        inside = ("netns", "exec", self.name, "ip")
        ip(*inside, "addr", "add", f"{self.address}/{PREFIX_LENGTH}", "dev", "eth0")
        ip(*inside, "link", "set", "eth0", "up")
        ip(*inside, "link", "set", "lo", "up")

    def cut_off(self) -> None:
        ip("link", "set", self.port, "down")

    def restore(self) -> None:
        ip("link", "set", self.port, "up")

    def remove(self) -> None:
        # The namespace lives on while a socket made in it does (a worker's hung connection): delete the veth
        # pair by its outer end too, or the next run could not make it again.
        ip("link", "del", self.port, check=False)
        ip("netns", "del", self.name, check=False)


@contextlib.contextmanager
def hosts(*names: str):
    """Namespaces `names` on one bridge that holds SERVICES_ADDRESS; all removed afterwards."""
    made = [Host(name, f"10.213.0.{10 + index}") for index, name in enumerate(names)]
    for host in made:  # what an interrupted run may have left
        host.remove()
    ip("link", "del", BRIDGE, check=False)
    try:
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{SERVICES_ADDRESS}/{PREFIX_LENGTH}", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for host in made:
            host.create()
        yield made
    finally:
        for host in made:
            host.remove()
        ip("link", "del", BRIDGE, check=False)


class Forwarder:
    """Relays TCP connections made to (SERVICES_ADDRESS, self.port) to `target`, byte for byte."""

    def __init__(self, target: tuple[str, int], port: int = 0):
        self.target = target
        self.listener = socket.create_server((SERVICES_ADDRESS, port))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                continue
            self._sockets += [client, upstream]
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for each in self._sockets:
            # shutdown first: close() alone does not wake the pump blocked in recv(), and the connection stays.
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                each.close()

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        # One side ended: end the other, as a direct connection would.
        for each in (source, sink):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
