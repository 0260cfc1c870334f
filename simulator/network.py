"""A stand-in for the internet's DNS and routing, so that a fetcher with
``allow_private_hosts = false`` can be tested against servers on this machine.

Names resolve to the answers given (a list of successive answers models DNS rebinding: each
lookup takes the next, the last one repeats); a connection to a routed public address goes to
the loopback listener it is routed to. A public address with no route is refused, so nothing
ever leaves the machine. Pass an instance as ``Fetcher(settings, network=...)``.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PUBLIC_ADDRESS = "93.184.216.34"  # what simulated names resolve to (never contacted)


@dataclass
class SimulatedNetwork:
    names: dict[str, list[list[str]]] = field(default_factory=dict)
    routes: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    lookups: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_name(self, name: str, *answers: list[str]) -> None:
        """`name` resolves to each of `answers` in turn (the last repeats)."""
        self.names[name.lower()] = [list(a) for a in answers]

    def add_route(self, public: str, port: int, local: str, local_port: int) -> None:
        self.routes[(public, port)] = (local, local_port)

    def resolve(self, host: str, port: int) -> list[str]:
        with self._lock:
            answers = self.names.get(host.lower())
            turn = self.lookups[host.lower()]
            self.lookups[host.lower()] += 1
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(answers[min(turn, len(answers) - 1)])

    def route(self, address: str, port: int) -> tuple[str, int]:
        routed = self.routes.get((address, port))
        if routed is not None:
            return routed
        local = ipaddress.ip_address(address)
        if local.is_loopback or local.is_unspecified:
            return address, port  # this machine (reached only when private hosts are allowed)
        raise ConnectionRefusedError(f"no route to {address}:{port} in the simulated network")

    def __reduce__(self) -> tuple[Any, ...]:
        # sent to worker processes as its names and routes (its lock and counts stay here)
        return (SimulatedNetwork.from_dict, (self.to_dict(),))

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "routes": [[a, p, la, lp] for (a, p), (la, lp) in self.routes.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulatedNetwork:
        network = cls(names={k: [list(a) for a in v] for k, v in data["names"].items()})
        for address, port, local, local_port in data["routes"]:
            network.add_route(address, int(port), local, int(local_port))
        return network
