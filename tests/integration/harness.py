"""Shared fixture for Wraith integration tests: a real `wraith serve` process on ephemeral ports.

Each test_*.py imports this module, writes a config with `Wraith(sites=...)`, starts it and
talks to it with raw sockets, http.client or curl. Python 3 standard library only.

Environment (set by CTest): WRAITH_BIN, the binary; WRAITH_SOURCE_DIR, the source tree.

Config text passed to Wraith may use these placeholders, replaced before writing:
  @DIR@    the server's temp directory (absolute, no trailing slash)
  @PORT@   the IPv4 listener port (127.0.0.1)
  @PORT6@  the IPv6 listener port (::1), when listen6=True
  @TLS_PORT@  the TLS listener port (127.0.0.1), when tls_listen is given
"""

import http.client
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("WRAITH_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))


def _default_bin():
    for cand in (os.path.join(SOURCE_DIR, "build", "wraith"),
                 os.path.join(SOURCE_DIR, "build-itest", "wraith")):
        if os.access(cand, os.X_OK):
            return cand
    return os.path.join(SOURCE_DIR, "build", "wraith")


WRAITH_BIN = os.environ.get("WRAITH_BIN") or _default_bin()
IS_ROOT = os.geteuid() == 0

# --------------------------------------------------------------------------------------------
# Sanitizer builds (`make sanitize`, WRAITH_SANITIZE=1 from CTest): every process the tests start
# inherits sanitizer options that write each report to a file of its own in SANITIZER_LOG_DIR
# (asan.PID, ubsan.PID). A test fails on any report that appears while it runs, and the test
# program exits non-zero on any report at all (main()).

SANITIZE = os.environ.get("WRAITH_SANITIZE", "").upper() in ("1", "ON", "TRUE", "YES")
# Timing scale: ASan + UBSan make the server several times slower, so client-side deadlines
# stretch by this factor (never the server's own timeouts that a test asserts on).
TIME_SCALE = float(os.environ.get("WRAITH_TEST_TIME_SCALE") or (4.0 if SANITIZE else 1.0))
SANITIZER_LOG_DIR = None


def _setup_sanitizers():
    global SANITIZER_LOG_DIR
    SANITIZER_LOG_DIR = tempfile.mkdtemp(prefix="wraith-sanitizer-")
    # Workers write their reports after dropping privileges.
    os.chmod(SANITIZER_LOG_DIR, 0o1777)
    supp = os.path.join(SOURCE_DIR, "tests", "sanitizer")

    def add(var, opts):
        old = os.environ.get(var, "")
        os.environ[var] = ":".join(o for o in (old, opts) if o)

    add("ASAN_OPTIONS", f"log_path={SANITIZER_LOG_DIR}/asan:detect_leaks=1:"
                        "handle_abort=1:allow_user_segv_handler=1")
    add("LSAN_OPTIONS", f"suppressions={supp}/lsan.supp:print_suppressions=0")
    add("UBSAN_OPTIONS", f"log_path={SANITIZER_LOG_DIR}/ubsan:print_stacktrace=1:"
                         f"halt_on_error=1:suppressions={supp}/ubsan.supp")


if SANITIZE:
    _setup_sanitizers()


# A worker is fork()ed without exec, and LeakSanitizer's thread registry in the child still
# names the master's thread id: the leak check warns that it could not suspend that thread
# (the child's real thread is suspended but, unknown to the registry, its stack is not used as
# a root). The warning is no finding, and a root left out can only add leak reports, never
# hide one: the line is dropped.
_LSAN_FORK_NOTE = re.compile(r"(?m)^==\d+==Running thread \d+ was not suspended\. "
                             r"False leaks are possible\.\n?")


def sanitizer_reports():
    """{path: text} of every sanitizer report written so far (empty without sanitizers)."""
    if not SANITIZER_LOG_DIR:
        return {}
    out = {}
    for name in sorted(os.listdir(SANITIZER_LOG_DIR)):
        path = os.path.join(SANITIZER_LOG_DIR, name)
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        text = _LSAN_FORK_NOTE.sub("", text)
        if text.strip():
            out[path] = text
    return out


def format_reports(reports):
    return "\n".join(f"===== {path} =====\n{text[-6000:]}" for path, text in reports.items())


# Generous upper bounds; tests poll with these deadlines and never sleep for fixed time.
START_TIMEOUT = 15.0 * TIME_SCALE
STOP_TIMEOUT = 15.0 * TIME_SCALE
IO_TIMEOUT = 10.0 * TIME_SCALE


# --------------------------------------------------------------------------------------------
# Small utilities


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Polls `predicate` until it returns a truthy value; returns it. Raises AssertionError
    naming `what` at the deadline."""
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - polling tolerates transient failures
            last_exc = e
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout}s waiting for {what}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            raise AssertionError(msg)
        time.sleep(interval)


def _port_free(family, host, port, kind=socket.SOCK_STREAM):
    s = socket.socket(family, kind)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


_PORTS_GIVEN = set()  # free_port's answers in this process: none is given twice


def free_port(ipv6_too=True):
    """An ephemeral port that is free on 127.0.0.1 (and on ::1 when ipv6_too and IPv6 works),
    for TCP and for UDP: a TLS listener also binds its port over UDP for HTTP/3. Never one this
    process was given before: two ports asked for one server are bound only when it starts, so
    the kernel could otherwise hand out the same free port to both."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port in _PORTS_GIVEN:
            continue
        if not _port_free(socket.AF_INET, "127.0.0.1", port, socket.SOCK_DGRAM):
            continue
        if not ipv6_too or not have_ipv6() or _port_free(socket.AF_INET6, "::1", port):
            _PORTS_GIVEN.add(port)
            return port
    raise RuntimeError("no free port found")


_IPV6 = None


def have_ipv6():
    global _IPV6
    if _IPV6 is None:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.bind(("::1", 0))
            s.close()
            _IPV6 = True
        except OSError:
            _IPV6 = False
    return _IPV6


def make_dir(path, mode=0o755):
    """mkdir -p that chmods every directory it creates (workers run as www-data)."""
    path = os.path.abspath(path)
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        os.mkdir(d)
        os.chmod(d, mode)
    return path


def write_file(path, data, mode=0o644):
    make_dir(os.path.dirname(path))
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def www_data_uid():
    try:
        return pwd.getpwnam("www-data").pw_uid
    except KeyError:
        return None


# --------------------------------------------------------------------------------------------
# /proc


def proc_status(pid):
    """Fields of /proc/PID/status as a dict, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            out = {}
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
            return out
    except (FileNotFoundError, ProcessLookupError):
        return None


def pid_alive(pid):
    st = proc_status(pid)
    return st is not None and not st.get("State", "").startswith("Z")


def proc_uid(pid):
    """Real, effective, saved, fs uid of pid (ints), or None."""
    st = proc_status(pid)
    if st is None:
        return None
    return [int(x) for x in st["Uid"].split()]


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def proc_starttime(pid):
    """Start time of pid in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def children_of(ppid):
    """Live (non-zombie) pids whose parent is ppid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_status(int(name))
        if st is None or st.get("State", "").startswith("Z"):
            continue
        if st.get("PPid") == str(ppid):
            out.append(int(name))
    return sorted(out)


# --------------------------------------------------------------------------------------------
# Raw HTTP/1.x


class RawResult:
    """What a raw exchange produced: all bytes read, and whether the server closed."""

    def __init__(self, data, closed, reset=False):
        self.data = data
        self.closed = closed
        self.reset = reset

    @property
    def status(self):
        m = re.match(rb"HTTP/1\.[01] (\d{3})", self.data)
        return int(m.group(1)) if m else None

    def responses(self, head_methods=()):
        return parse_responses(self.data, head_methods)

    def __repr__(self):
        d = self.data if len(self.data) < 600 else self.data[:600] + b"..."
        return f"RawResult(closed={self.closed}, reset={self.reset}, data={d!r})"


def connect(port, host="127.0.0.1", timeout=IO_TIMEOUT):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def read_until_close(sock, timeout=IO_TIMEOUT, stop=None):
    """Reads until the peer closes or `timeout` seconds pass without the peer closing.
    `stop(data)` may return True to stop early (e.g. a full response arrived).
    Returns RawResult."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return RawResult(data, closed=False)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return RawResult(data, closed=False)
        except (ConnectionResetError, BrokenPipeError):
            return RawResult(data, closed=True, reset=True)
        if not chunk:
            return RawResult(data, closed=True)
        data += chunk
        if stop is not None and stop(data):
            return RawResult(data, closed=False)


def raw_request(port, data, host="127.0.0.1", timeout=IO_TIMEOUT, stop=None):
    """Sends `data` on a new connection and reads until close/timeout/stop."""
    s = connect(port, host, timeout)
    try:
        try:
            s.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return read_until_close(s, timeout, stop)
    finally:
        s.close()


class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return f"Response({self.status}, {self.headers!r}, body={self.body[:200]!r})"


class IncompleteResponse(Exception):
    pass


def parse_one_response(data, head=False):
    """Parses one response from the start of `data`. Returns (Response, rest).
    Raises IncompleteResponse if `data` does not hold a whole response. A response framed by
    close (no length, not chunked) takes the rest of `data`."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise IncompleteResponse("no end of head")
    head_bytes = data[:end].decode("latin-1")
    rest = data[end + 4:]
    lines = head_bytes.split("\r\n")
    m = re.match(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise ValueError(f"bad status line {lines[0]!r}")
    version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    r = Response(version, status, reason, headers, b"")
    if head or 100 <= status < 200 or status in (204, 304):
        return r, rest
    te = r.header("transfer-encoding")
    if te is not None and "chunked" in te.lower():
        body = b""
        pos = 0
        while True:
            nl = rest.find(b"\r\n", pos)
            if nl < 0:
                raise IncompleteResponse("chunk size")
            size = int(rest[pos:nl].split(b";")[0].strip(), 16)
            pos = nl + 2
            if size == 0:
                # trailers until empty line
                while True:
                    nl = rest.find(b"\r\n", pos)
                    if nl < 0:
                        raise IncompleteResponse("trailers")
                    line = rest[pos:nl]
                    pos = nl + 2
                    if not line:
                        break
                r.body = body
                return r, rest[pos:]
            if len(rest) < pos + size + 2:
                raise IncompleteResponse("chunk data")
            body += rest[pos:pos + size]
            pos += size + 2
    cl = r.header("content-length")
    if cl is not None:
        n = int(cl)
        if len(rest) < n:
            raise IncompleteResponse("body")
        r.body = rest[:n]
        return r, rest[n:]
    r.body = rest
    return r, b""


def parse_responses(data, head_methods=()):
    """Every complete response in `data`, in order. head_methods: a list of booleans/methods
    telling which responses answer HEAD (no body); index by final responses."""
    out = []
    i = 0
    while data:
        is_head = False
        if i < len(head_methods):
            hm = head_methods[i]
            is_head = hm is True or (isinstance(hm, str) and hm.upper() == "HEAD")
        try:
            r, data = parse_one_response(data, head=is_head)
        except IncompleteResponse:
            break
        out.append(r)
        if not (100 <= r.status < 200):
            i += 1
    return out


def has_complete_response(data, head=False):
    """True when `data` holds a final (non-1xx) complete response."""
    try:
        while True:
            r, data = parse_one_response(data, head)
            if not (100 <= r.status < 200):
                # close-delimited bodies can't be known complete: say yes only if framed
                return r.header("content-length") is not None or \
                    "chunked" in (r.header("transfer-encoding") or "") or head or \
                    r.status in (204, 304)
    except (IncompleteResponse, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Clients


def http_request(port, method="GET", path="/", headers=None, body=None, host="127.0.0.1",
                 timeout=IO_TIMEOUT):
    """One request via http.client on a fresh connection. Returns (status, headers, body)
    where headers is an http.client.HTTPMessage (case-insensitive .get())."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data
    finally:
        conn.close()


def http_get(port, path="/", headers=None, **kw):
    return http_request(port, "GET", path, headers, **kw)


def curl(*args, timeout=60, check=False):
    """Runs curl with -s -S and the given args; returns CompletedProcess (bytes stdout)."""
    cmd = ["curl", "-sS", "--max-time", str(int(timeout))] + [str(a) for a in args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout + 10, check=check)


def run_wraith(*args, timeout=60, input=None):
    """Runs WRAITH_BIN with args; returns CompletedProcess with str stdout/stderr."""
    return subprocess.run([WRAITH_BIN] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True, input=input,
                          stdin=subprocess.DEVNULL if input is None else None)


# --------------------------------------------------------------------------------------------
# The server


def toml_str(s):
    """A TOML basic string literal."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Wraith:
    """A `wraith serve` process with its own temp dir, config, logs and ports.

    sites: TOML text with the [[site]] tables (placeholders as in the module docstring).
    http: dict of [http] keys -> TOML value text, e.g. {"header_timeout": '"2s"'}.
    server: dict of extra/overriding [server] keys -> TOML value text.
    access_log: TOML value text for [access_log] path/format as dict, or None for a file in
    the temp dir with combined format.
    listen6: also listen on [::1]:PORT6.
    tls_listen: also listen with `tls = true` on 127.0.0.1:TLS_PORT; the text holds that
    [[listen]] table's other keys (e.g. 'protocols = ["http/1.1"]'), "" for none. The plain
    listener stays: start() waits for it.
    binary: the executable `serve` runs (default WRAITH_BIN); the CLI helpers always use
    WRAITH_BIN.
    """

    def __init__(self, sites, workers=2, http=None, server=None, access_log=None,
                 listen6=False, tmpdir=None, raw_config=None, tls_listen=None, binary=None):
        self.binary = binary
        self.dir = tmpdir or tempfile.mkdtemp(prefix="wraith-itest-")
        os.chmod(self.dir, 0o755)
        self.owns_dir = tmpdir is None
        self.port = free_port()
        self.listen6 = listen6 and have_ipv6()
        self.port6 = free_port() if self.listen6 else None
        self.tls_listen = tls_listen
        self.tls_port = free_port() if tls_listen is not None else None
        self.conf = os.path.join(self.dir, "wraith.toml")
        self.pid_file = os.path.join(self.dir, "wraith.pid")
        self.control_socket = os.path.join(self.dir, "wraith.sock")
        self.logs_dir = make_dir(os.path.join(self.dir, "logs"))
        self.error_log = os.path.join(self.logs_dir, "error.log")
        self.access_log = os.path.join(self.logs_dir, "access.log")
        self.stderr_path = os.path.join(self.dir, "serve.stderr")
        self.stdout_path = os.path.join(self.dir, "serve.stdout")
        self.proc = None
        self.known_children = {}  # pid -> start time
        self.workers = workers
        self.http = dict(http or {})
        self.server = dict(server or {})
        self.access_log_conf = access_log
        self.sites = sites
        self.raw_config = raw_config
        self.write_config()

    # -- config

    def subst(self, text):
        text = text.replace("@DIR@", self.dir).replace("@PORT@", str(self.port))
        if self.port6 is not None:
            text = text.replace("@PORT6@", str(self.port6))
        if self.tls_port is not None:
            text = text.replace("@TLS_PORT@", str(self.tls_port))
        return text

    def render(self, sites=None):
        if self.raw_config is not None:
            return self.subst(self.raw_config)
        sites = self.sites if sites is None else sites
        server = {
            "workers": str(self.workers) if isinstance(self.workers, int)
            else toml_str(self.workers),
            "pid_file": toml_str(self.pid_file),
            "control_socket": toml_str(self.control_socket),
            "error_log": toml_str(self.error_log),
            "log_level": '"info"',
            "drain_timeout": '"10s"',
        }
        if IS_ROOT:
            server["user"] = '"www-data"'
        server.update(self.server)
        lines = ["[server]"] + [f"{k} = {v}" for k, v in server.items()]
        if self.http:
            lines += ["", "[http]"] + [f"{k} = {v}" for k, v in self.http.items()]
        al = self.access_log_conf
        if al is None:
            al = {"path": toml_str(self.access_log), "format": '"combined"'}
        lines += ["", "[access_log]"] + [f"{k} = {v}" for k, v in al.items()]
        lines += ["", "[[listen]]", f'address = "127.0.0.1:{self.port}"']
        if self.listen6:
            lines += ["", "[[listen]]", f'address = "[::1]:{self.port6}"']
        if self.tls_listen is not None:
            lines += ["", "[[listen]]", f'address = "127.0.0.1:{self.tls_port}"', "tls = true"]
            if self.tls_listen:
                lines.append(self.subst(self.tls_listen))
        lines += ["", self.subst(sites)]
        return "\n".join(lines) + "\n"

    def write_config(self, sites=None, text=None):
        """Rewrites the config file (from sites, or verbatim text after substitution)."""
        content = self.subst(text) if text is not None else self.render(sites)
        write_file(self.conf, content)
        return content

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # -- lifecycle

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, wait=True):
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([self.binary or WRAITH_BIN, "serve", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self._stdout,
                                     stderr=self._stderr, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"wraith serve exited with {self.proc.returncode} before serving\n"
                    + self.diagnostics())
            try:
                status, _, _ = http_get(self.port, "/", timeout=2)
                if status:
                    self.record_children()
                    return
            except OSError as e:
                last = e
            except http.client.HTTPException as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"wraith did not answer GET / on port {self.port} within "
                             f"{timeout}s (last error {last!r})\n" + self.diagnostics())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def record_children(self):
        if self.proc is None:
            return []
        kids = children_of(self.proc.pid)
        for k in kids:
            if k not in self.known_children:
                self.known_children[k] = proc_starttime(k)
        return kids

    def worker_pids(self):
        return self.record_children()

    def wait_workers(self, n, timeout=10, exclude=()):
        """Waits until the master has exactly n children, none in `exclude`."""
        def ok():
            kids = self.record_children()
            return kids if len(kids) == n and not set(kids) & set(exclude) else None
        return wait_for(ok, timeout, what=f"{n} workers (excluding {sorted(exclude)})")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Waits for the master to exit; returns its exit code or None on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM the master, wait, then SIGKILL any leftover recorded children. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.record_children()
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                sys.stderr.write(f"[harness] master {self.proc.pid} ignored SIGTERM; killing\n")
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._kill_leftovers()
        for f in (getattr(self, "_stderr", None), getattr(self, "_stdout", None)):
            if f:
                f.close()

    def _kill_leftovers(self):
        """SIGKILLs recorded children still alive after the master is gone. A pid counts as
        ours only if its start time matches the one recorded (no pid-reuse accidents)."""
        deadline = time.monotonic() + 5
        for pid, started in sorted(self.known_children.items()):
            while pid_alive(pid) and proc_starttime(pid) == started and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid) and proc_starttime(pid) == started:
                sys.stderr.write(f"[harness] worker {pid} outlived the master; SIGKILL\n")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def cleanup(self):
        self.stop()
        if self.owns_dir and not os.environ.get("WRAITH_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- CLI against this server's config

    def cli(self, *args, timeout=60):
        return run_wraith(*args, "-c", self.conf, timeout=timeout)

    def status(self):
        return self.cli("status")

    def reload(self):
        return self.cli("reload")

    def cli_stop(self):
        return self.cli("stop")

    # -- logs

    def read(self, path):
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def error_log_text(self):
        return self.read(self.error_log) + self.read(self.stderr_path)

    def access_log_lines(self, path=None):
        return [l for l in self.read(path or self.access_log).splitlines() if l.strip()]

    def wait_log_line(self, predicate, path=None, timeout=10, what="access log line"):
        """Polls an access log until a line satisfying predicate appears; returns it."""
        def find():
            for line in self.access_log_lines(path):
                if predicate(line):
                    return line
            return None
        return wait_for(find, timeout, what=what)

    CRASH_RE = re.compile(r"(?im)^.*(killed by signal (4|6|7|8|11)\b|segmentation fault|"
                          r"dumped core|AddressSanitizer|runtime error:|terminate called).*$")

    def crashes(self):
        """Lines of the error log / stderr reporting a crashed process (SIGSEGV, SIGABRT, ...)."""
        return [m.group(0) for m in self.CRASH_RE.finditer(self.error_log_text())]

    def diagnostics(self):
        def tail(label, path, n=4000):
            t = self.read(path)
            return f"----- {label} ({path}) -----\n{t[-n:]}\n"
        return (f"----- config {self.conf} -----\n{self.read(self.conf)}\n"
                + tail("serve stderr", self.stderr_path)
                + tail("serve stdout", self.stdout_path, 1500)
                + tail("error log", self.error_log))


# --------------------------------------------------------------------------------------------
# unittest glue


class WraithTestCase(unittest.TestCase):
    """Base class: `self.servers` are stopped after each test; their logs are printed when
    the test failed. Subclasses with a class-wide server use `cls.start_class_server`."""

    class_servers = []

    def setUp(self):
        self.servers = []
        self._result_counts = self._failure_count()
        self._reports_before = set(sanitizer_reports())

    def _failure_count(self):
        res = getattr(getattr(self, "_outcome", None), "result", None)
        if res is None:
            return None
        return len(res.failures) + len(res.errors)

    def _test_failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return True
        if hasattr(outcome, "errors"):  # Python <= 3.10
            return any(exc for _, exc in outcome.errors)
        if not getattr(outcome, "success", True):
            return True
        return self._failure_count() != self._result_counts

    def tearDown(self):
        failed = self._test_failed()
        for s in self.servers + list(type(self).class_servers):
            if failed:
                sys.stderr.write(f"\n[harness] diagnostics for {self.id()}:\n"
                                 + s.diagnostics())
        crashed = []
        for s in self.servers:
            s.stop()
            crashed += s.crashes()
            s.cleanup()
        if crashed and not failed:
            self.fail("a wraith process crashed during this test:\n" + "\n".join(crashed))
        new_reports = {p: t for p, t in sanitizer_reports().items()
                       if p not in self._reports_before}
        if new_reports:
            self.fail("sanitizer reports during this test:\n" + format_reports(new_reports))

    def server(self, sites, start=True, **kw):
        s = Wraith(sites, **kw)
        self.servers.append(s)
        if start:
            s.start()
        return s

    @classmethod
    def start_class_server(cls, sites, **kw):
        s = Wraith(sites, **kw)
        cls.class_servers = [s]
        try:
            s.start()
        except BaseException:
            sys.stderr.write(s.diagnostics())
            s.cleanup()
            raise
        return s

    @classmethod
    def tearDownClass(cls):
        crashed = []
        for s in cls.class_servers:
            s.stop()
            crashed += s.crashes()
            if crashed:
                sys.stderr.write(s.diagnostics())
            s.cleanup()
        cls.class_servers = []
        if crashed:
            raise AssertionError("a wraith process crashed while this class's server ran:\n"
                                 + "\n".join(crashed))

    # -- assertions

    def assertClosed(self, res, msg=None):
        self.assertTrue(res.closed, msg or f"server did not close the connection: {res!r}")

    def assertStatus(self, res, status, msg=None):
        self.assertEqual(res.status, status, msg or f"unexpected response: {res!r}")


def main():
    if not os.access(WRAITH_BIN, os.X_OK):
        sys.stderr.write(f"WRAITH_BIN={WRAITH_BIN} is not an executable file\n")
        sys.exit(1)
    prog = unittest.main(verbosity=2, exit=False)
    ok = prog.result.wasSuccessful()
    # Reports from processes no test case watched (class servers, CLI runs, late exits).
    reports = sanitizer_reports()
    if reports:
        sys.stderr.write("sanitizer reports from this test program:\n" + format_reports(reports)
                         + "\n")
        ok = False
    if SANITIZER_LOG_DIR and not os.environ.get("WRAITH_KEEP_TMP"):
        shutil.rmtree(SANITIZER_LOG_DIR, ignore_errors=True)
    sys.exit(0 if ok else 1)
