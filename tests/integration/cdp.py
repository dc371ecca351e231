"""A minimal Chrome DevTools Protocol client for headless Chromium (Debian `chromium`), over
`--remote-debugging-pipe`: Chromium reads commands on fd 3 and writes answers and events on
fd 4, each message one JSON object ended by a NUL byte. Python 3 standard library only.

    browser = cdp.start("http://127.0.0.1:8080/")
    try:
        browser.evaluate("document.title")
        png = browser.screenshot()
    finally:
        browser.close()

One page target is attached with flatten=true; send() talks to it (or, session=False, to the
browser). Console calls, exceptions and log entries are collected for console_errors()."""

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIP_MESSAGE = "Chromium is not installed (Debian package `chromium`); run `make deps`"

# Command-line flags every browser gets; start() adds the profile dir and caller's flags.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe"]

# Events kept for console_errors() and wait_event(); anything else is dropped.
COLLECTED = {"Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded",
             "Page.loadEventFired", "Page.frameNavigated", "Target.detachedFromTarget",
             "Inspector.targetCrashed"}


class CdpError(Exception):
    """A command answered with an error, a timeout, or a browser that went away."""


class Browser:
    """One headless Chromium process and the page it is attached to."""

    def __init__(self, binary=None, args=(), timeout=30.0):
        self.binary = binary or CHROMIUM
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="wraith-cdp-")
        self.proc = None
        self.session = None
        self.target = None
        self._next_id = 0
        self._answers = {}          # id -> message
        self._events = []           # (sequence number, message)
        self._seq = 0
        self._cond = threading.Condition()
        self._closed = False        # the browser's output pipe reached EOF
        self._stderr = open(os.path.join(self.profile, "chromium.stderr"), "wb")
        self._launch(list(args))

    # -- process and pipes

    def _launch(self, args):
        cmd_r, cmd_w = os.pipe()     # we write commands -> Chromium's fd 3
        out_r, out_w = os.pipe()     # Chromium's fd 4 -> we read
        child_in, child_out = cmd_r, out_w

        def arrange_fds():
            # Moved above 9 first, so that neither dup2 overwrites the other's source.
            a = fcntl.fcntl(child_in, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(child_out, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        try:
            self.proc = subprocess.Popen(
                [self.binary] + FLAGS + [f"--user-data-dir={self.profile}"] + args
                + ["about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
                pass_fds=(3, 4), preexec_fn=arrange_fds, start_new_session=True)
        finally:
            os.close(cmd_r)
            os.close(out_w)
        self._cmd = cmd_w
        self._out = out_r
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()

    def _read_loop(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._out, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while True:
                end = buf.find(b"\0")
                if end < 0:
                    break
                raw, buf = buf[:end], buf[end + 1:]
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                self._dispatch(msg)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _dispatch(self, msg):
        with self._cond:
            if "id" in msg:
                self._answers[msg["id"]] = msg
            elif msg.get("method") in COLLECTED:
                self._seq += 1
                self._events.append((self._seq, msg))
            else:
                return
            self._cond.notify_all()

    def stderr_text(self):
        try:
            with open(os.path.join(self.profile, "chromium.stderr"), "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    # -- commands

    def send(self, method, params=None, session=True, timeout=None):
        """Sends a command (to the attached page unless session=False) and returns its
        `result`. Raises CdpError on an error answer, a timeout or a browser gone."""
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                n = os.write(self._cmd, data)
                data = data[n:]
        except OSError as e:
            raise CdpError(f"{method}: browser pipe closed ({e})") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._answers:
                left = deadline - time.monotonic()
                if self._closed:
                    raise CdpError(f"{method}: the browser exited\n{self.stderr_text()[-2000:]}")
                if left <= 0:
                    raise CdpError(f"{method}: no answer within {timeout or self.timeout}s")
                self._cond.wait(left)
            answer = self._answers.pop(mid)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def mark(self):
        """A position in the event stream: wait_event(after=mark()) sees only later events."""
        with self._cond:
            return self._seq

    def events(self, method=None, after=0):
        with self._cond:
            return [m for s, m in self._events
                    if s > after and (method is None or m.get("method") == method)]

    def wait_event(self, method, after=0, predicate=None, timeout=None):
        """The first event `method` (after mark `after`, on our session) that satisfies
        `predicate`; raises CdpError at the deadline."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                for s, m in self._events:
                    if s > after and m.get("method") == method and \
                            m.get("sessionId") in (None, self.session) and \
                            (predicate is None or predicate(m.get("params", {}))):
                        return m.get("params", {})
                left = deadline - time.monotonic()
                if self._closed:
                    raise CdpError(f"waiting for {method}: the browser exited")
                if left <= 0:
                    raise CdpError(f"no {method} within {timeout or self.timeout}s")
                self._cond.wait(left)

    # -- the page

    def attach(self, url="about:blank"):
        """Opens a page target and attaches to it (flat session); enables the domains whose
        events console_errors() reads."""
        self.target = self.send("Target.createTarget", {"url": "about:blank"},
                                session=False)["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": self.target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        if url and url != "about:blank":
            self.navigate(url)
        return self

    def navigate(self, url, timeout=None):
        """Loads url and waits for its load event. Raises CdpError when navigation fails."""
        mark = self.mark()
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CdpError(f"navigate {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", after=mark, timeout=timeout)
        return result

    def evaluate(self, expression, await_promise=False, timeout=None):
        """The value of a JavaScript expression in the page (returnByValue). A thrown
        exception raises CdpError with its description."""
        result = self.send("Runtime.evaluate",
                           {"expression": expression, "returnByValue": True,
                            "awaitPromise": await_promise}, timeout=timeout)
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise CdpError(f"evaluate {expression!r}: {text}")
        return result.get("result", {}).get("value")

    def screenshot(self, timeout=None):
        """The page's visible area as PNG bytes."""
        data = self.send("Page.captureScreenshot", {"format": "png"}, timeout=timeout)["data"]
        return base64.b64decode(data)

    def set_viewport(self, width, height, scale=1, mobile=False):
        """Emulates a screen (Emulation.setDeviceMetricsOverride); touch too when mobile."""
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": scale,
                   "mobile": mobile})
        self.send("Emulation.setTouchEmulationEnabled", {"enabled": bool(mobile)})

    def console_errors(self, after=0):
        """Human-readable lines for every error seen: console.error calls, uncaught
        exceptions, and Log entries of level error (a failed subresource load among them)."""
        out = []
        for m in self.events(after=after):
            p = m.get("params", {})
            method = m.get("method")
            if method == "Runtime.consoleAPICalled" and p.get("type") == "error":
                args = [a.get("value", a.get("description", "")) for a in p.get("args", [])]
                out.append("console.error: " + " ".join(str(a) for a in args))
            elif method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                desc = d.get("exception", {}).get("description") or d.get("text", "")
                out.append(f"exception: {desc} ({d.get('url', '')}:{d.get('lineNumber', '')})")
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                out.append(f"log: {e.get('text', '')} {e.get('url', '')}".rstrip())
            elif method == "Inspector.targetCrashed":
                out.append("the page crashed")
        return out

    # -- the end

    def close(self):
        """Ends the browser: its whole process group (it is a session leader of our own
        making), then removes the profile directory. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.send("Browser.close", session=False, timeout=5)
            except CdpError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            # Renderers and helpers of the group die with it; wait (briefly) until they did.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.proc.pid, 0)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.05)
        # The reader sees EOF once every process holding the pipe's write end is gone; its
        # fd is closed only after it stopped reading.
        if getattr(self, "_reader", None) is not None:
            self._reader.join(timeout=5)
        for fd in ("_cmd", "_out"):
            if getattr(self, fd, None) is not None:
                try:
                    os.close(getattr(self, fd))
                except OSError:
                    pass
                setattr(self, fd, None)
        if self._stderr:
            self._stderr.close()
            self._stderr = None
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def start(url="about:blank", args=(), binary=None, timeout=30.0):
    """A headless Chromium attached to one page showing url (loaded when not about:blank)."""
    browser = Browser(binary, args, timeout)
    try:
        browser.attach(url)
    except BaseException:
        browser.close()
        raise
    return browser
