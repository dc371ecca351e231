"""The Wazuh pack (packaging/wazuh/) against lines a running Wraith writes.

Wazuh is not packaged in Debian, so this test runs Wazuh's decoding and rule matching for the
subset the pack uses, with the pack's own expressions executed by real PCRE2 (libpcre2-8
through ctypes, as Wazuh's w_expression_match calls it: pcre2_match on the string from the
offset, no options). What is pinned down: Wraith's default (combined) lines, IPv4 and IPv6
clients, a query string and quotes in the User-Agent included, still match Wazuh's stock
web-accesslog decoder (0375-web-accesslog_decoders.xml, translated below) field by field and
reach its rules 31100/31101; every decoder of wraith_decoders.xml extracts the expected fields
from the JSON access log, a refused reload, a refused and a timed-out upstream, a rate-limit
rejection, a connection-limit refusal, a SIGSEGV and a SIGKILL of a worker and a CrowdSec Local
API that cannot be reached; each rule of wraith_rules.xml matches the lines it is for (and
frequency rules fire after their count). A change of a log format that the decoders no longer
parse fails here.

Decoder semantics implemented (Wazuh's DecodeEvent, analysisd/decoders/decoder.c), and
refused when the XML uses anything else:
  - a parent (no <parent>) is tried in file order: its <program_name> (if any) must match the
    syslog program name, its <prematch> the whole log; the text after the prematch's match is
    "after_parent";
  - its children, in order: the first whose <prematch> matches (the whole log, or after_parent
    with offset="after_parent") or that has no prematch is chosen; when it fails, the siblings
    sharing its name are skipped;
  - the chosen child's <regex> runs on the whole log or at offset after_parent /
    after_prematch; siblings (the following children with the same name) each run their regex
    in turn, one that does not match adds nothing; captures go to <order> names;
  - a parent without children applies its own regex. offset="after_regex" is not supported.
Rules: decoded_as (the parent decoder's name), if_sid, field/status/id/action/match (PCRE2),
if_matched_sid + frequency with same_field / same_srcip (counts within one test, not time).
"""

import ctypes
import ctypes.util
import json
import os
import re
import signal
import socket
import threading
import time
import unittest
import xml.etree.ElementTree as ET

import harness
from harness import Wraith, WraithTestCase, free_port, http_get, make_dir, toml_str, wait_for, \
    write_file

PACK = os.path.join(harness.SOURCE_DIR, "packaging", "wazuh")
# The WAF route of the test config: ModSecurity's base config with the OWASP CRS, and a request
# its SQL injection rules refuse.
WAF_BASE = os.path.join(harness.SOURCE_DIR, "conf", "waf", "modsecurity.conf")
WAF_CRS = "/usr/share/modsecurity-crs/owasp-crs.load"
WAF_ATTACK = "/waf/?id=1%27%20OR%20%271%27%3D%271"

# ---------------------------------------------------------------------------------------------
# PCRE2 through ctypes: exact captures.

_lib = ctypes.CDLL(ctypes.util.find_library("pcre2-8") or "libpcre2-8.so.0")
_lib.pcre2_compile_8.restype = ctypes.c_void_p
_lib.pcre2_compile_8.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
                                 ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_size_t),
                                 ctypes.c_void_p]
_lib.pcre2_match_data_create_from_pattern_8.restype = ctypes.c_void_p
_lib.pcre2_match_data_create_from_pattern_8.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_lib.pcre2_match_8.restype = ctypes.c_int
_lib.pcre2_match_8.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
                               ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p]
_lib.pcre2_get_ovector_pointer_8.restype = ctypes.POINTER(ctypes.c_size_t)
_lib.pcre2_get_ovector_pointer_8.argtypes = [ctypes.c_void_p]
_lib.pcre2_match_data_free_8.argtypes = [ctypes.c_void_p]
_lib.pcre2_pattern_info_8.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
PCRE2_INFO_CAPTURECOUNT = 4
PCRE2_UNSET = ctypes.c_size_t(-1).value


