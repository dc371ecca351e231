"""`make check-system`, part 1: the Debian package in a fresh Debian 12 booted by systemd.

The package (make deb) and a newer build of it (same tree, version VERSION+systest1, only
main.cc recompiled) are installed into a Debian 12 root made by mmdebstrap from the Debian
archive and booted with systemd-nspawn (private network: only the container's loopback), so
the real systemd runs the unit. Commands run inside with nsenter into the container's
namespaces; load and HTTP clients are the host's (curl, build/h3get, build/h3load, python3)
run inside the container's network namespace only (nsenter --net).

Steps (issue 20):
  1. apt install ./wraith_*.deb: the service is active and serves the default page over
     HTTP/1.1, HTTP/2 (h2c on 80, h2 on 443) and HTTP/3; user, directories, modes, hardening;
     logrotate's USR1 reopens the logs.
  2. systemctl reload under load (HTTP/1.1, HTTP/2, HTTP/3): every reload succeeds, no request
     is lost.
  3. a broken config: systemctl reload fails, the error (FILE:LINE:COL) is in the journal, the
     same master keeps serving.
  4. apt install of the newer build under load: a binary upgrade (new master pid, running the
     new binary; the old master drains and exits), no request lost, reload works afterwards.
  5. apt remove keeps the configuration, certificates, logs and user (dpkg state "rc");
     apt purge then leaves no wraith process, user, group, file or directory (file lists of
     the whole root compared before install and after purge).

The root (bookworm with bookworm-backports, where Debian 12 has the QUIC libraries the package
depends on) is cached as a tarball in build-system/ (keyed by its package list); each run
extracts a fresh root from it. SYSTEST_REFRESH=1 downloads anew.

Prints one line per check and ends with "N passed, N failed"; exit 1 if any failed."""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("WRAITH_BUILD_DIR") or os.path.join(SOURCE, "build")
H3GET = os.path.join(BUILD, "h3get")
H3LOAD = os.path.join(BUILD, "h3load")
CACHE = os.path.join(SOURCE, "build-system")
MIRROR = os.environ.get("SYSTEST_MIRROR", "http://deb.debian.org/debian")
MACHINE = "wraith-systest"
# What the root has besides the package's own dependencies: systemd as init, and what the
# package recommends (apt installs recommends; the container has no network).
BASE = ["systemd", "systemd-sysv", "dbus", "ca-certificates", "logrotate", "adduser", "procps"]
# Paths whose changes between "before install" and "after purge" are not the package's:
# package manager state and logs, the journal, the container's own runtime files.
NOISE = re.compile(r"^/(var/lib/(dpkg|apt|systemd/(timers|catalog|random-seed|timesync))|"
                   r"var/cache/(apt|debconf|ldconfig)|var/log/(apt|journal|dpkg\.log|"
                   r"alternatives\.log|lastlog|wtmp|btmp)|root/systest|tmp|var/tmp|"
                   r"etc/(passwd|group|shadow|gshadow)-$|etc/machine-id|var/lib/dbus|"
                   # logrotate's own state file, written by the test's forced rotation
                   r"var/lib/logrotate/status$)")

RESULTS = []


def say(text):
    print(f"[check-system] {text}", flush=True)


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    say(f"{'PASS' if ok else 'FAIL'}: {name}" + (f" -- {detail}" if detail and not ok else ""))
    return ok


def run(cmd, check_rc=True, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}")
    return r


def deb_depends(deb):
    """Package names of the .deb's Depends (versions and alternatives dropped)."""
    text = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    names = []
    for part in text.split(","):
        name = part.split("|")[0].split("(")[0].strip()
        if name:
            names.append(name)
    return names


def make_root(deb, workdir):
    include = sorted(set(BASE + deb_depends(deb)))
    key = hashlib.sha256(" ".join(include).encode()).hexdigest()[:12]
    os.makedirs(CACHE, exist_ok=True)
    tarball = os.path.join(CACHE, f"bookworm-{key}.tar")
    if not os.path.exists(tarball) or os.environ.get("SYSTEST_REFRESH"):
        say(f"mmdebstrap bookworm with {len(include)} packages (cached as {tarball})")
        tmp = tarball[:-len(".tar")] + ".part.tar"  # mmdebstrap picks the format by suffix
        # bookworm-backports too: on Debian 12 the package depends on its ngtcp2 1.11 and
        # nghttp3 1.8 libraries (make deps), which apt takes from there as nothing else has
        # them.
        run(["nice", "mmdebstrap", "--variant=apt", "--include=" + ",".join(include),
             "bookworm", tmp, f"deb {MIRROR} bookworm main",
             f"deb {MIRROR} bookworm-backports main"])
        os.rename(tmp, tarball)
    root = os.path.join(workdir, "root")
    os.makedirs(root)
    run(["tar", "-C", root, "-xf", tarball])
    return root


