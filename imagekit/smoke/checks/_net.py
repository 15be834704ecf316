"""Is a port listening inside the container? Read from the container's network namespace on the host.

Docker's published ports always accept TCP on the host side (its proxy), so the
only honest answer comes from the container's own socket table — read here
through ``/proc/<container pid>/net/tcp*`` so the image needs no tools.
"""

from __future__ import annotations

from pathlib import Path

LISTEN = "0A"


def listening_ports(pid: int) -> set[int]:
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def container_pid(container) -> int:
    container.reload()
    return int(container.attrs["State"]["Pid"])
