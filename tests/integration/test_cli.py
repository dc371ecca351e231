"""Command line: version/help, usage errors (exit 2), and `wraith check` diagnostics: every
config problem is reported as FILE:LINE:COL: message on stderr with the line of the offending
key, exit 1."""

import os
import re
import shutil
import tempfile
import unittest

import harness
from harness import run_wraith, write_file, make_dir


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wraith-itest-cli-")
        os.chmod(cls.dir, 0o755)
        cls.www = make_dir(os.path.join(cls.dir, "www"))
        write_file(os.path.join(cls.www, "index.html"), "hi\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def good_config(self):
        return f"""[server]
workers = 1
pid_file = "{self.dir}/wraith.pid"
control_socket = "{self.dir}/wraith.sock"
error_log = "stderr"
log_level = "info"
drain_timeout = "10s"

[http]
client_max_body_size = "1m"
header_timeout = "15s"
keepalive_requests = 1000

[access_log]
path = "off"
format = "combined"

[[listen]]
address = "127.0.0.1:{harness.free_port()}"

[[site]]
hosts = ["example.test", "*.wild.test", "~^re[0-9]+\\\\.test$"]
default = true

  [[site.route]]
  path = "/api/"
  respond = {{ status = 200, body = "hello\\n", content_type = "text/plain" }}

  [[site.route]]
  path = "/"
  static = {{ root = "{self.www}", index = ["index.html"] }}
"""

    def write_conf(self, name, text):
        path = os.path.join(self.dir, name)
        write_file(path, text)
        return path

    @staticmethod
    def line_of(text, needle, nth=1):
        """1-based line number of the nth line containing needle."""
        seen = 0
        for i, line in enumerate(text.splitlines(), 1):
            if needle in line:
                seen += 1
                if seen == nth:
                    return i
        raise AssertionError(f"{needle!r} not in config")

    def check_fails_at(self, name, text, lines, mention=None):
        """`wraith check` on text exits 1 with a FILE:LINE:COL: diagnostic at one of `lines`."""
        if isinstance(lines, int):
            lines = [lines]
        path = self.write_conf(name, text)
        r = run_wraith("check", "-c", path)
        out = f"exit={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}\nconfig:\n" + \
            "\n".join(f"{i:3}: {l}" for i, l in enumerate(text.splitlines(), 1))
        self.assertEqual(r.returncode, 1, out)
        diag_re = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")
        diags = []
        for l in r.stderr.splitlines():
            m = diag_re.match(l)
            if m and os.path.basename(m.group("file")) == name:
                diags.append(m)
        self.assertTrue(diags, "no FILE:LINE:COL: diagnostic naming the file on stderr\n" + out)
        for m in diags:
            self.assertTrue(m.group("file") == path or os.path.abspath(m.group("file")) == path,
                            f"diagnostic names {m.group('file')!r}, expected {path}\n" + out)
            self.assertGreater(int(m.group("col")), 0, out)
        hit = [m for m in diags if int(m.group("line")) in lines]
        self.assertTrue(hit, f"no diagnostic at line(s) {lines}\n" + out)
        if mention:
            self.assertTrue(any(re.search(mention, m.group("msg"), re.I) for m in hit),
                            f"diagnostic at line {lines} does not mention {mention!r}\n" + out)
        return r

    # ---- version / help / usage

    def test_version(self):
        r = run_wraith("--version")
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout + r.stderr, r"(?i)wraith.*\d+\.\d+\.\d+")

    def test_help(self):
        r = run_wraith("--help")
        self.assertEqual(r.returncode, 0, r)
        text = r.stdout + r.stderr
        for sub in ("serve", "check", "reload", "stop", "status"):
            self.assertIn(sub, text, f"--help does not mention {sub}:\n{text}")

    def test_help_serve(self):
        r = run_wraith("help", "serve")
        self.assertEqual(r.returncode, 0, r)
        text = r.stdout + r.stderr
        self.assertIn("serve", text)
        self.assertIn("-c", text, f"`help serve` does not document -c:\n{text}")

    def test_unknown_subcommand_is_usage_error(self):
        r = run_wraith("frobnicate")
        self.assertEqual(r.returncode, 2, r)
        self.assertTrue(r.stderr.strip(), "usage error printed nothing on stderr")

    def test_unknown_option_is_usage_error(self):
        r = run_wraith("check", "--no-such-option")
        self.assertEqual(r.returncode, 2, r)

    def test_missing_option_argument_is_usage_error(self):
        r = run_wraith("check", "-c")
        self.assertEqual(r.returncode, 2, r)

    def test_help_unknown_subcommand_is_usage_error(self):
        r = run_wraith("help", "frobnicate")
        self.assertEqual(r.returncode, 2, r)

    # ---- check

    def test_check_good_config(self):
        path = self.write_conf("good.toml", self.good_config())
        r = run_wraith("check", "-c", path)
        self.assertEqual(r.returncode, 0, f"{r}\n{r.stderr}")
        self.assertRegex(r.stdout + r.stderr, r"(?im)\bok\b")

    def test_check_missing_file(self):
        r = run_wraith("check", "-c", os.path.join(self.dir, "does-not-exist.toml"))
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("does-not-exist.toml", r.stderr)

    def test_check_toml_syntax_error(self):
        text = self.good_config().replace("log_level = \"info\"", "log_level = \"info")
        self.check_fails_at("syntax.toml", text, self.line_of(text, "log_level"))

    def test_check_unknown_key(self):
        text = self.good_config().replace("log_level = \"info\"",
                                          "log_level = \"info\"\nbogus_key = 1")
        self.check_fails_at("unknown.toml", text, self.line_of(text, "bogus_key"),
                            mention="bogus_key")

    def test_check_unknown_key_in_route(self):
        text = self.good_config().replace('  path = "/api/"',
                                          '  path = "/api/"\n  flavour = "vanilla"')
        self.check_fails_at("unknown_route.toml", text, self.line_of(text, "flavour"),
                            mention="flavour")

    def test_check_wrong_type(self):
        text = self.good_config().replace("keepalive_requests = 1000",
                                          'keepalive_requests = "many"')
        self.check_fails_at("type.toml", text, self.line_of(text, "keepalive_requests"))

    def test_check_wrong_type_workers(self):
        text = self.good_config().replace("workers = 1", "workers = true")
        self.check_fails_at("type2.toml", text, self.line_of(text, "workers = true"))

    def test_check_bad_duration(self):
        text = self.good_config().replace('header_timeout = "15s"',
                                          'header_timeout = "10 parsecs"')
        self.check_fails_at("duration.toml", text, self.line_of(text, "parsecs"))

    def test_check_bad_size(self):
        text = self.good_config().replace('client_max_body_size = "1m"',
                                          'client_max_body_size = "lots"')
        self.check_fails_at("size.toml", text, self.line_of(text, "client_max_body_size"))

    def test_check_missing_static_root(self):
        text = self.good_config().replace(f'static = {{ root = "{self.www}", ',
                                          'static = { ')
        self.assertNotIn("root =", text)
        self.check_fails_at("noroot.toml", text, self.line_of(text, "static ="),
                            mention="root")

    def test_check_unparsable_address(self):
        text = re.sub(r'address = "127\.0\.0\.1:\d+"', 'address = "not-an-address"',
                      self.good_config())
        self.check_fails_at("addr.toml", text, self.line_of(text, "not-an-address"))

    def test_check_port_out_of_range(self):
        text = re.sub(r'address = "127\.0\.0\.1:\d+"', 'address = "127.0.0.1:99999"',
                      self.good_config())
        self.check_fails_at("addr2.toml", text, self.line_of(text, "99999"))

    def test_check_duplicate_listener(self):
        text = self.good_config()
        m = re.search(r'(\[\[listen\]\]\naddress = "127\.0\.0\.1:\d+"\n)', text)
        text = text.replace(m.group(1), m.group(1) + "\n" + m.group(1))
        second = self.line_of(text, "address = \"127.0.0.1", nth=2)
        self.check_fails_at("duplisten.toml", text, second)

    def test_check_two_handlers_in_route(self):
        text = self.good_config().replace(
            '  respond = { status = 200, body = "hello\\n", content_type = "text/plain" }',
            '  respond = { status = 200, body = "hello\\n", content_type = "text/plain" }\n'
            f'  static = {{ root = "{self.www}" }}')
        route_start = self.line_of(text, 'path = "/api/"') - 1  # the [[site.route]] header
        lines = [route_start, self.line_of(text, "respond ="),
                 self.line_of(text, "static =", nth=1)]
        self.check_fails_at("twohandlers.toml", text, lines)

    def test_check_reports_every_problem(self):
        text = self.good_config().replace('header_timeout = "15s"',
                                          'header_timeout = "10 parsecs"')
        text = text.replace("log_level = \"info\"", "log_level = \"info\"\nbogus_key = 1")
        path = self.write_conf("multi.toml", text)
        r = run_wraith("check", "-c", path)
        self.assertEqual(r.returncode, 1, r)
        lines = {int(m.group(1)) for m in
                 re.finditer(r"(?m)^.*multi\.toml:(\d+):\d+: ", r.stderr)}
        self.assertIn(self.line_of(text, "bogus_key"), lines, r.stderr)
        self.assertIn(self.line_of(text, "parsecs"), lines, r.stderr)


if __name__ == "__main__":
    harness.main()
