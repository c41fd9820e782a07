#!/usr/bin/env python3
"""Peak memory of `neural-style serve` under three concurrent uploads (issue 21).

Usage: python3 benches/studio_memory.py PATH/TO/neural-style [WIDTH HEIGHT]

Starts the studio (loopback, a free port), uploads three valid all-black PNGs of
WIDTH x HEIGHT (default 11000 x 11000: a few hundred KB each) at once, and prints
each answer and the server's peak resident memory (VmHWM) before and after.
Works with builds that print a token (it is sent as a bearer token) and without.
"""
import re, socket, struct, subprocess, sys, threading, time, zlib

binary = sys.argv[1]
w, h = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (11000, 11000)

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

row = b"\0" * (1 + 3 * w)
z = zlib.compressobj(9)
idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", idat) + chunk(b"IEND", b""))

p = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:0", "--threads", "1"],
                     stderr=subprocess.PIPE, text=True)
port = token = None
for line in p.stderr:
    m = re.search(r"http://127\.0\.0\.1:(\d+)/(\?token=(\w+))?", line)
    if m:
        port, token = int(m.group(1)), m.group(3)
        break
threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()

def hwm():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmHWM"):
            return int(l.split()[1]) // 1024

def upload(k, out):
    s = socket.create_connection(("127.0.0.1", port))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall((f"POST /api/uploads?name=big{k}.png HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Origin: http://127.0.0.1:{port}\r\n{auth}Content-Length: {len(png)}\r\n"
               "Connection: close\r\n\r\n").encode() + png)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    out[k] = data.split(b"\r\n", 1)[0].decode() + " " + data.split(b"\r\n\r\n", 1)[-1][:160].decode("utf-8", "replace")

time.sleep(1)
before = hwm()
out = {}
ts = [threading.Thread(target=upload, args=(k, out)) for k in range(3)]
start = time.time()
[t.start() for t in ts]
[t.join() for t in ts]
took = time.time() - start
print(f"{w}x{h} PNG of {len(png)} bytes, three at once, {took:.1f} s")
for k in sorted(out):
    print(" ", out[k])
print(f"peak RSS (VmHWM): {before} MiB after start-up, {hwm()} MiB after the uploads")
p.kill()
