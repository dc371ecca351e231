"""Load for the system test: keep-alive HTTP/1.1 clients on port 80, and h3load over HTTP/2
and HTTP/3 on port 443, against the packaged wraith in the container. check_system.py runs it
on the host inside the container's network namespace (nsenter --net), so the clients are the
host's (build/h3load, python3) and the addresses the container's loopback.

It starts the load, prints "started" once every client got a first answer, runs until a line
"stop" arrives on standard input, then prints one JSON object with the counts.

The clients are those of tests/integration/test_zero_downtime.py, with the same rules: an
HTTP/1.1 request whose reused keep-alive connection was closed before any byte of the answer
is sent again once (RFC 9112 §9.3.1 lets the server close an idle connection; a draining
worker does), every other failure counts."""

import argparse
import collections
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import test_zero_downtime as zd  # noqa: E402


class Target:
    """What H3LoadLoop needs of a server: its URL and --resolve."""

    def __init__(self, port):
        self.port = port

    def url(self, path):
        return f"https://localhost:{self.port}{path}"

    def resolve(self):
        return f"localhost:{self.port}:127.0.0.1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True, help="the container's wraith-dev-ca.pem")
    ap.add_argument("--path", default="/")
    ap.add_argument("--body", required=True, help="file with the exact expected body")
    ap.add_argument("--h1-clients", type=int, default=2)
    args = ap.parse_args()
    with open(args.body, "rb") as f:
        expected = {args.path: f.read()}
    zd.PKI = collections.namedtuple("Pki", "ca")(collections.namedtuple("Ca", "cert")(args.ca))

    h1 = [zd.H1Client(80, [args.path], expected) for _ in range(args.h1_clients)]
    h2 = zd.H3LoadLoop(Target(443), [args.path], h2=True)
    h3 = zd.H3LoadLoop(Target(443), [args.path])
    for c in h1 + [h2, h3]:
        c.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(c.ok for c in h1) and h2.runs and h3.runs:
            break
        time.sleep(0.1)
    print("started", flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    for c in h1:
        c.stop()
    for c in h1:
        c.join(30)
    h2.stop()
    h3.stop()
    out = {
        "h1": {"ok": sum(c.ok for c in h1), "failed": sum(c.failed for c in h1),
               "resets": sum(c.resets for c in h1), "retried": sum(c.retried for c in h1),
               "errors": [e for c in h1 for e in c.errors][:8]},
        "h2": dict(h2.counts, runs=h2.runs, problems=h2.problems),
        "h3": dict(h3.counts, runs=h3.runs, problems=h3.problems),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
