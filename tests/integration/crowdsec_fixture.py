"""A real CrowdSec (agent + Local API) for the integration tests, from Debian's package.

Debian's `crowdsec` cannot be installed offline (its post-install script registers with the
Central API), so the package is only downloaded and unpacked (`apt-get download` +
`dpkg-deb -x`) into a cache directory, once. `python3 crowdsec_fixture.py [CACHE_DIR]` does
that ahead of the tests (`make test` calls it); the tests call ensure() themselves otherwise.

CrowdSec then runs from a temp dir, doing what the package's postinst does offline: the
shipped hub linked in as the local hub, the items the tests need enabled by symlinks from the
config dir (nginx-logs, dateparse-enrich, http-logs; http-probing, http-bad-user-agent), the
data files copied, a machine and the bouncer registered with cscli, a SQLite database, the
Local API on 127.0.0.1:EPHEMERAL, and an acquisition of Wraith's access log as `type: nginx`.
No Central API: the test must not depend on the network.
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cache_dir():
    base = os.environ.get("WRAITH_BUILD_DIR") or tempfile.gettempdir()
    return os.path.join(base, "crowdsec-deb")


def ensure(cache=None):
    """The unpacked package's root (usr/bin/crowdsec, usr/share/crowdsec/hub ...)."""
    cache = cache or cache_dir()
    root = os.path.join(cache, "root")
    if os.access(os.path.join(root, "usr", "bin", "crowdsec"), os.X_OK):
        return root
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="crowdsec-deb-", dir=cache)
    try:
        r = subprocess.run(["apt-get", "download", "crowdsec"], cwd=work, capture_output=True,
                           text=True, timeout=300)
        debs = glob.glob(os.path.join(work, "crowdsec_*.deb"))
        if r.returncode != 0 or not debs:
            raise RuntimeError("cannot download Debian's crowdsec package (apt-get download "
                               "crowdsec): " + (r.stderr or r.stdout).strip())
        unpacked = os.path.join(work, "root")
        subprocess.run(["dpkg-deb", "-x", debs[0], unpacked], check=True, timeout=300)
        if os.path.isdir(root):
            shutil.rmtree(root)
        os.rename(unpacked, root)  # atomic: a half-unpacked tree is never taken for a whole one
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Hub items the tests enable (paths below the hub, as the package's postinst links them).
ITEMS = [
    "parsers/s01-parse/crowdsecurity/nginx-logs.yaml",
    "parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml",
    "parsers/s02-enrich/crowdsecurity/http-logs.yaml",
    "scenarios/crowdsecurity/http-probing.yaml",
    "scenarios/crowdsecurity/http-bad-user-agent.yaml",
]

# CrowdSec 1.4's own "non-syslog" step: a file acquired with `labels: type: X` gets program X
# (the hub's crowdsecurity/non-syslog parser; Debian's offline hub does not ship it).
NON_SYSLOG = """\
filter: "evt.Line.Labels.type != 'syslog'"
onsuccess: next_stage
name: crowdsecurity/non-syslog
statics:
  - parsed: message
    expression: evt.Line.Raw
  - parsed: program
    expression: evt.Line.Labels.type
  - meta: datasource_path
    expression: evt.Line.Src
  - meta: datasource_type
    expression: evt.Line.Module
"""


class CrowdSec:
    """CrowdSec's agent and Local API in a temp dir, reading `access_log` as nginx logs."""

    def __init__(self, access_log, root=None):
        self.root = root or ensure()
        self.dir = tempfile.mkdtemp(prefix="wraith-crowdsec-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.access_log = access_log
        self.proc = None
        self.log_path = os.path.join(self.dir, "crowdsec.log")
        self._setup()

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _setup(self):
        pkg_etc = os.path.join(self.root, "etc", "crowdsec")
        hub_src = os.path.join(self.root, "usr", "share", "crowdsec", "hub")
        etc = self.path("etc")
        os.makedirs(etc)
        for f in ("profiles.yaml", "simulation.yaml"):
            shutil.copy(os.path.join(pkg_etc, f), etc)
        shutil.copytree(os.path.join(pkg_etc, "patterns"), os.path.join(etc, "patterns"))
        # The offline hub (postinst: disable_online_hub), then the enabled items.
        hub = self.path("hub")
        os.makedirs(hub)
        for item in ("blockers", "collections", "parsers", "postoverflows", "scenarios",
                     ".index.json"):
            os.symlink(os.path.join(hub_src, item), os.path.join(hub, item))
        for item in ITEMS:
            kind_stage = os.path.dirname(os.path.dirname(item))  # parsers/s01-parse
            os.makedirs(os.path.join(etc, kind_stage), exist_ok=True)
            os.symlink(os.path.join(hub, item),
                       os.path.join(etc, kind_stage, os.path.basename(item)))
        os.makedirs(os.path.join(etc, "parsers", "s00-raw"), exist_ok=True)
        with open(os.path.join(etc, "parsers", "s00-raw", "non-syslog.yaml"), "w") as f:
            f.write(NON_SYSLOG)
        data = self.path("data")
        os.makedirs(data)
        for f in glob.glob(os.path.join(self.root, "usr", "share", "crowdsec", "data", "*")):
            shutil.copy(f, data)
        os.makedirs(self.path("etc", "notifications"))
        with open(self.path("acquis.yaml"), "w") as f:
            f.write(f"filenames:\n  - {self.access_log}\nlabels:\n  type: nginx\n")
        with open(self.path("etc", "local_api_credentials.yaml"), "w") as f:
            f.write("")
        self.config = self.path("config.yaml")
        with open(self.config, "w") as f:
            f.write(f"""\
common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: {self.dir}/
  working_dir: {self.dir}
config_paths:
  config_dir: {etc}/
  data_dir: {data}/
  simulation_path: {etc}/simulation.yaml
  hub_dir: {hub}/
  index_path: {hub}/.index.json
  notification_dir: {etc}/notifications/
  plugin_dir: {self.root}/usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: {self.dir}/acquis.yaml
  parser_routines: 1
cscli:
  output: human
  color: false
db_config:
  log_level: info
  type: sqlite
  db_path: {data}/crowdsec.db
  use_wal: true
  flush:
    max_items: 5000
    max_age: 7d
api:
  client:
    insecure_skip_verify: false
    credentials_path: {etc}/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:{self.port}
    profiles_path: {etc}/profiles.yaml
    console_path: {etc}/console.yaml
    trusted_ips:
      - 127.0.0.1
      - ::1
prometheus:
  enabled: false
""")
        self.cscli("machines", "add", "wraith-test", "--auto", "--force",
                   "-f", self.path("etc", "local_api_credentials.yaml"))

    def cscli(self, *args, check=True):
        r = subprocess.run([os.path.join(self.root, "usr", "bin", "cscli"), "-c", self.config,
                            "--error", *args], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"cscli {' '.join(args)} failed ({r.returncode}): "
                                 f"{r.stdout}{r.stderr}")
        return r.stdout

    def add_bouncer(self, name="wraith"):
        return self.cscli("bouncers", "add", name, "-o", "raw").strip()

    def decisions(self):
        out = self.cscli("decisions", "list", "-o", "json").strip()
        alerts = json.loads(out) if out and out != "null" else []
        found = []
        for a in alerts or []:
            for d in a.get("decisions") or []:
                found.append(d)
        return found

    def start(self):
        self._log = open(self.path("crowdsec.stdout"), "wb")
        self.proc = subprocess.Popen([os.path.join(self.root, "usr", "bin", "crowdsec"),
                                      "-c", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"crowdsec exited with {self.proc.returncode}\n"
                                     + self.diagnostics())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("crowdsec's Local API did not listen within 60 s\n"
                             + self.diagnostics())

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        self._log.close()

    def diagnostics(self):
        out = []
        for p in (self.path("crowdsec.stdout"), self.log_path):
            try:
                with open(p, errors="replace") as f:
                    out.append(f"--- {p}\n" + f.read()[-4000:])
            except OSError:
                pass
        return "\n".join(out)

    def cleanup(self):
        self.stop()
        if not os.environ.get("WRAITH_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    print(ensure(os.path.join(sys.argv[1], "crowdsec-deb") if len(sys.argv) > 1 else None))
