"""Test certificates for the TLS integration tests, made at test time with the `openssl` CLI.

No private key is ever committed: every test run makes its own CA, leaves, client certificates
and CRLs in a temp folder. Keys are ECDSA P-256 (fast) unless a test asks for RSA-2048.

    pki = tlsutil.TestPki(dir)
    ca = pki.ca("server-ca")                              # Ca: .cert, .key (paths)
    a = ca.issue("a", ["a.test", "*.wild.test"])          # Cert: .cert, .key, .chain (paths)
    rsa = ca.issue("rsa", ["rsa.test"], key_type="rsa")
    old = ca.issue("old", ["old.test"], expired=True)
    bad = ca.issue_mismatched("bad", ["bad.test"])        # key is not the certificate's
    cca = pki.ca("client-ca")
    alice = cca.issue("alice", [], client=True)           # clientAuth, CN=alice
    crl = cca.crl(revoke=[alice])                         # path of a PEM CRL

Every function returns absolute paths. Every file, keys included, is world-readable so that
workers running as www-data can read them: they are throwaway keys in a per-run temp folder.
"""

import collections
import ipaddress
import os
import re
import subprocess

OPENSSL = os.environ.get("OPENSSL", "openssl")

Cert = collections.namedtuple("Cert", "name cert key chain")
Cert.__doc__ = """cert: the certificate alone; key: its private key; chain: certificate then CA."""

# Used instead of the system openssl.cnf, so Debian's defaults (extensions added by `req -x509`,
# SECLEVEL) never change what the tests make.
_CONFIG = """\
openssl_conf = openssl_init
[openssl_init]

[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused

[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
crlnumber = $dir/crlnumber
new_certs_dir = $dir/issued
certificate = {cert}
private_key = {key}
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[policy_any]
commonName = supplied
organizationName = optional

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def run_openssl(*args, cwd=None, config=None, input=None):
    """Runs `openssl ARGS`; returns stdout (bytes). Raises RuntimeError with stderr on failure."""
    env = dict(os.environ)
    if config:
        env["OPENSSL_CONF"] = config
    p = subprocess.run([OPENSSL] + [str(a) for a in args], cwd=cwd, env=env, input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed ({p.returncode}):\n"
                           + p.stderr.decode(errors="replace"))
    return p.stdout


def make_key(path, key_type="ec"):
    """Writes a PKCS#8 PEM private key: "ec" (P-256) or "rsa" (2048 bits). Returns path."""
    if key_type == "ec":
        run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-pkeyopt", "ec_param_enc:named_curve", "-out", path)
    elif key_type == "rsa":
        run_openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", path)
    else:
        raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")
    os.chmod(path, 0o644)
    return path


def san_text(names):
    """subjectAltName value for DNS names and IP addresses: "DNS:a.test, IP:127.0.0.1"."""
    out = []
    for n in names:
        try:
            out.append(f"IP:{ipaddress.ip_address(n.strip('[]'))}")
        except ValueError:
            out.append(f"DNS:{n}")
    return ", ".join(out)


