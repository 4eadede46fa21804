#!/usr/bin/env python3
"""Open N keep-alive connections to HOST:PORT, send one GET on each, read the response, then
hold them idle until stdin closes or HOLD seconds pass. Prints 'held N' once all are open.
With IDLE_TLS=1 in the environment the connections speak TLS (no certificate verification).
   idle.py HOST PORT PATH N HOLD_S [SOURCE_ADDRS]"""
import asyncio, os, ssl, sys

TLS = None
if os.environ.get("IDLE_TLS") == "1":
    TLS = ssl.create_default_context()
    TLS.check_hostname = False
    TLS.verify_mode = ssl.CERT_NONE

async def one(host, port, path, sem, conns, local):
    async with sem:
        r, w = await asyncio.open_connection(host, port, local_addr=(local, 0) if local else None,
                                             ssl=TLS)
        w.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await r.readexactly(length)
        conns.append((r, w))

async def main():
    host, port, path, n, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    sources = sys.argv[6].split(",") if len(sys.argv) > 6 else [None]
    sem = asyncio.Semaphore(500)
    conns = []
    await asyncio.gather(*(one(host, port, path, sem, conns, sources[i % len(sources)]) for i in range(n)))
    print(f"held {len(conns)}", flush=True)
    await asyncio.sleep(hold)

asyncio.run(main())
