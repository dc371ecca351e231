"""A UDP relay between QUIC clients and a server, for tests that need a network that misbehaves
(this kernel has no netem): it drops, corrupts, reorders and delays datagrams on a seeded
schedule, rebinds a client's NAT mapping to a new port or address, blackholes traffic for a
while, and watches what passes (ECN marks, long-header packet types, bytes before the client's
address is validated).

Clients connect to `relay.port` on 127.0.0.1. Each client address gets its own upstream socket
towards the server, as a NAT would, so a client that migrates (new local port) appears to the
server as a new address too. A thread runs the relay; `close()` stops it."""

import collections
import heapq
import random
import select
import socket
import struct
import threading
import time

IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)
IP_TOS = getattr(socket, "IP_TOS", 1)


class Impairment:
    """What happens to datagrams in one direction: probabilities per datagram, and a delay."""

    def __init__(self, drop=0.0, corrupt=0.0, reorder=0.0, delay=0.0):
        self.drop = drop
        self.corrupt = corrupt
        self.reorder = reorder
        self.delay = delay  # seconds


class Stats:
    def __init__(self):
        self.to_server = 0          # datagrams delivered client -> server
        self.to_client = 0          # datagrams delivered server -> client
        self.dropped = 0
        self.corrupted = 0
        self.reordered = 0
        self.ecn_to_client = 0      # server datagrams marked ECT(0), ECT(1) or CE
        self.ecn_to_server = 0
        self.zero_rtt_packets = 0   # client long-header 0-RTT packets
        self.server_versions = set()  # versions of the server's long-header packets
        self.retry_packets = 0      # Retry packets from the server
        self.last_ecn_to_client = collections.deque(maxlen=10)  # marked? of the last ones
        self.bytes_to_server = 0
        self.bytes_to_client = 0


def _varint(buf, pos):
    n = 1 << (buf[pos] >> 6)
    v = buf[pos] & 0x3f
    for b in buf[pos + 1:pos + n]:
        v = (v << 8) | b
    return v, pos + n


def _long_header_types(dgram):
    """[(version, type)] of the long-header packets coalesced in a datagram (RFC 9000 §12.2),
    type in v1 terms (0 Initial, 1 0-RTT, 2 Handshake, 3 Retry); a short-header packet ends
    the list."""
    out = []
    pos = 0
    try:
        while pos + 7 <= len(dgram) and dgram[pos] & 0x80:
            version = int.from_bytes(dgram[pos + 1:pos + 5], "big")
            bits = (dgram[pos] >> 4) & 3
            if version == 0x6b3343cf:  # RFC 9369 §3.2: v2 renumbers the types
                bits = {1: 0, 2: 1, 3: 2, 0: 3}[bits]
            out.append((version, bits))
            if version == 0 or bits == 3:
                break  # Version Negotiation, Retry: nothing follows
            p = pos + 5
            p += 1 + dgram[p]          # DCID
            p += 1 + dgram[p]          # SCID
            if bits == 0:
                tlen, p = _varint(dgram, p)
                p += tlen              # token
            length, p = _varint(dgram, p)
            pos = p + length
    except IndexError:
        pass
    return out