def _cat(path, *parts):
    with open(path, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                out.write(f.read())
    os.chmod(path, 0o644)
    return path


class Ca:
    """A test CA backed by an `openssl ca` database in its own folder."""

    def __init__(self, dir, name, cn=None, key_type="ec"):
        self.name = name
        self.dir = dir
        os.makedirs(os.path.join(dir, "issued"), exist_ok=True)
        os.chmod(dir, 0o755)
        self.key = make_key(os.path.join(dir, "ca.key"), key_type)
        self.cert = os.path.join(dir, "ca.pem")
        self.config = os.path.join(dir, "openssl.cnf")
        with open(self.config, "w") as f:
            f.write(_CONFIG.format(dir=dir, cert=self.cert, key=self.key))
        open(os.path.join(dir, "index.txt"), "w").close()
        with open(os.path.join(dir, "index.txt.attr"), "w") as f:
            f.write("unique_subject = no\n")
        with open(os.path.join(dir, "serial"), "w") as f:
            f.write(os.urandom(8).hex().upper().lstrip("0").rjust(16, "1") + "\n")
        with open(os.path.join(dir, "crlnumber"), "w") as f:
            f.write("1000\n")
        run_openssl("req", "-config", self.config, "-new", "-x509", "-key", self.key,
                    "-subj", f"/O=Wraith tests/CN={cn or name}", "-days", "3650",
                    "-extensions", "v3_ca", "-out", self.cert, config=self.config)
        os.chmod(self.cert, 0o644)

    def _sign(self, name, key, cn, ext_lines, days=30, expired=False):
        csr = os.path.join(self.dir, f"{name}.csr")
        run_openssl("req", "-config", self.config, "-new", "-key", key, "-subj",
                    f"/O=Wraith tests/CN={cn}", "-out", csr, config=self.config)
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write("[leaf]\n" + "\n".join(ext_lines) + "\n")
        cert = os.path.join(self.dir, f"{name}.pem")
        dates = ["-startdate", "200101000000Z", "-enddate", "200201000000Z"] if expired \
            else ["-days", str(days)]
        run_openssl("ca", "-config", self.config, "-batch", "-notext", "-in", csr, "-out", cert,
                    "-extfile", ext, "-extensions", "leaf", *dates, config=self.config)
        os.chmod(cert, 0o644)
        return cert

    def issue(self, name, sans, key_type="ec", cn=None, days=30, expired=False, client=False):
        """A leaf certificate signed by this CA. sans: DNS names / IP addresses (may be empty
        for a client). client=True makes a clientAuth certificate. expired=True: valid only
        in January 2020. Returns Cert."""
        key = make_key(os.path.join(self.dir, f"{name}.key"), key_type)
        usage = "digitalSignature" if key_type == "ec" else "digitalSignature, keyEncipherment"
        ext = ["basicConstraints = critical, CA:FALSE",
               f"keyUsage = critical, {usage}",
               f"extendedKeyUsage = {'clientAuth' if client else 'serverAuth'}",
               "subjectKeyIdentifier = hash",
               "authorityKeyIdentifier = keyid"]
        if sans:
            ext.append("subjectAltName = " + san_text(sans))
        cert = self._sign(name, key, cn or (sans[0] if sans else name), ext, days, expired)
        chain = _cat(os.path.join(self.dir, f"{name}.chain.pem"), cert, self.cert)
        return Cert(name, cert, key, chain)

    def issue_mismatched(self, name, sans, key_type="ec"):
        """A valid certificate paired with a different key of the same type."""
        good = self.issue(name, sans, key_type)
        other = make_key(os.path.join(self.dir, f"{name}.other.key"), key_type)
        return Cert(name, good.cert, other, good.chain)

    def revoke(self, cert):
        run_openssl("ca", "-config", self.config, "-batch", "-revoke",
                    cert.cert if isinstance(cert, Cert) else cert, config=self.config)

    def crl(self, revoke=()):
        """Revokes each of `revoke` (Cert or path), then writes and returns a PEM CRL."""
        for c in revoke:
            self.revoke(c)
        path = os.path.join(self.dir, f"crl-{len(os.listdir(self.dir))}.pem")
        run_openssl("ca", "-config", self.config, "-batch", "-gencrl", "-out", path,
                    config=self.config)
        os.chmod(path, 0o644)
        return path


class TestPki:
    """Every CA and certificate of one test run, under `dir`."""

    def __init__(self, dir):
        self.dir = os.path.abspath(dir)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)

    def ca(self, name="test-ca", cn=None, key_type="ec"):
        return Ca(os.path.join(self.dir, name), name, cn or f"Wraith {name}", key_type)


# --------------------------------------------------------------------------------------------
# Reading certificates back


def cert_text(pem):
    """`openssl x509 -text` of a PEM certificate (bytes or str or a path)."""
    if isinstance(pem, str) and os.path.exists(pem):
        return run_openssl("x509", "-noout", "-text", "-in", pem).decode()
    if isinstance(pem, str):
        pem = pem.encode()
    return run_openssl("x509", "-noout", "-text", input=pem).decode()


def subject_cn(pem):
    """The subject CN of a PEM certificate, or None."""
    m = re.search(r"Subject:.*?CN\s*=\s*([^,\n]+)", cert_text(pem))
    return m.group(1).strip() if m else None


def alt_names(pem):
    """subjectAltName entries as a list of "DNS:x" / "IP Address:y" strings."""
    m = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.+)", cert_text(pem))
    return [s.strip() for s in m.group(1).split(",")] if m else []


def pem_blocks(text):
    """Every PEM certificate block in `text` (e.g. `s_client -showcerts` output), in order."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
