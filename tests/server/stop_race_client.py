"""Clients that race a server's shutdown: ``python stop_race_client.py PORT FLAG SECONDS THREADS``.

Each thread opens connections to the server one after another as fast as it can. Until the file
FLAG exists, a connection is closed as soon as it is open; once FLAG exists (the test creates it
just before it sends SIGTERM), a connection that the server accepted keeps sending requests, kept
alive, for as long as the server answers them. So connections are being accepted at every moment
around the shutdown, and any connection the shutdown overlooks is seen serving new requests.

Prints ``warm`` once 100 connections have been served (the test then creates FLAG), then one
JSON object: how many connections were opened, and how many requests were answered
that were sent more than two seconds after FLAG appeared (``late``), with the latest such send.
Two seconds: the server begins its shutdown within a tenth of one, but the machine is loaded.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

REQUEST = b"GET /tryon/v1/products?limit=1 HTTP/1.1\r\nHost: catalog\r\nx-api-key: gk_race\r\n\r\n"


def _answer(sock: socket.socket) -> bool:
    """Read one response; whether a whole one came."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def main() -> None:
    port, flag = int(sys.argv[1]), sys.argv[2]
    seconds, threads = float(sys.argv[3]), int(sys.argv[4])
    end = time.monotonic() + seconds
    lock = threading.Lock()
    stats = {"connections": 0, "late": 0, "latest_late_send": 0.0}
    flagged_at: list[float] = []

    def stopping() -> float | None:
        if not flagged_at and os.path.exists(flag):
            with lock:
                if not flagged_at:
                    flagged_at.append(time.monotonic())
        return flagged_at[0] if flagged_at else None

    def worker() -> None:
        while time.monotonic() < end:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                if stopping() is not None:
                    return  # the server no longer listens
                time.sleep(0.01)
                continue
            with lock:
                stats["connections"] += 1
                if stats["connections"] == 100:
                    print("warm", flush=True)
            try:
                if stopping() is None:
                    continue  # before the shutdown: connections come and go
                while time.monotonic() < end:
                    sent = time.monotonic()
                    sock.sendall(REQUEST)
                    if not _answer(sock):
                        break
                    since = stopping()
                    assert since is not None
                    if sent - since > 2.0:
                        with lock:
                            stats["late"] += 1
                            stats["latest_late_send"] = max(
                                stats["latest_late_send"], round(sent - since, 2)
                            )
            except OSError:
                pass
            finally:
                sock.close()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