class Container:
    """A booted systemd-nspawn container; every process is ours by pid."""

    def __init__(self, root, log_path):
        self.root = root
        self.log_path = log_path
        self.proc = None
        self.leader = None

    def boot(self):
        self.log = open(self.log_path, "wb")
        # --register=no --keep-unit: the host has no systemd (no machined, no system bus).
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--private-network",
             "-D", self.root, "-M", MACHINE],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("systemd-nspawn exited during boot:\n" + self.boot_log())
            kids = run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], check_rc=False)
            pids = kids.stdout.split()
            if pids:
                self.leader = int(pids[0])
                r = self.sh("systemctl is-system-running --wait", check_rc=False, timeout=60)
                state = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
                if state in ("running", "degraded"):
                    return state
            time.sleep(0.2)
        raise RuntimeError("the container did not boot in 60 s:\n" + self.boot_log())

    def boot_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def enter(self):
        return ["nsenter", "-t", str(self.leader), "-a", "--", "env", "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive",
                "LANG=C.UTF-8", "HOME=/root"]

    def sh(self, script, check_rc=True, timeout=300):
        """Runs a shell script inside the container."""
        return run(self.enter() + ["sh", "-c", script], check_rc=check_rc, timeout=timeout)

    def net(self, cmd, **kw):
        """A host command in the container's network namespace only."""
        return ["nsenter", "-t", str(self.leader), "--net", "--"] + cmd

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.leader:
            self.sh("systemctl poweroff --no-block", check_rc=False, timeout=30)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def snapshot(c):
    """Every path of the root with its type, mode and owner, except the noise."""
    out = c.sh("find / -xdev -printf '%p %y %m %u %g\\n' 2>/dev/null", check_rc=False).stdout
    return {line.split(" ", 1)[0]: line for line in out.splitlines()
            if line and not NOISE.match(line.split(" ", 1)[0])}


def curl(c, *args):
    return run(c.net(["curl", "-sS", "--max-time", "10"] + list(args)), check_rc=False)


def main_pid(c):
    r = c.sh("systemctl show -p MainPID --value wraith", check_rc=False)
    try:
        return int(r.stdout.strip())
    except ValueError:
        return 0


class Load:
    """tests/system/load.py in the container's network namespace."""

    def __init__(self, c, ca, body):
        env = dict(os.environ, H3LOAD_BIN=H3LOAD)
        self.proc = subprocess.Popen(
            c.net(["python3", os.path.join(HERE, "load.py"), "--ca", ca, "--body", body]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, start_new_session=True)
        line = self.proc.stdout.readline()
        if line.strip() != "started":
            self.proc.kill()
            raise RuntimeError("load did not start: " + line + self.proc.stderr.read()[-2000:])

    def finish(self):
        out, err = self.proc.communicate("stop\n", timeout=300)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"load printed no result: {out[-1000:]} {err[-2000:]}")


def load_ok(name, result):
    h1, h2, h3 = result["h1"], result["h2"], result["h3"]
    say(f"{name}: HTTP/1.1 {h1['ok']} ok, {h1['failed']} failed ({h1['retried']} sent again "
        f"after a keep-alive close); HTTP/2 {h2.get('succeeded', 0)} ok, {h2.get('failed', 0)} "
        f"failed, {h2.get('errored', 0)} errored; HTTP/3 {h3.get('succeeded', 0)} ok, "
        f"{h3.get('failed', 0)} failed, {h3.get('errored', 0)} errored")
    lost = h1["failed"] + sum(r.get(k, 0) for r in (h2, h3)
                              for k in ("failed", "errored", "timeout", "connection errors"))
    served = h1["ok"] and h2.get("succeeded") and h3.get("succeeded")
    return check(f"{name}: no request lost", lost == 0 and served,
                 json.dumps(result)[:1500])


