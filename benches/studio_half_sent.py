#!/usr/bin/env python3
"""300 half-sent requests against `neural-style serve` under a 128-descriptor limit (issue 21).

Usage: python3 benches/studio_half_sent.py PATH/TO/neural-style [SECONDS]

Starts the studio with RLIMIT_NOFILE 128 (default flags: --header-timeout 10,
--body-timeout 60 where the build has them), opens 300 connections (a third send
nothing, a third half a request head), waits SECONDS (65), then counts the
connections the server still holds open and whether it answers a request.
"""
import re, resource, socket, subprocess, sys, time

binary = sys.argv[1]
wait = int(sys.argv[2]) if len(sys.argv) > 2 else 65

def limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

p = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:0", "--threads", "1"],
                     stderr=subprocess.PIPE, text=True, preexec_fn=limit)
port = token = None
for line in p.stderr:
    m = re.search(r"http://127\.0\.0\.1:(\d+)/(\?token=(\w+))?", line)
    if m:
        port, token = int(m.group(1)), m.group(3)
        break
conns, refused = [], 0
for k in range(300):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        refused += 1
        continue
    if k % 3 == 1:
        s.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    conns.append(s)
time.sleep(wait)
still = 0
for s in conns:
    s.setblocking(False)
    try:
        if s.recv(1) != b"":
            still += 1
    except BlockingIOError:
        still += 1
    except OSError:
        pass
auth = f"Authorization: Bearer {token}\r\n" if token else ""
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.settimeout(30)
    s.sendall(f"GET /api/config HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n".encode())
    answer = s.recv(64).split(b"\r\n")[0].decode()
except OSError as e:
    answer = f"no answer ({e})"
print(f"connections not made: {refused}; still open after {wait} s: {still} of {len(conns)}; "
      f"a new request: {answer}")
p.kill()
