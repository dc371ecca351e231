#!/usr/bin/env python3
"""Measures what an idle HTTP/1.1 keep-alive (or, with --h2c, HTTP/2) connection costs a
server worker.

Opens N TCP connections to one server, sends one complete GET on each and reads the whole
response (so the server has gone through a full request and is now holding an idle
keep-alive connection), keeps them all open, and compares the worker's memory before and
after. Prints `key=value` lines on stdout for bench/run.sh; progress goes to stderr.

Standard library only. Run as root (or as the worker's user) so /proc/PID/smaps_rollup of
the worker is readable; VmRSS from /proc/PID/status is readable by anyone.
"""
import argparse
import resource
import selectors
import socket
import sys
import time


def read_memory(pid):
    """Returns {VmRSS, Rss, Pss, Private_Dirty, ...} in KiB; smaps fields only if readable."""
    mem = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:", "RssFile:")):
                key, value = line.split(":", 1)
                mem[key] = int(value.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss", "Private_Dirty", "Private_Clean", "Anonymous"):
                    mem[key] = int(value.split()[0])
    except OSError:
        pass  # not readable (not root, or an old kernel): VmRSS only
    return mem


def get_once(sock, request):
    """Sends `request` and reads one full response. Returns (status, keep_alive)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    keep_alive = lines[0].startswith(b"HTTP/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and b"close" in value.lower():
            keep_alive = False
    if length is None:
        raise ConnectionError("response without Content-Length")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the response body")
        body += chunk
    return status, keep_alive


def h2_frame(ftype, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + \
        payload


def h2c_request(host, path):
    """The client preface, SETTINGS and one GET as a HEADERS frame (RFC 9113 §3.4): HPACK with
    static-table names and literal values (RFC 7541 §6.2.1), no Huffman."""
    def literal(index, value):
        value = value.encode()
        return bytes([0x40 | index, len(value)]) + value
    block = bytes([0x82, 0x86]) + literal(4, path) + literal(1, host)  # GET, http, :path, :authority
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0) +
            h2_frame(1, 0x5, 1, block))  # HEADERS, END_STREAM | END_HEADERS, stream 1


def h2c_get_once(sock, request):
    """Sends the preface and GET; reads frames until stream 1 ends. Returns (status, True)."""
    sock.sendall(request)
    data = b""
    acked = False
    status = 0
    while True:
        while len(data) < 9:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response ended")
            data += chunk
        length = int.from_bytes(data[:3], "big")
        while len(data) < 9 + length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-frame")
            data += chunk
        ftype, flags, stream = data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        data = data[9 + length:]
        if ftype == 4 and not flags & 1 and not acked:  # the server's SETTINGS: ACK them
            sock.sendall(h2_frame(4, 1, 0))
            acked = True
        elif ftype == 1 and stream == 1:
            status = 200  # a response HEADERS (its status is HPACK; the body proves it)
            if flags & 1:
                return status, True
        elif ftype == 0 and stream == 1 and flags & 1:
            return status, True
        elif ftype == 7:  # GOAWAY
            raise ConnectionError("GOAWAY")


def open_connections(host, port, request, count, errors, h2c=False):
    """Opens `count` connections, one GET each; returns the sockets that stayed keep-alive."""
    socks = []
    for i in range(count):
        try:
            sock = socket.create_connection((host, port), timeout=10)
            status, keep_alive = (h2c_get_once if h2c else get_once)(sock, request)
        except OSError as e:  # includes ConnectionError, timeouts, EMFILE
            errors.append(f"connection {i}: {e}")
            if len(errors) >= 20:  # the server is refusing; stop hammering it
                break
            continue
        if status != 200 or not keep_alive:
            errors.append(f"connection {i}: status {status}, keep-alive {keep_alive}")
            sock.close()
            continue
        socks.append(sock)
    return socks


def count_closed_by_server(socks):
    """An idle keep-alive socket must not be readable; readable means EOF or stray bytes."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    readable = len(selector.select(timeout=0))
    selector.close()
    return readable


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/1k.bin")
    parser.add_argument("--pid", type=int, required=True, help="the worker process to measure")
    parser.add_argument("-n", "--connections", type=int, default=10000)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds idle before measuring")
    parser.add_argument("--h2c", action="store_true",
                        help="HTTP/2 with prior knowledge: one GET per connection, then idle")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 1024
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    if args.h2c:
        request = h2c_request(f"{args.host}:{args.port}", args.path)
    else:
        request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
                   "User-Agent: wraith-bench-idle\r\n\r\n").encode()

    # Warm up the request path once (pools, lazily loaded code, caches) so the "before"
    # figure is a server that has served traffic, not a pristine one.
    errors = []
    warm = open_connections(args.host, args.port, request, max(1, args.connections // 50), errors,
                            args.h2c)
    for sock in warm:
        sock.close()
    time.sleep(args.settle)

    before = read_memory(args.pid)
    started = time.monotonic()
    socks = open_connections(args.host, args.port, request, args.connections, errors, args.h2c)
    open_seconds = time.monotonic() - started
    time.sleep(args.settle)
    after = read_memory(args.pid)
    closed = count_closed_by_server(socks)
    print(f"opened {len(socks)}/{args.connections} idle keep-alive connections in "
          f"{open_seconds:.1f} s; {closed} closed by the server", file=sys.stderr)

    for sock in socks:
        sock.close()
    time.sleep(args.settle)
    try:
        released = read_memory(args.pid)
    except OSError:
        released = {}

    held = len(socks) - closed
    print(f"requested={args.connections}")
    print(f"opened={len(socks)}")
    print(f"held={held}")
    print(f"errors={len(errors)}")
    for line in errors[:5]:
        print(f"error_sample={line}")
    for key in ("VmRSS", "RssAnon", "Pss", "Private_Dirty"):
        if key in before and key in after:
            print(f"before_{key}_kib={before[key]}")
            print(f"after_{key}_kib={after[key]}")
            if key in released:
                print(f"closed_{key}_kib={released[key]}")
            if held > 0:
                print(f"per_conn_{key}_bytes={(after[key] - before[key]) * 1024 / held:.0f}")
    return 0 if held == args.connections and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