def step_install(c, deb):
    r = c.sh(f"apt-get install -y /root/systest/{os.path.basename(deb)}", check_rc=False)
    check("install: apt-get install ./wraith.deb", r.returncode == 0, r.stdout[-2000:])
    check("install: service active", c.sh("systemctl is-active wraith", check_rc=False)
          .stdout.strip() == "active", c.sh("journalctl -u wraith --no-pager | tail -30",
                                            check_rc=False).stdout)
    page = open(os.path.join(c.root, "usr/share/wraith/html/index.wraith-debian.html"),
                "rb").read()
    r = run(c.net(["curl", "-sS", "--max-time", "10", "http://127.0.0.1/"]), check_rc=False)
    check("install: default page over HTTP/1.1", r.stdout.encode() == page, r.stdout[:300])
    r = curl(c, "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
             "http://127.0.0.1/")
    check("install: HTTP/2 (h2c) on port 80", r.stdout.strip() == "2 200", r.stdout)
    r = curl(c, "-k", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
             "https://127.0.0.1/")
    check("install: HTTP/2 over TLS on port 443", r.stdout.strip() == "2 200", r.stdout)
    r = run(c.net([H3GET, "-k", "--summary", "https://localhost/"]), check_rc=False)
    want = f"200 {len(page)} {hashlib.sha256(page).hexdigest()}"
    check("install: HTTP/3 on UDP 443", r.stdout.startswith(want), r.stdout)
    # What the package put in place.
    st = c.sh("stat -c '%n %a %U %G' /etc/wraith/certs /var/log/wraith; "
              "getent passwd wraith; test -f /etc/wraith/certs/localhost.pem && echo cert; "
              "ls /usr/share/man/man8/wraith.8.gz /usr/share/man/man5/wraith.toml.5.gz; "
              "dpkg-query -W -f='${Conffiles}\\n' wraith", check_rc=False).stdout
    check("install: /etc/wraith/certs 0750", "/etc/wraith/certs 750 root root" in st, st)
    check("install: /var/log/wraith 0750 root:wraith", "/var/log/wraith 750 root wraith" in st,
          st)
    check("install: wraith system user", re.search(r"^wraith:x:\d+:\d+:", st, re.M), st)
    check("install: self-signed certificate made", "\ncert\n" in st, st)
    check("install: man pages", "wraith.8.gz" in st and "wraith.toml.5.gz" in st, st)
    check("install: wraith.toml is a conffile", "/etc/wraith/wraith.toml" in st, st)
    pid = main_pid(c)
    ps = c.sh(f"ps -o user=,pid= --ppid {pid}; ps -o user= -p {pid}", check_rc=False).stdout
    check("install: master root, workers user wraith",
          ps.split()[-1] == "root" and ps.count("wraith") >= 1 and
          all(l.split()[0] == "wraith" for l in ps.strip().splitlines()[:-1]), ps)
    hard = c.sh("systemctl show wraith -p NoNewPrivileges -p ProtectSystem "
                "-p CapabilityBoundingSet -p Type -p ProtectHome", check_rc=False).stdout
    check("install: unit Type=notify with hardening",
          "Type=notify" in hard and "NoNewPrivileges=yes" in hard and
          "ProtectSystem=full" in hard and "cap_net_bind_service" in hard and
          "cap_sys_admin" not in hard and "cap_net_admin" not in hard, hard)
    st = c.sh("grep -c 'Welcome\\|GET / ' /var/log/wraith/access.log; "
              "mv /var/log/wraith/access.log /var/log/wraith/access.log.1; "
              "logrotate -f /etc/logrotate.d/wraith; sleep 1; ls /var/log/wraith",
              check_rc=False).stdout
    curl(c, "-o", "/dev/null", "http://127.0.0.1/after-rotate")
    time.sleep(1.5)  # access logs are flushed at least once a second
    log = c.sh("cat /var/log/wraith/access.log", check_rc=False).stdout
    check("install: logrotate's USR1 reopens the access log", "/after-rotate" in log,
          st + log)
    return page


def step_reload(c, ca, body):
    load = Load(c, ca, body)
    ok = True
    before = main_pid(c)
    for i in range(5):
        time.sleep(1)
        r = c.sh("systemctl reload wraith", check_rc=False)
        ok = ok and r.returncode == 0
    time.sleep(1)
    result = load.finish()
    check("reload: 5 x systemctl reload succeeded", ok, r.stdout)
    check("reload: same master", main_pid(c) == before)
    load_ok("reload", result)


def step_broken(c, page):
    pid = main_pid(c)
    c.sh("cp /etc/wraith/wraith.toml /root/systest/wraith.toml.good; "
         "sed -i 's/^workers = \"auto\"/workers = \"two\"/' /etc/wraith/wraith.toml")
    r = c.sh("systemctl reload wraith", check_rc=False)
    check("broken config: systemctl reload fails", r.returncode != 0, r.stdout)
    journal = c.sh("journalctl -u wraith --no-pager -n 40", check_rc=False).stdout
    check("broken config: the error with FILE:LINE:COL in the journal",
          re.search(r"/etc/wraith/wraith\.toml:\d+:\d+: server\.workers", journal), journal)
    status = c.sh("systemctl status wraith --no-pager -n 20", check_rc=False).stdout
    check("broken config: systemctl status shows it", "server.workers" in status, status)
    check("broken config: still active, same master",
          c.sh("systemctl is-active wraith", check_rc=False).stdout.strip() == "active" and
          main_pid(c) == pid)
    r = run(c.net(["curl", "-sS", "--max-time", "10", "http://127.0.0.1/"]), check_rc=False)
    check("broken config: still serving", r.stdout.encode() == page)
    c.sh("cp /root/systest/wraith.toml.good /etc/wraith/wraith.toml")
    r = c.sh("systemctl reload wraith", check_rc=False)
    check("broken config: fixed file reloads", r.returncode == 0, r.stdout)


