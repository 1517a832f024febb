"""Resident memory of N bare asyncssh connections, measured in a fresh process (run.py's helper).

    python bench/raw_memory.py KEY_FILE USER PRIMER_HOST:PORT HOST:PORT [HOST:PORT ...]

Primes the process with one connection (imports, crypto set-up), notes its RSS, opens one
connection per HOST:PORT and runs the benchmark command on each twice (as the pools do: cold, then
warm), notes the RSS again and prints {"connections", "rss_before", "rss_after", "traced"} as JSON
("traced": the Python heap growth tracemalloc saw). The same
measurement the ConnectionPool actors get, without the engine around the connections.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tracemalloc
from pathlib import Path

import asyncssh

COMMAND = "echo hello; hostname"


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def main(key_file: str, username: str, primer: str, targets: list[str]) -> dict[str, int]:
    key = asyncssh.read_private_key(key_file)
    options = {
        "username": username,
        "client_keys": [key],
        "known_hosts": None,
        "config": None,
        "agent_path": None,
        "gss_auth": False,
        "gss_kex": False,
        "host_based_auth": False,
        "x509_trusted_certs": None,
        "pkcs11_provider": None,
        "connect_timeout": 90,
    }

    async def connect(address: str) -> asyncssh.SSHClientConnection:
        host, port = address.rsplit(":", 1)
        conn = await asyncssh.connect(host, int(port), **options)  # type: ignore[arg-type]
        await conn.run(COMMAND, check=False)
        return conn

    primed = await connect(primer)
    tracemalloc.start()
    before, traced_before = rss(), tracemalloc.get_traced_memory()[0]
    conns = await asyncio.gather(*(connect(t) for t in targets))
    await asyncio.gather(*(c.run(COMMAND, check=False) for c in conns))
    after, traced_after = rss(), tracemalloc.get_traced_memory()[0]
    for conn in [primed, *conns]:
        conn.close()
    return {
        "connections": len(conns),
        "rss_before": before,
        "rss_after": after,
        "traced": traced_after - traced_before,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))))