class Relay:
    def __init__(self, server_port, seed=1, server_host="127.0.0.1"):
        self.server = (server_host, server_port)
        # One random stream per client and direction: what happens to a client's datagrams
        # depends on that client's own sequence only, not on how its datagrams and the
        # server's interleave in time, so a seed replays the same impairments run after run.
        self.seed = seed
        self.rngs = {}              # (client index, direction) -> random.Random
        self.client_index = {}      # client addr -> the order in which it appeared
        self.up = Impairment()    # client -> server
        self.down = Impairment()  # server -> client
        self.stats = Stats()
        self.blackhole_until = 0.0
        self.blackhole_at = None    # (bytes to the client, seconds): blackhole_after
        self.rebind_at = None       # (bytes to the client, address): rebind_after
        self.rebound = False
        self.stall_at = None        # bytes to the client: stall_until_migration
        self.hold_seconds = 0.0
        # Amplification watch: after the client's first datagram, its next ones are held back
        # until `hold_client_until`; bytes each way in that window are counted.
        self.hold_client_until = 0.0
        self.first_seen = False
        self.window_client_bytes = 0
        self.window_server_bytes = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.clients = {}    # client addr -> upstream socket
        self.upstreams = {}  # upstream socket -> client addr
        self.queue = []      # (time, seq, sock, data, addr, tos)
        self.seq = 0
        self.held = {}       # direction -> datagram held back to reorder
        self.running = True
        self.wake_r, self.wake_w = socket.socketpair()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # ---- control (from the test thread)

    def set(self, up=None, down=None):
        with self.lock:
            if up is not None:
                self.up = up
            if down is not None:
                self.down = down

    def blackhole(self, seconds):
        with self.lock:
            self.blackhole_until = time.monotonic() + seconds

    def blackhole_after(self, nbytes, seconds):
        """Drops everything both ways for `seconds` once `nbytes` went to the client."""
        with self.lock:
            self.blackhole_at = (nbytes, seconds)

    def rebind_after(self, nbytes, address="127.0.0.1"):
        """rebind() once `nbytes` went to the client (mid-transfer)."""
        with self.lock:
            self.rebind_at = (nbytes, address)

    def stall_until_migration(self, nbytes):
        """Once `nbytes` went to the client, drops what the server sends to its first address
        until a packet comes from a second one: a transfer cannot end before a client that
        migrates on a timer (gtlsclient --change-local-addr) has moved, however fast it runs."""
        with self.lock:
            self.stall_at = nbytes

    def hold_after_first(self, seconds):
        """Amplification limit: deliver the client's first flight (until the server answers
        with a Handshake packet), then nothing from it for `seconds`; count what each side sent
        until then."""
        with self.lock:
            self.hold_seconds = seconds
            self.first_seen = False
            self.window_client_bytes = self.window_server_bytes = 0

    def rebind(self, address="127.0.0.1"):
        """Every client's mapping moves to a new upstream socket (new port; and a new source
        address if `address` differs): NAT rebinding as the server sees it."""
        with self.lock:
            self._rebind(address)
        self.wake_w.send(b"x")

    def _rebind(self, address):
        for client in list(self.clients):
            new = self._upstream(address)
            self.clients[client] = new
            self.upstreams[new] = client
            # The old mapping still delivers what the server sends to it.
        self.rebound = True

    def close(self):
        self.running = False
        self.wake_w.send(b"x")
        self.thread.join(5)
        for s in list(self.upstreams) + [self.sock, self.wake_r, self.wake_w]:
            s.close()

    # ---- the relay thread

    def _upstream(self, address):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((address, 0))
        s.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setblocking(False)
        return s

    def _recv(self, s):
        data, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(4))
        tos = 0
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == IP_TOS and value:
                tos = value[0]
        return data, addr, tos

    def _rng(self, client, direction):
        index = self.client_index.setdefault(client, len(self.client_index))
        key = (index, direction)
        if key not in self.rngs:
            self.rngs[key] = random.Random(f"{self.seed}/{index}/{direction}")
        return self.rngs[key]

    def _impair(self, imp, direction, client, data):
        """The datagrams to send now for `data` (none if dropped; two if one held back is let
        go behind it), each possibly corrupted."""
        r = self._rng(client, direction)
        if imp.drop and r.random() < imp.drop:
            self.stats.dropped += 1
            return []
        if imp.corrupt and r.random() < imp.corrupt and len(data) > 0:
            b = bytearray(data)
            i = r.randrange(len(b))
            b[i] ^= 1 << r.randrange(8)
            data = bytes(b)
            self.stats.corrupted += 1
        out = [data]
        held = self.held.pop(direction, None)
        if held is not None:
            out.append(held)  # the held one goes after this one: reordered
        elif imp.reorder and r.random() < imp.reorder:
            self.held[direction] = data
            self.stats.reordered += 1
            return []
        return out

    def _schedule(self, delay, sock, data, addr, tos):
        self.seq += 1
        heapq.heappush(self.queue, (time.monotonic() + delay, self.seq, sock, data, addr, tos))

    def _send(self, sock, data, addr, tos):
        try:
            if tos & 3:
                sock.sendmsg([data], [(socket.IPPROTO_IP, IP_TOS, struct.pack("i", tos))], 0, addr)
            else:
                sock.sendto(data, addr)
        except OSError:
            pass  # the network lost it

    def _from_client(self, data, client, tos):
        now = time.monotonic()
        with self.lock:
            if client not in self.clients:
                up = self._upstream("127.0.0.1")
                self.clients[client] = up
                self.upstreams[up] = client
            up = self.clients[client]
            if now < self.blackhole_until:
                self.stats.dropped += 1
                return
            if self.hold_seconds:
                if not self.first_seen:
                    self.window_client_bytes += len(data)  # the client's first flight
                elif now < self.hold_client_until:
                    self.stats.dropped += 1
                    return
            self.stats.zero_rtt_packets += sum(1 for _, t in _long_header_types(data) if t == 1)
            if tos & 3:
                self.stats.ecn_to_server += 1
            out = self._impair(self.up, "up", client, data)
            delay = self.up.delay
        for d in out:
            self.stats.to_server += 1
            self.stats.bytes_to_server += len(d)
            self._schedule(delay, up, d, self.server, tos)

    def _from_server(self, data, up, tos):
        now = time.monotonic()
        with self.lock:
            client = self.upstreams.get(up)
            if client is None or now < self.blackhole_until:
                self.stats.dropped += 1
                return
            types = _long_header_types(data)
            if self.hold_seconds and (not self.first_seen or now < self.hold_client_until):
                self.window_server_bytes += len(data)
                # A Handshake packet: the server has the whole ClientHello (one datagram, or
                # two for a post-quantum key share). From now on the client's packets are held
                # back, so only the first flight is what the server may triple.
                if not self.first_seen and any(t == 2 for _, t in types):
                    self.first_seen = True
                    self.hold_client_until = now + self.hold_seconds
            for version, kind in types:
                if version:
                    self.stats.server_versions.add(version)
                if kind == 3:
                    self.stats.retry_packets += 1
            if tos & 3:
                self.stats.ecn_to_client += 1
            self.stats.last_ecn_to_client.append(bool(tos & 3))
            sent = self.stats.bytes_to_client
            if self.blackhole_at and sent >= self.blackhole_at[0]:
                self.blackhole_until = now + self.blackhole_at[1]
                self.blackhole_at = None
                self.stats.dropped += 1
                return
            if (self.stall_at is not None and sent >= self.stall_at and len(self.clients) < 2):
                self.stats.dropped += 1
                return
            if self.rebind_at and sent >= self.rebind_at[0]:
                self._rebind(self.rebind_at[1])
                self.rebind_at = None
            out = self._impair(self.down, "down", client, data)
            delay = self.down.delay
        for d in out:
            self.stats.to_client += 1
            self.stats.bytes_to_client += len(d)
            self._schedule(delay, self.sock, d, client, tos)

    def _run(self):
        while self.running:
            timeout = 0.05
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, sock, data, addr, tos = heapq.heappop(self.queue)
                self._send(sock, data, addr, tos)
            if self.queue:
                timeout = max(0.0, min(timeout, self.queue[0][0] - now))
            with self.lock:
                socks = [self.sock, self.wake_r] + list(self.upstreams)
            try:
                ready, _, _ = select.select(socks, [], [], timeout)
            except (OSError, ValueError):
                continue
            for s in ready:
                if s is self.wake_r:
                    s.recv(64)
                    continue
                try:
                    # Drain what is there: bursts of a transfer come many at a time.
                    for _ in range(64):
                        data, addr, tos = self._recv(s)
                        if s is self.sock:
                            self._from_client(data, addr, tos)
                        else:
                            self._from_server(data, s, tos)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    pass  # e.g. ICMP port unreachable from a client that left
