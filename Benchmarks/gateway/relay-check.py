#!/usr/bin/env python3
"""Checks that the reference relays lose no byte before their figures mean anything:
sockmap-relay.c in both modes (c-copy, c-sockmap) and uring-relay.c (c-uring).

  python3 Benchmarks/gateway/relay-check.py

Builds both with cc, starts a backend on 127.73.0.20:19000
and the relay on 127.73.0.1:19100, then, through the relay, for 0 bytes to 50 MiB: downloads
(the backend sends N bytes and closes, so a FIN follows the last bytes at once, the case where
a sockmap relay must not shut the client down while redirected bytes wait in the kworker's
queue) and uploads (the client sends N bytes and half-closes, the backend answers with the
count and a SHA-256 of what it got). Then 8 clients do 20 of each at once. Every byte is
compared. Exits 1 on any loss; root is needed for the sockmap mode (bpf()).
"""
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

BACKEND = ("127.73.0.20", 19000)
RELAY = ("127.73.0.1", 19100)


def pattern(n):
    block = hashlib.sha256(str(n).encode()).digest() * 2048  # 64 KiB that depend on n
    return (block * (n // len(block) + 1))[:n]


def serve(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def answer(conn):
    with conn, conn.makefile("rb") as f:
        words = f.readline().split()
        if len(words) != 2:                 # the start-up probe: connected and closed
            return
        verb, n = words
        if verb == b"get":
            conn.sendall(pattern(int(n)))
            return
        digest, total = hashlib.sha256(), 0
        while chunk := f.read1(65536):
            digest.update(chunk)
            total += len(chunk)
        conn.sendall(f"{total} {digest.hexdigest()}\n".encode())


def receive_all(conn):
    parts = []
    while chunk := conn.recv(1 << 20):
        parts.append(chunk)
    return b"".join(parts)


def get(n):
    with socket.create_connection(RELAY, timeout=60) as c:
        c.sendall(f"get {n}\n".encode())
        return receive_all(c) == pattern(n)


def put(n):
    data = pattern(n)
    with socket.create_connection(RELAY, timeout=60) as c:
        c.sendall(f"put {n}\n".encode() + data)
        c.shutdown(socket.SHUT_WR)
        return receive_all(c).decode().strip() == f"{n} {hashlib.sha256(data).hexdigest()}"


def check(command, mode):
    relay = subprocess.Popen(command + [f"{RELAY[0]}:{RELAY[1]}={BACKEND[0]}:{BACKEND[1]}"],
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(RELAY, timeout=1).close()
            break
        except OSError:
            if relay.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{mode}: the relay did not start: {relay.stderr.read()}")
            time.sleep(0.1)
    failures = []
    for n in (0, 1, 233, 65536, 1 << 20, 50 << 20):
        for name, run in (("get", get), ("put", put)):
            if not run(n):
                failures.append(f"{name} {n}")
    results = []

    def client():
        for _ in range(20):
            results.append(("get 3 MiB", get(3 << 20)))
            results.append(("put 1 MiB", put(1 << 20)))
    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures += [name + " (concurrent)" for name, ok in results if not ok]
    relay.terminate()
    counters = relay.communicate(timeout=10)[1].strip()
    lost = f"LOST BYTES in {len(failures)} transfers: " + ", ".join(failures[:8]) + (", ..." if len(failures) > 8 else "")
    print(f"{mode}: {lost if failures else 'every byte arrived'}; {counters}")
    return not failures


def main():
    listener = socket.create_server(BACKEND, backlog=512)
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    here = os.path.dirname(os.path.abspath(__file__))
    built = tempfile.mkdtemp()
    for name in ("sockmap-relay", "uring-relay"):
        subprocess.run(["cc", "-O2", "-Wall", "-o", os.path.join(built, name), os.path.join(here, name + ".c")], check=True)
    sockmap_relay, uring_relay = os.path.join(built, "sockmap-relay"), os.path.join(built, "uring-relay")
    ok = all([check([sockmap_relay, "copy"], "copy"), check([sockmap_relay, "sockmap"], "sockmap"),
              check([uring_relay], "uring")])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