class Pcre2:
    """One compiled expression; match() returns (end, [captures]) or None."""
    _cache = {}

    @classmethod
    def get(cls, pattern):
        if pattern not in cls._cache:
            cls._cache[pattern] = cls(pattern)
        return cls._cache[pattern]

    def __init__(self, pattern):
        err, off = ctypes.c_int(), ctypes.c_size_t()
        raw = pattern.encode()
        self.code = _lib.pcre2_compile_8(raw, len(raw), 0, ctypes.byref(err), ctypes.byref(off),
                                         None)
        if not self.code:
            raise AssertionError(f"PCRE2 refuses {pattern!r} at offset {off.value}")
        n = ctypes.c_uint32()
        _lib.pcre2_pattern_info_8(self.code, PCRE2_INFO_CAPTURECOUNT, ctypes.byref(n))
        self.groups = n.value
        self.pattern = pattern

    def match(self, text):
        subject = text.encode()
        md = _lib.pcre2_match_data_create_from_pattern_8(self.code, None)
        try:
            rc = _lib.pcre2_match_8(self.code, subject, len(subject), 0, 0, md, None)
            if rc < 0:
                return None
            ov = _lib.pcre2_get_ovector_pointer_8(md)
            caps = []
            for i in range(1, self.groups + 1):
                s, e = ov[2 * i], ov[2 * i + 1]
                # Wazuh stops at the first unset group (rc counts up to the last set one).
                assert i < rc and s != PCRE2_UNSET, f"group {i} unset in {self.pattern!r}"
                caps.append(subject[s:e].decode())
            return subject[:ov[1]].decode().__len__(), caps
        finally:
            _lib.pcre2_match_data_free_8(md)


# ---------------------------------------------------------------------------------------------
# Wazuh's stock web-accesslog decoders (ruleset/decoders/0375-web-accesslog_decoders.xml),
# translated from OS_Regex (\S+ non-space run, \d+ digits, \w+ [A-Za-z0-9@_-], \.* any run,
# [ and ] literal, . literal) into PCRE2. Parent "web-accesslog" (prematch), then its children
# in order: web-accesslog-domain (prematch ^\S+.\D+), web-accesslog-ip-ip (prematch
# ^\S+ \S+.\S+ |^\S+ \S+:\S+ ), web-accesslog-ip (no prematch; order srcip, protocol, url, id).
STOCK_PARENT = r'^\S+ \S+ \S+ .*\[\S+ \S\d+\] "[\w@-]+ \S+ HTTP\S+" '
STOCK_DOMAIN_PREMATCH = r'^\S+\.\D+'
STOCK_IPIP_PREMATCH = r'^\S+ \S+\.\S+ |^\S+ \S+:\S+ '
STOCK_IP_REGEX = r'^(\S+) \S+ \S+ .*\[\S+ \S\d+\] "([\w@-]+) (\S+) HTTP\S+" (\d+) '
STOCK_IP_ORDER = ["srcip", "protocol", "url", "id"]


def stock_web_accesslog(line):
    """The stock decoding of a line: (child decoder, fields) or None."""
    if not Pcre2.get(STOCK_PARENT).match(line):
        return None
    # OS_Regex has no backtracking into \S+; for the lines here (no space before a dot in the
    # first fields) PCRE2's answers are the same.
    if Pcre2.get(STOCK_DOMAIN_PREMATCH).match(line):
        return ("web-accesslog-domain", None)
    if Pcre2.get(STOCK_IPIP_PREMATCH).match(line):
        return ("web-accesslog-ip-ip", None)
    m = Pcre2.get(STOCK_IP_REGEX).match(line)
    return ("web-accesslog-ip", dict(zip(STOCK_IP_ORDER, m[1])) if m else None)


# ---------------------------------------------------------------------------------------------
# The pack's decoders.

def parse_xml(name):
    with open(os.path.join(PACK, name)) as f:
        return ET.fromstring("<root>" + f.read() + "</root>")


