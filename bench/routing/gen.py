"""Writes the routing bench's configs and request lists (bench/routing.sh).

  gen.py DIR PORT

DIR/full.toml, DIR/one.toml: Wraith with 100 hosts x 10 routes (exact, prefixes, regexes with
captures, a header condition and its fallback) and with one route; DIR/nginx-full.conf and
DIR/nginx-one.conf: the equivalent NGINX servers (conditions as `if` in the location); and
DIR/requests.txt + DIR/requests.lua: the request mix, for route_bench and wrk."""

import os
import sys

d, port = sys.argv[1], sys.argv[2]
HOSTS = 100


def routes(i):
    """(wraith route TOML, nginx location) pairs of host i: 10 routes."""
    r = []
    r.append((f'path = "=/exact{i}"\n  respond = {{ body = "h{i}:exact" }}',
              f'location = /exact{i} {{ return 200 "h{i}:exact"; }}'))
    for k in range(1, 4):
        r.append((f'path = "/api/v{k}/"\n  respond = {{ body = "h{i}:api{k}" }}',
                  f'location /api/v{k}/ {{ return 200 "h{i}:api{k}"; }}'))
    for k in range(1, 4):
        r.append((f"path = '~^/item/(\\d+)/r{k}$'\n  respond = {{ body = \"h{i}:item{k} $1\" }}",
                  f'location ~ ^/item/(\\d+)/r{k}$ {{ return 200 "h{i}:item{k} $1"; }}'))
    r.append((f'path = "/static/"\n  respond = {{ body = "h{i}:static" }}',
              f'location /static/ {{ return 200 "h{i}:static"; }}'))
    # The conditional pair: NGINX has one location with an `if`.
    r.append((f'path = "/"\n  match = {{ headers = {{ "X-Beta" = "1" }} }}\n'
              f'  respond = {{ body = "h{i}:beta" }}',
              f'location / {{ if ($http_x_beta = "1") {{ return 200 "h{i}:beta"; }} '
              f'return 200 "h{i}:root"; }}'))
    r.append((f'path = "/"\n  respond = {{ body = "h{i}:root" }}', None))
    return r


head = f'''[server]
workers = 1
pid_file = "{d}/wraith.pid"
control_socket = "{d}/wraith.sock"
error_log = "{d}/wraith-error.log"
{'user = "www-data"' if os.geteuid() == 0 else ''}

[access_log]
path = "off"

[[listen]]
address = "127.0.0.1:{port}"
'''
full = [head]
nginx_servers = []
n_routes = 0
for i in range(HOSTS):
    full.append(f'\n[[site]]\nhosts = ["h{i}.bench"]\n')
    locs = []
    for toml, loc in routes(i):
        full.append(f"  [[site.route]]\n  {toml}\n")
        n_routes += 1
        if loc:
            locs.append("        " + loc)
    nginx_servers.append(f"    server {{\n        listen 127.0.0.1:{port}{' default_server' if i == 0 else ''};\n"
                         f"        server_name h{i}.bench;\n" + "\n".join(locs) + "\n    }\n")
assert n_routes == 1000
open(f"{d}/full.toml", "w").write("".join(full))
open(f"{d}/one.toml", "w").write(head + '\n[[site]]\nhosts = ["*"]\n  [[site.route]]\n  path = "/"\n'
                                 '  respond = { body = "h0:root" }\n')


def nginx(name, servers):
    user = "user www-data;" if os.geteuid() == 0 else ""
    open(f"{d}/{name}", "w").write(f'''daemon off;
master_process on;
worker_processes 1;
{user}
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/plain;
    server_names_hash_bucket_size 128;
    keepalive_requests 100000;
{servers}
}}
''')


nginx("nginx-full.conf", "".join(nginx_servers))
nginx("nginx-one.conf", f'    server {{\n        listen 127.0.0.1:{port} default_server;\n'
                        f'        location / {{ return 200 "h0:root"; }}\n    }}\n')

# The mix: every kind of decision, spread over the hosts. A request that ends on a prefix
# route after every regex was tried is the expensive one in NGINX's order, so half are such.
reqs = []
for i in range(0, HOSTS, 7):
    reqs += [(f"h{i}.bench", f"/exact{i}", None), (f"h{i}.bench", "/api/v2/users", None),
             (f"h{i}.bench", "/item/42/r3", None), (f"h{i}.bench", "/static/app.js", None),
             (f"h{i}.bench", "/home", ("X-Beta", "1")), (f"h{i}.bench", "/home", None),
             (f"h{i}.bench", "/api/v9/x", None), (f"h{i}.bench", "/item/x/r1", None)]
with open(f"{d}/requests.txt", "w") as f:
    for h, p, hdr in reqs:
        f.write(f"{h} {p}" + (f" {hdr[0]}: {hdr[1]}" if hdr else "") + "\n")
with open(f"{d}/requests.lua", "w") as f:
    f.write("local reqs = {\n")
    for h, p, hdr in reqs:
        extra = f', ["{hdr[0]}"] = "{hdr[1]}"' if hdr else ""
        f.write(f'  wrk.format("GET", "{p}", {{ ["Host"] = "{h}"{extra} }}),\n')
    f.write("}\nlocal n = 0\nrequest = function()\n  n = n % #reqs + 1\n  return reqs[n]\nend\n")
with open(f"{d}/requests-one.lua", "w") as f:
    f.write("local reqs = {\n")
    for h, p, hdr in reqs:
        f.write(f'  wrk.format("GET", "{p}", {{ ["Host"] = "{h}" }}),\n')
    f.write("}\nlocal n = 0\nrequest = function()\n  n = n % #reqs + 1\n  return reqs[n]\nend\n")