def step_upgrade(c, ca, body, newer, new_version):
    old = main_pid(c)
    load = Load(c, ca, body)
    time.sleep(2)
    r = c.sh(f"apt-get install -y /root/systest/{os.path.basename(newer)}", check_rc=False)
    check("upgrade: apt-get install of the newer build", r.returncode == 0, r.stdout[-2000:])
    check("upgrade: the postinst did a binary upgrade", "binary upgrade done" in r.stdout,
          r.stdout[-2000:])
    time.sleep(2)
    new = main_pid(c)
    exe = c.sh(f"readlink /proc/{new}/exe; /usr/sbin/wraith -v 2>&1", check_rc=False).stdout
    check("upgrade: a new master runs the new binary",
          new and new != old and "/usr/sbin/wraith\n" in exe and new_version in exe,
          f"old {old} new {new}: {exe}")
    # The old master drains (drain_timeout 30s) and exits.
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and c.sh(f"kill -0 {old}", check_rc=False).returncode == 0:
        time.sleep(0.5)
    result = load.finish()
    check("upgrade: the old master exited",
          c.sh(f"kill -0 {old}", check_rc=False).returncode != 0)
    load_ok("upgrade", result)
    check("upgrade: service active", c.sh("systemctl is-active wraith", check_rc=False)
          .stdout.strip() == "active")
    r = c.sh("systemctl reload wraith", check_rc=False)
    check("upgrade: systemctl reload works with the new master", r.returncode == 0, r.stdout)


def step_remove(c):
    r = c.sh("apt-get remove -y wraith", check_rc=False)
    check("remove: apt-get remove wraith", r.returncode == 0, r.stdout[-2000:])
    left = c.sh("pgrep -a wraith; ls /usr/sbin/wraith 2>/dev/null", check_rc=False).stdout.strip()
    check("remove: the service stopped and the binary is gone", left == "", left)
    kept = c.sh("ls /etc/wraith/wraith.toml /etc/wraith/certs/*.pem /var/log/wraith/error.log "
                "&& getent passwd wraith", check_rc=False)
    check("remove: configuration, certificates, logs and the user are kept",
          kept.returncode == 0, kept.stdout)
    state = c.sh("dpkg-query -W -f='${db:Status-Abbrev}' wraith", check_rc=False).stdout.strip()
    check("remove: dpkg lists it as removed, config-files left (rc)", state == "rc", state)


def step_purge(c, before):
    r = c.sh("apt-get purge -y wraith", check_rc=False)
    check("purge: apt-get purge wraith", r.returncode == 0, r.stdout[-2000:])
    left = c.sh("pgrep -a wraith; getent passwd wraith; getent group wraith; "
                "ls /run/wraith* 2>/dev/null", check_rc=False).stdout.strip()
    check("purge: no process, user, group or runtime file left", left == "", left)
    after = snapshot(c)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    check("purge: the root is as before the install", not added and not removed and not changed,
          f"added {added[:20]} removed {removed[:20]} changed "
          f"{[(before[p], after[p]) for p in changed[:10]]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deb", required=True)
    ap.add_argument("--newer", required=True, help="a newer build of the package")
    ap.add_argument("--keep", action="store_true", help="keep the root for inspection")
    args = ap.parse_args()
    new_version = re.match(r"wraith_([^_]+)_", os.path.basename(args.newer)).group(1)
    for tool in ("mmdebstrap", "systemd-nspawn", "nsenter", H3GET, H3LOAD):
        if not shutil.which(tool):
            say(f"missing {tool}")
            return 1
    workdir = tempfile.mkdtemp(prefix="wraith-systest-", dir=os.path.join(SOURCE, "build-deb"))
    c = None
    try:
        root = make_root(args.deb, workdir)
        os.makedirs(os.path.join(root, "root/systest"))
        for d in (args.deb, args.newer):
            shutil.copy(d, os.path.join(root, "root/systest"))
        c = Container(root, os.path.join(workdir, "boot.log"))
        state = c.boot()
        say(f"container booted by systemd ({state}), leader pid {c.leader}")
        before = snapshot(c)
        page = step_install(c, args.deb)
        ca = os.path.join(root, "etc/wraith/certs/wraith-dev-ca.pem")
        body = os.path.join(workdir, "page.html")
        with open(body, "wb") as f:
            f.write(page)
        step_reload(c, ca, body)
        step_broken(c, page)
        step_upgrade(c, ca, body, args.newer, new_version)
        step_remove(c)
        step_purge(c, before)
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        check("system test ran to the end", False, repr(e))
        if c is not None and c.leader:
            say(c.sh("journalctl -u wraith --no-pager | tail -40", check_rc=False).stdout)
    finally:
        if c is not None:
            c.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