def expression(el, what):
    assert el.get("type") == "pcre2", f"{what}: every expression of the pack is type=\"pcre2\""
    off = el.get("offset")
    assert off in (None, "after_parent", "after_prematch"), f"{what}: offset {off} unsupported"
    return Pcre2.get(el.text), off


class Decoder:
    def __init__(self, el):
        self.name = el.get("name")
        self.parent = el.findtext("parent")
        self.program_name = self.prematch = self.regex = None
        if el.find("program_name") is not None:
            self.program_name, _ = expression(el.find("program_name"), self.name)
        if el.find("prematch") is not None:
            self.prematch = expression(el.find("prematch"), self.name)
        if el.find("regex") is not None:
            self.regex = expression(el.find("regex"), self.name)
            self.order = [f.strip() for f in el.findtext("order").split(",")]
            assert len(self.order) == self.regex[0].groups, \
                f"{self.name}: {len(self.order)} names in <order>, {self.regex[0].groups} groups"
        self.children = []


def load_decoders():
    parents, by_name = [], {}
    for el in parse_xml("wraith_decoders.xml").findall("decoder"):
        d = Decoder(el)
        if d.parent:
            by_name[d.parent].children.append(d)
        else:
            parents.append(d)
            by_name[d.name] = d
    return parents


def decode(parents, log, program_name=None):
    """Wazuh's DecodeEvent for the subset above: (parent name, child name, fields) or None."""
    for p in parents:
        if p.program_name:
            if program_name is None or not p.program_name.match(program_name):
                continue
            after_parent = 0
        elif program_name is not None:
            continue  # a line with a program name meets the program-name decoders here
        else:
            after_parent = None
        if p.prematch:
            m = p.prematch[0].match(log)
            if not m:
                continue
            after_parent = m[0]
        if after_parent is None:
            continue
        kids = p.children or [p]
        chosen, after_prematch, i = None, None, 0
        while i < len(kids):
            c = kids[i]
            if c is p or not c.prematch:
                chosen = i
                break
            start = after_parent if c.prematch[1] == "after_parent" else 0
            m = c.prematch[0].match(log[start:])
            if m:
                chosen, after_prematch = i, start + m[0]
                break
            i += 1
            while i < len(kids) and kids[i].name == kids[i - 1].name:
                i += 1  # siblings go with the one that failed
        if chosen is None:
            return None
        fields = {}
        i = chosen
        while i < len(kids):
            c = kids[i]
            if c.regex:
                start = {None: 0, "after_parent": after_parent,
                         "after_prematch": after_prematch}[c.regex[1]]
                m = c.regex[0].match(log[start:])
                if m:
                    fields.update(zip(c.order, m[1]))
            if i + 1 < len(kids) and kids[i + 1].name == c.name and c is not p:
                i += 1
                continue
            break
        return (p.name, kids[chosen].name, fields)
    return None


def stock_json_decoder(line):
    """Wazuh's stock json decoder (JSON_Decoder, fillData): every key a field, numbers as %i
    or %f, true/false as text."""
    fields = {}
    for k, v in json.loads(line).items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, int):
            v = "%i" % v
        elif isinstance(v, float):
            v = "%i" % v if v == int(v) else "%f" % v
        fields[k] = v
    return ("json", "json", fields)


# ---------------------------------------------------------------------------------------------
# The pack's rules.

class Rule:
    def __init__(self, el):
        self.id = el.get("id")
        self.level = int(el.get("level"))
        self.frequency = int(el.get("frequency", "0"))
        self.decoded_as = el.findtext("decoded_as")
        self.if_sid = [s.strip() for s in (el.findtext("if_sid") or "").split(",") if s.strip()]
        self.if_matched = [s.strip() for s in (el.findtext("if_matched_sid") or "").split(",")
                           if s.strip()]
        self.same_field = el.findtext("same_field")
        self.same_srcip = el.find("same_srcip") is not None
        self.checks = []  # (field name or None for the whole log, expression)
        for c in el:
            if c.tag in ("field", "status", "id", "action", "match", "url", "srcip"):
                assert c.get("type") == "pcre2", f"rule {self.id}: <{c.tag}> is not pcre2"
                name = None if c.tag == "match" else (c.get("name") if c.tag == "field"
                                                      else c.tag)
                self.checks.append((name, Pcre2.get(c.text)))
        for c in el:
            assert c.tag in ("field", "status", "id", "action", "match", "url", "srcip",
                             "decoded_as", "if_sid", "if_matched_sid", "same_field",
                             "same_srcip", "description", "group", "mitre"), \
                f"rule {self.id}: <{c.tag}> is outside what this test evaluates"

    def conditions(self, event):
        """Own conditions (not if_sid) against an event (log, decoder, fields)."""
        log, dec, fields = event
        if self.decoded_as and (dec is None or dec[0] != self.decoded_as):
            return False
        for name, exp in self.checks:
            value = log if name is None else fields.get(name)
            if value is None or not exp.match(value):
                return False
        return True


class Rules:
    STOCK = {"31100", "31101"}

    def __init__(self):
        self.rules = {}
        for el in parse_xml("wraith_rules.xml").iter("rule"):
            r = Rule(el)
            assert 100700 <= int(r.id) <= 100799, f"rule {r.id} outside 100700-100799"
            assert r.id not in self.rules
            self.rules[r.id] = r
        self.counts = {}

    def stock(self, event):
        """Stock rules 31100 (decoded_as web-accesslog) and 31101 (id ^4, OS_Regex)."""
        log, dec, fields = event
        out = set()
        if dec and dec[0] == "web-accesslog":
            out.add("31100")
            if fields.get("id", "").startswith("4"):
                out.add("31101")
        return out

    def match(self, event):
        """The ids of every rule whose chain of conditions holds for this event; frequency
        rules count the events that matched their if_matched_sid."""
        fired = self.stock(event)
        changed = True
        while changed:
            changed = False
            for r in self.rules.values():
                if r.id in fired or r.if_matched:
                    continue
                if r.if_sid and not fired & set(r.if_sid):
                    continue
                if not r.if_sid and not r.decoded_as:
                    continue
                if r.conditions(event):
                    fired.add(r.id)
                    changed = True
        fields = event[2]
        for r in self.rules.values():
            if r.if_matched and fired & set(r.if_matched):
                key = (fields.get(r.same_field) if r.same_field
                       else fields.get("srcip") if r.same_srcip else "")
                assert key is not None, f"rule {r.id}: its same field is not decoded"
                n = self.counts[(r.id, key)] = self.counts.get((r.id, key), 0) + 1
                if n >= r.frequency:
                    fired.add(r.id)
        return fired


# ---------------------------------------------------------------------------------------------

def syslog_wrap(line, program="wraith"):
    """A line as rsyslog forwards it; returns (program name, log) as Wazuh's pre-decoding
    splits "Dec  8 00:21:44 host wraith[123]: message"."""
    m = re.match(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ ([^\[:]+)(?:\[\d+\])?: (.*)$",
                 f"Dec  8 00:21:44 web1 {program}[4242]: {line}")
    return m.group(1), m.group(2)


class Silent:
    """A backend that accepts and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class WazuhPackTest(WraithTestCase):
    @classmethod
    def setUpClass(cls):
        cls.decoders = load_decoders()

    def start(self, extra_sites="", extra="", files=None, **kw):
        self.silent = Silent()
        self.addCleanup(self.silent.close)
        refused = free_port(False)
        sites = f'''
[[site]]
hosts = ["json.test"]
access_log = {{ path = "@DIR@/logs/access.json", format = "json" }}
  [[site.route]]
  path = "/refused/"
  proxy = {{ pass = "http://127.0.0.1:{refused}" }}
  [[site.route]]
  path = "/api/"
  limit = ["api"]
  static = {{ root = "@DIR@/www" }}
  [[site.route]]
  path = "/waf/"
  waf = {{ rules = [{toml_str(WAF_BASE)}, {toml_str(WAF_CRS)}] }}
  respond = {{ body = "waf" }}
  [[site.route]]
  path = "/"
  static = {{ root = "@DIR@/www" }}

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/refused/"
  proxy = {{ pass = "http://127.0.0.1:{refused}" }}
  [[site.route]]
  path = "/silent/"
  proxy = {{ upstream = "silent" }}
  [[site.route]]
  path = "/api/"
  limit = ["api"]
  static = {{ root = "@DIR@/www" }}
  [[site.route]]
  path = "/waf/"
  waf = {{ rules = [{toml_str(WAF_BASE)}, {toml_str(WAF_CRS)}] }}
  respond = {{ body = "waf" }}
  [[site.route]]
  path = "/"
  static = {{ root = "@DIR@/www" }}
{extra_sites}
[upstream.silent]
servers = ["127.0.0.1:{self.silent.port}"]
read_timeout = "1s"
connect_timeout = "1s"

[limit.api]
rate = "1/m"
{extra}'''
        srv = Wraith(sites, **kw)
        self.servers.append(srv)
        make_dir(srv.path("www", "api"))
        write_file(srv.path("www", "index.html"), b"hi\n")
        write_file(srv.path("www", "api", "index.html"), b"api\n")
        for name, data in (files or {}).items():
            write_file(srv.path(name), data)
        srv.start()
        return srv

    def error_lines(self, srv, needle, n=1):
        return wait_for(lambda: [l for l in srv.read(srv.error_log).splitlines() if needle in l]
                        if sum(needle in l for l in srv.read(srv.error_log).splitlines()) >= n
                        else None, what=f"error log line with {needle!r}")

    def decode_error(self, line, child):
        dec = decode(self.decoders, line)
        self.assertIsNotNone(dec, line)
        self.assertEqual(dec[:2], ("wraith-errorlog", child), line)
        return (line, dec, dec[2])

    # -- the default access log and the stock decoder

    def test_default_access_log_matches_stock_web_accesslog(self):
        srv = self.start(listen6=True)
        ua = 'Mozilla/5.0 "quoted" \\ back'
        cases = [
            (srv.port, "127.0.0.1", "/index.html", {}, "200"),
            (srv.port, "127.0.0.1", "/missing.php", {}, "404"),
            (srv.port, "127.0.0.1", "/index.html?q=%22a%22&x=1",
             {"User-Agent": ua, "Referer": 'http://r.test/?"x"'}, "200"),
        ]
        if srv.port6:
            cases.append((srv.port6, "::1", "/index.html?v6=1", {"User-Agent": ua}, "200"))
        for port, host, path, headers, status in cases:
            self.assertEqual(str(http_get(port, path, headers=headers, host=host)[0]), status)
        rules = Rules()
        for port, host, path, headers, status in cases:
            line = srv.wait_log_line(lambda l, p=path: f'"GET {p} HTTP/1.1"' in l)
            dec = stock_web_accesslog(line)
            self.assertIsNotNone(dec, f"stock web-accesslog prematch misses: {line}")
            self.assertEqual(dec[0], "web-accesslog-ip", line)
            self.assertEqual(dec[1], {"srcip": host, "protocol": "GET", "url": path,
                                      "id": status}, line)
            fired = rules.match((line, ("web-accesslog", dec[0]), dec[1]))
            self.assertIn("31100", fired)
            self.assertEqual("31101" in fired, status.startswith("4"), line)
            if "User-Agent" in headers:
                self.assertIn(r'"Mozilla/5.0 \x22quoted\x22 \x5C back"', line)

    def test_limit_note_in_combined_line(self):
        srv = self.start()
        self.assertEqual(http_get(srv.port, "/api/")[0], 200)
        self.assertEqual(http_get(srv.port, "/api/")[0], 429)
        line = srv.wait_log_line(lambda l: " 429 " in l)
        dec = stock_web_accesslog(line)
        self.assertEqual(dec[1]["id"], "429", line)
        fired = Rules().match((line, ("web-accesslog", dec[0]), dec[1]))
        self.assertEqual(fired & {"31100", "31101", "100710", "100711"},
                         {"31100", "31101", "100710"}, line)
        # A request the WAF refuses: its note names the CRS rules that matched.
        self.assertEqual(http_get(srv.port, WAF_ATTACK)[0], 403)
        waf = srv.wait_log_line(lambda l: " waf=" in l)
        self.assertRegex(waf, r" waf=\d+(,\d+)*")
        dec = stock_web_accesslog(waf)
        self.assertEqual(dec[1]["id"], "403", waf)
        self.assertIn("100711", Rules().match((waf, ("web-accesslog", dec[0]), dec[1])))

    # -- the JSON access log

    def json_requests(self, srv):
        h = {"Host": "json.test", "User-Agent": 'agent "q" \\ x'}
        self.assertEqual(http_get(srv.port, "/index.html?a=1", headers=h)[0], 200)
        self.assertEqual(http_get(srv.port, "/nothing", headers=h)[0], 404)
        self.assertEqual(http_get(srv.port, "/refused/x", headers=h)[0], 502)
        self.assertEqual(http_get(srv.port, "/api/", headers=h)[0], 200)
        self.assertEqual(http_get(srv.port, "/api/", headers=h)[0], 429)
        path = srv.path("logs", "access.json")
        return [srv.wait_log_line(lambda l, u=u, s=s: f'"uri":"{u}"' in l and f'"status":{s}' in l,
                                  path=path)
                for u, s in (("/index.html?a=1", 200), ("/nothing", 404), ("/refused/x", 502),
                             ("/api/", 429))]

    def test_json_access_log_both_ways(self):
        srv = self.start()
        ok, notfound, refused, limited = self.json_requests(srv)
        self.assertEqual(http_get(srv.port, WAF_ATTACK, headers={"Host": "json.test"})[0], 403)
        waf = srv.wait_log_line(lambda l: '"waf":' in l, path=srv.path("logs", "access.json"))
        expect = {"remote_addr": "127.0.0.1", "method": "GET", "host": "json.test",
                  "protocol": "HTTP/1.1"}
        for line, uri, status in ((ok, "/index.html?a=1", "200"), (notfound, "/nothing", "404"),
                                  (refused, "/refused/x", "502"), (limited, "/api/", "429")):
            program, log = syslog_wrap(line)
            ours = decode(self.decoders, log, program)
            self.assertEqual(ours[:2], ("wraith-access-json", "wraith-access-json-fields"), log)
            stock = stock_json_decoder(line)
            for name, value in dict(expect, uri=uri, status=status).items():
                self.assertEqual(ours[2].get(name), value, f"{name} in {log}")
                self.assertEqual(stock[2].get(name), value, f"{name} (json decoder) in {line}")
            # The values stay JSON-escaped through the PCRE2 decoder; the json decoder
            # unescapes them.
            self.assertEqual(ours[2]["user_agent"], r'agent \"q\" \\ x')
            self.assertEqual(stock[2]["user_agent"], 'agent "q" \\ x')
            # Without the program name the line is not ours (the stock json decoder has it).
            self.assertIsNone(decode(self.decoders, line))
        self.assertEqual(decode(self.decoders, *reversed(syslog_wrap(limited)))[2]["limit"],
                         "api:reject")
        fail = decode(self.decoders, *reversed(syslog_wrap(refused)))[2]
        self.assertRegex(fail["upstream_failure"], r"\S")
        self.assertEqual(fail["upstream_status"], "0")  # no answer from the upstream

        for way in ("json", "syslog"):
            rules = Rules()

            def ev(line):
                if way == "json":
                    d = stock_json_decoder(line)
                    return (line, d, d[2])
                program, log = syslog_wrap(line)
                d = decode(self.decoders, log, program)
                return (log, d, d[2])
            base = "100700" if way == "json" else "100701"
            self.assertEqual(rules.match(ev(ok)), {base}, way)
            self.assertEqual(rules.match(ev(notfound)), {base, "100702"}, way)
            self.assertEqual(rules.match(ev(refused)), {base, "100704", "100705"}, way)
            self.assertEqual(rules.match(ev(limited)), {base, "100702", "100706"}, way)
            # A request the WAF refused: its JSON line has the matched rules under "waf".
            self.assertRegex(waf, r'"waf":"\d+(,\d+)*"')
            self.assertIn("100708", rules.match(ev(waf)), way)
            # Frequency: 14 4xx from one address; 10 rate-limit rejections.
            fired = set()
            for _ in range(14):
                fired |= rules.match(ev(notfound))
            self.assertIn("100703", fired, way)
            fired = set()
            for _ in range(10):
                fired |= rules.match(ev(limited))
            self.assertIn("100707", fired, way)

    # -- the error log

    def test_error_log_upstream_and_limits(self):
        srv = self.start()
        self.assertEqual(http_get(srv.port, "/refused/x")[0], 502)
        self.assertEqual(http_get(srv.port, "/silent/x")[0], 504)
        self.assertEqual(http_get(srv.port, "/api/")[0], 200)
        self.assertEqual(http_get(srv.port, "/api/?q=1")[0], 429)
        rules = Rules()
        self.check_upstream_and_rate(srv, rules)
        srv = self.start(server={"limit": '["per_ip"]'},
                         extra='\n[limit.per_ip]\nconnections = 1\n')
        held = socket.create_connection(("127.0.0.1", srv.port))
        self.addCleanup(held.close)
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        held.recv(4096)
        second = socket.create_connection(("127.0.0.1", srv.port))
        second.settimeout(5)
        try:
            second.recv(4096)
        except OSError:
            pass
        second.close()
        conn = self.error_lines(srv, "refused a connection")[0]
        e = self.decode_error(conn, "wraith-limit-connection")
        self.assertEqual((e[2]["limit_zone"], e[2]["srcip"], e[2]["reason"]),
                         ("per_ip", "127.0.0.1", "too many connections"))
        self.assertEqual(rules.match(e), {"100720", "100726"})
        fired = set()
        for _ in range(20):
            fired |= rules.match(e)
        self.assertIn("100727", fired)

    def check_upstream_and_rate(self, srv, rules):
        refused = self.error_lines(srv, " proxy: connect to ")[0]
        e = self.decode_error(refused, "wraith-upstream-failure")
        self.assertEqual((e[2]["id"], e[2]["srcip"], e[2]["protocol"], e[2]["url"],
                          e[2]["log_level"]), ("502", "127.0.0.1", "GET", "/refused/x", "info"))
        self.assertIn("Connection refused", e[2]["upstream_error"])
        self.assertEqual(rules.match(e), {"100720", "100723"})

        timeout = self.error_lines(srv, " timed out ")[0]
        e = self.decode_error(timeout, "wraith-upstream-failure")
        self.assertEqual((e[2]["id"], e[2]["url"]), ("504", "/silent/x"))
        self.assertIn("timed out", e[2]["upstream_error"])
        fired = set()
        for _ in range(10):
            fired |= rules.match(e)
        self.assertIn("100724", fired)

        rejected = self.error_lines(srv, "rejected a request")[0]
        e = self.decode_error(rejected, "wraith-limit-request")
        self.assertEqual((e[2]["limit_zone"], e[2]["srcip"], e[2]["url"], e[2]["retry_after"],
                          e[2]["log_level"]), ("api", "127.0.0.1", "/api/?q=1", "60", "warn"))
        self.assertEqual(rules.match(e), {"100720", "100725"})

    def test_error_log_refused_reload(self):
        srv = self.start()
        good = srv.read(srv.conf)
        bad = good + "\n[nonsense]\nkey = 1\n"
        write_file(srv.conf, bad.encode())
        res = srv.reload()
        self.assertNotEqual(res.returncode, 0, res)
        problem = self.error_lines(srv, "master: reload: ")[0]
        e = self.decode_error(problem, "wraith-config-error")
        self.assertEqual((e[2]["config_file"], e[2]["process"], e[2]["log_level"]),
                         (srv.conf, "master", "error"))
        line_no = bad.split("\n").index("[nonsense]") + 1
        self.assertEqual(e[2]["config_line"], str(line_no), problem)
        self.assertRegex(e[2]["config_column"], r"^\d+$")
        self.assertIn("nonsense", e[2]["config_error"])
        rules = Rules()
        self.assertEqual(rules.match(e), {"100720", "100721"})

        verdict = self.error_lines(srv, "reload refused")[0]
        e = self.decode_error(verdict, "wraith-reload")
        self.assertEqual(e[2]["action"], "refused")
        self.assertEqual(rules.match(e), {"100720", "100722"})
        write_file(srv.conf, good.encode())

    def test_error_log_worker_killed(self):
        srv = self.start()
        rules = Rules()
        # A crash signal: SIGSEGV, but under AddressSanitizer (which takes SIGSEGV for a report
        # of its own and exits) SIGILL, which it leaves to the kernel. Both are rule 100728's.
        crash = signal.SIGILL if harness.SANITIZE else signal.SIGSEGV
        for sig, rule in ((crash, "100728"), (signal.SIGKILL, "100729")):
            victim = srv.worker_pids()[0]
            os.kill(victim, sig)
            srv.wait_workers(2, exclude=[victim])
            line = self.error_lines(srv, f"(pid {victim}) killed by signal")[0]
            e = self.decode_error(line, "wraith-worker-exit")
            self.assertEqual((e[2]["worker_pid"], e[2]["worker_exit"], e[2]["exit_value"],
                              e[2]["log_level"], e[2]["process"]),
                             (str(victim), "killed by signal", str(int(sig)), "error", "master"))
            self.assertEqual(rules.match(e) - {"100730"}, {"100720", rule})
        # A crash signal is what the harness counts as a crash; this test caused it on purpose.
        srv.crashes = lambda: []
        fired = set()
        for _ in range(3):
            fired |= rules.match(self.decode_error(
                self.error_lines(srv, f"killed by signal {int(crash)}")[0], "wraith-worker-exit"))
        self.assertIn("100730", fired)

    def test_error_log_crowdsec_unreachable(self):
        dead = free_port(False)
        srv = self.start(extra=f'\n[crowdsec]\nurl = "http://127.0.0.1:{dead}"\n'
                               f'api_key_file = "@DIR@/crowdsec.key"\ninterval = "1s"\n'
                               f'fallback = "pass"\n',
                         files={"crowdsec.key": b"not-a-real-key\n"})
        line = self.error_lines(srv, "crowdsec: cannot pull")[0]
        e = self.decode_error(line, "wraith-crowdsec-lapi")
        self.assertEqual(e[2]["lapi_url"], f"http://127.0.0.1:{dead}")
        self.assertRegex(e[2]["reason"], r"\S")
        self.assertEqual(Rules().match(e), {"100720", "100731"})

    def test_other_error_log_lines_reach_the_base_rule(self):
        srv = self.start()
        line = self.error_lines(srv, "master: started worker")[0]
        e = self.decode_error(line, "wraith-errorlog-line")
        self.assertEqual((e[2]["process"], e[2]["log_level"]), ("master", "info"))
        self.assertEqual(Rules().match(e), {"100720"})

    def test_every_decoder_and_rule_is_exercised_somewhere(self):
        """The pack's XML is what this test reads: each decoder name and rule id appears in
        an assertion above, so a new one without a case fails here."""
        with open(os.path.abspath(__file__)) as f:
            me = f.read()
        names = {d.name for p in load_decoders() for d in [p] + p.children}
        for n in sorted(names):
            self.assertIn(f'"{n}"', me, f"decoder {n} has no case in this test")
        for rid in Rules().rules:
            self.assertIn(f'"{rid}"', me, f"rule {rid} has no case in this test")


if __name__ == "__main__":
    harness.main()
