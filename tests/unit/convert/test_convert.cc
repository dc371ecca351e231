// `wraith convert`: what each NGINX directive becomes, what is reported as not converted
// (with FILE:LINE), and that the output is a configuration Wraith loads.
#include <catch2/catch.hpp>

#include <toml++/toml.h>

#include "common/config.h"
#include "convert/convert.h"
#include "convert/converter.h"
#include "convert/limits.h"
#include "convert/routes.h"

using namespace wraith::convert;

namespace {

ConvertResult convert(const std::string& text) {
    NginxConf conf = parse_nginx_conf(text, "/etc/nginx/nginx.conf", "/etc/nginx", {}, false);
    REQUIRE(conf.ok());
    ConvertResult r = convert_nginx(conf, "/etc/nginx/nginx.conf");
    REQUIRE(r.ok);
    return r;
}

bool has(const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
}

bool reported(const ConvertResult& r, const std::string& needle) {
    for (const auto& n : r.not_converted)
        if (has(n, needle))
            return true;
    return false;
}

} // namespace

TEST_CASE("convert: main context and listeners", "[convert]") {
    ConvertResult r = convert(R"(user www-data adm; worker_processes 4; pid /run/n.pid;
error_log /var/log/n.log warn; events { worker_connections 1024; }
http { server { listen 8080; listen [::]:8080; listen 127.0.0.1:8443 ssl http2 default_server;
  listen [::1]:9000 ipv6only=off backlog=100; server_name example.com; root /tmp; } })");
    CHECK(has(r.toml, "user = \"www-data\""));
    CHECK(has(r.toml, "group = \"adm\""));
    CHECK(has(r.toml, "workers = 4"));
    CHECK(has(r.toml, "pid_file = \"/run/n.pid\""));
    CHECK(has(r.toml, "log_level = \"warn\""));
    CHECK(has(r.toml, "max_connections = 1024"));
    CHECK(has(r.toml, "address = \"0.0.0.0:8080\""));
    CHECK(has(r.toml, "address = \"[::]:8080\"\nprotocols = [\"http/1.1\"]\nipv6_only = true"));
    CHECK(has(r.toml, "address = \"127.0.0.1:8443\"\ntls = true\nprotocols = [\"h2\", "
                      "\"http/1.1\"]"));
    CHECK(has(r.toml, "address = \"[::1]:9000\"\nprotocols = [\"http/1.1\"]\nbacklog = 100"));
    CHECK(has(r.toml, "default = true"));
    CHECK_NOTHROW((void)toml::parse(r.toml));
}

TEST_CASE("convert: server names", "[convert]") {
    ConvertResult r = convert(R"(http {
  server { server_name Example.COM .example.org www.example.* ~^api\d+\.x$ _; }
  server { server_name example.com; } })");
    CHECK(has(r.toml, R"(hosts = ["example.com", "example.org", "*.example.org", )"));
    CHECK(has(r.toml, R"(~^www\\.example\\.[^.]+(\\.[^.]+)*$)"));
    CHECK(has(r.toml, R"("~^api\\d+\\.x$")"));
    // The second server's name is the first's: NGINX warns and ignores it, as does Wraith.
    CHECK(reported(r, "server name example.com is also served by the server at "
                      "/etc/nginx/nginx.conf:2"));
}

TEST_CASE("convert: locations become routes", "[convert]") {
    ConvertResult r = convert(R"(http { gzip on; gzip_types text/css; server { root /srv;
  location = /exact { return 204; }
  location ^~ /static/ { expires 1h; }
  location ~* \.(png|jpg)$ { }
  location ~ ^/api { proxy_pass http://127.0.0.1:9000; }
  location / { try_files $uri $uri/ /index.html; index index.htm index.html; autoindex on; }
  location /old { return 301 https://$host$request_uri; }
  location /q { return 302 /x?$args; }
} })");
    CHECK(has(r.toml, "path = \"=/exact\"\n  respond = { status = 204 }"));
    CHECK(has(r.toml, "path = \"/static/\"\n  static = { root = \"/srv\", charset = \"\", "
                      "precompressed = false, cache_control = \"max-age=3600\" }"));
    CHECK(has(r.toml, R"(path = "~\\.([pP][nN][gG]|[jJ][pP][gG])$")"));
    CHECK(has(r.toml, "proxy = { pass = \"http://127.0.0.1:9000\" }"));
    CHECK(has(r.toml, "try_files = [\"$uri\", \"$uri/\", \"/index.html\"], autoindex = true"));
    CHECK(has(r.toml, "index = [\"index.htm\", \"index.html\"]"));
    CHECK(has(r.toml, "redirect = { to = \"https://$host$request_uri\", status = 301 }"));
    CHECK(has(r.toml, "redirect = { to = \"/x?$query\", status = 302 }"));
    CHECK(has(r.toml, "compress = { encodings = [\"gzip\"], types = [\"text/html\", "
                      "\"text/css\"], gzip_level = 1, min_size = \"20\" }"));
    CHECK(has(r.toml, "^~ is a plain prefix in Wraith"));
}

TEST_CASE("convert: proxy_pass, upstreams and proxy settings", "[convert]") {
    ConvertResult r = convert(R"(http {
  upstream app { ip_hash; server 10.0.0.1:80 weight=3 max_fails=2 fail_timeout=30s;
                 server app2.internal backup; server unix:/run/app.sock down; keepalive 16; }
  upstream h { hash $cookie_sid consistent; server 10.0.0.2:8080; }
  server {
    location /api/ { proxy_pass http://app/v2/; proxy_connect_timeout 2s;
                     proxy_set_header Host $host; proxy_set_header X-Token abc;
                     proxy_next_upstream error timeout http_502 http_503;
                     proxy_hide_header X-Powered-By; proxy_redirect off; }
    location /tls/ { proxy_pass https://10.0.0.9; }
    location /g { grpc_pass 127.0.0.1:50051; }
  } })");
    CHECK(has(r.toml, "[upstream.app]\nservers = [{ address = \"10.0.0.1:80\", weight = 3 }, "
                      "{ address = \"app2.internal:80\", backup = true }, { address = "
                      "\"unix:/run/app.sock\", down = true }]"));
    CHECK(has(r.toml, "balance = \"hash\""));
    CHECK(has(r.toml, "hash_key = \"client_ip\""));
    CHECK(has(r.toml, "hash_key = \"cookie:sid\""));
    CHECK(has(r.toml, "keepalive = 16"));
    CHECK(has(r.toml, "max_fails = 2"));
    CHECK(has(r.toml, "fail_timeout = \"30s\""));
    CHECK(has(r.toml, "connect_timeout = \"2s\""));
    CHECK(has(r.toml, "fail_statuses = [502, 503]"));
    CHECK(has(r.toml, "proxy = { upstream = \"app\", strip_prefix = \"/api/\", replace_prefix = "
                      "\"/v2/\", preserve_host = true, request_headers = { set = { \"X-Token\" "
                      "= \"abc\" } }, response_headers = { remove = [\"X-Powered-By\"] }, "
                      "redirect_rewrite = false }"));
    CHECK(has(r.toml, "servers = [\"10.0.0.9:443\"]"));
    CHECK(has(r.toml, "tls = { verify = false }"));
    CHECK(has(r.toml, "proxy = { pass = \"grpc://127.0.0.1:50051\" }"));
}

TEST_CASE("convert: TLS and client certificates", "[convert]") {
    ConvertResult r = convert(R"(http { ssl_protocols TLSv1.3; server { listen 443 ssl;
  ssl_certificate certs/a.pem; ssl_certificate_key /k/a.key;
  ssl_certificate b.pem; ssl_certificate_key b.key;
  ssl_client_certificate ca.pem; ssl_verify_client on; ssl_crl crl.pem; ssl_stapling on; } })");
    CHECK(has(r.toml, "tls = { certificates = [{ cert = \"/etc/nginx/certs/a.pem\", key = "
                      "\"/k/a.key\" }, { cert = \"/etc/nginx/b.pem\", key = "
                      "\"/etc/nginx/b.key\" }], min_version = \"1.3\", client_auth = "
                      "\"require\", client_ca = \"/etc/nginx/ca.pem\", crl = "
                      "\"/etc/nginx/crl.pem\" }"));
}

TEST_CASE("convert: what Wraith has not yet is reported with FILE:LINE", "[convert]") {
    ConvertResult r = convert("http {\n limit_req_zone $a zone=z:1m rate=1r/s;\n"
                              " map $a $b { default 1; }\n"
                              " server {\n  location / {\n   auth_basic x;\n   satisfy any;\n"
                              "   limit_req zone=z;\n   if ($x) { return 403; }\n"
                              "   rewrite ^/a/(.*)$ /b/$nginx_version last;\n   frobnicate on;\n"
                              "  }\n  location @named { }\n }\n}\n");
    CHECK(reported(r, "/etc/nginx/nginx.conf:2: limit_req_zone"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:3: map $a $b {...}"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:6: auth_basic x -- no auth_basic_user_file"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:7: satisfy any;"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:8: limit_req zone=z;"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:9: if ($x) {...}"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:10: rewrite ^/a/(.*)$ /b/$nginx_version last"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:11: frobnicate on;"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:13: location @named {...}"));
    // ...and listed in the file.
    CHECK(has(r.toml, "# Not converted (9):"));
}

TEST_CASE("convert: access rules, auth, real_ip and rewrites become Wraith keys", "[convert]") {
    ConvertResult r = convert(R"(http {
 set_real_ip_from 10.0.0.0/8; set_real_ip_from ::1; real_ip_header X-Forwarded-For;
 real_ip_recursive on;
 map $http_upgrade $connection_upgrade { default upgrade; '' close; }
 server { listen 127.0.0.1:18080; server_name a.test;
  rewrite ^/blog/(.*)$ /posts/$1 permanent;
  location /admin/ { allow 10.0.0.0/8; allow 2001:db8::/32; deny all; return 200 "admin $1"; }
  location /open/ { deny 192.0.2.7; return 200 "open"; }
  location /files/ { auth_basic "Members"; auth_basic_user_file htpasswd; root /srv; }
  location /app/ { auth_request /auth; auth_request_set $user $upstream_http_x_user;
                   proxy_pass http://127.0.0.1:9000; }
  location = /auth { internal; proxy_pass http://127.0.0.1:9091/verify; }
  location /old/ { rewrite ^/old/(.*)$ /new/$1?from=$arg_x last; }
  location /new/ { return 200 "new $uri $args"; }
 } })");
    INFO(r.toml);
    CHECK(has(r.toml,
              "real_ip = { header = \"X-Forwarded-For\", trusted = [\"10.0.0.0/8\", \"::1\"] }"));
    CHECK(has(r.toml, "redirect = { to = \"/posts/${1}\", status = 301 }"));
    CHECK(has(r.toml, "allow = [\"10.0.0.0/8\", \"2001:db8::/32\"]"));
    CHECK(has(r.toml, "deny = [\"192.0.2.7\"]"));
    CHECK(has(r.toml, "basic_auth = { file = \"/etc/nginx/htpasswd\", realm = \"Members\" }"));
    CHECK(has(r.toml, "forward_auth = { pass = \"http://127.0.0.1:9091\", uri = \"/verify\", "
                      "copy_headers = [\"x-user\"] }"));
    CHECK(has(r.toml,
              "rewrite = { pattern = \"^/old/(.*)$\", replace = \"/new/${1}?from=${arg_x}\" }"));
    CHECK(has(r.toml, "body = \"new $uri $args\""));
    CHECK(r.not_converted.empty());
    wraith::Diagnostics diag;
    auto config = wraith::load_config_text(r.toml, "converted.toml", "/tmp", diag);
    std::string problems;
    for (const auto& d : diag.list())
        problems += d.text() + "\n";
    INFO(problems);
    // Everything but the htpasswd file (not there in this test) loads.
    CHECK(diag.list().size() == 1);
    CHECK(problems.find("basic_auth.file: cannot read") != std::string::npos);
}

TEST_CASE("convert: deny entries before a deny all make one deny key", "[convert]") {
    // Found by fuzz_nginx_conf: two deny keys in one route, which TOML refuses.
    ConvertResult r = convert(R"(http { server { listen 127.0.0.1:18080;
  location / { deny 192.0.2.7; deny 198.51.100.0/24; deny all; return 200 "x"; } } })");
    INFO(r.toml);
    CHECK(has(r.toml, "deny = [\"all\"]"));
    CHECK_FALSE(has(r.toml, "192.0.2.7"));
    CHECK_NOTHROW(toml::parse(r.toml));
}

TEST_CASE("convert: the output loads as a Wraith configuration", "[convert]") {
    ConvertResult r = convert(R"(user root; http { gzip on; server { listen 127.0.0.1:18080;
  server_name a.test; root /tmp; error_page 404 /404.html;
  location = /h { default_type text/plain; return 200 "ok\n"; }
  location / { try_files $uri =404; } } })");
    wraith::Diagnostics diag;
    auto config = wraith::load_config_text(r.toml, "converted.toml", "/tmp", diag);
    std::string problems;
    for (const auto& d : diag.list())
        problems += d.text() + "\n";
    INFO(r.toml << problems);
    CHECK(config);
}

TEST_CASE("convert: redirect variables and case folding", "[convert]") {
    std::string out, unknown;
    CHECK(map_redirect_variables("https://$host${request_uri}", "", &out, &unknown));
    CHECK(out == "https://$host$request_uri");
    CHECK(map_redirect_variables("$scheme://$server_name/$args", "ex.com", &out, &unknown));
    CHECK(out == "$scheme://ex.com/$query");
    CHECK(map_redirect_variables("/$cookie_x/$1x", "", &out, &unknown));
    CHECK(out == "/${cookie_x}/${1}x");
    CHECK_FALSE(map_redirect_variables("/$nginx_version", "", &out, &unknown));
    CHECK(unknown == "$nginx_version");
    CHECK(fold_case("\\.(php|Js)$") == "\\.([pP][hH][pP]|[Jj][sS])$");
    CHECK(fold_case("[a-c0-9_]x") == "[a-cA-C0-9_][xX]");
    CHECK(fold_case("[^x]") == "[^xX]");
}

TEST_CASE("convert: bytes that are not UTF-8 are reported, the output stays UTF-8 TOML",
          "[convert]") {
    ConvertResult r = convert("http { server { listen 80;\n location / { root /srv/\xff\xfe; }\n"
                              " location /ok { root /srv/caf\xc3\xa9; } } }");
    CHECK(reported(r, "/etc/nginx/nginx.conf:2: root /srv/\xef\xbf\xbd\xef\xbf\xbd; -- not "
                      "valid UTF-8"));
    CHECK(has(r.toml, "root = \"/srv/caf\xc3\xa9\""));
    CHECK_NOTHROW((void)toml::parse(r.toml));
    CHECK_FALSE(wraith::convert::valid_utf8("\xc0\xaf"));     // overlong
    CHECK_FALSE(wraith::convert::valid_utf8("\xed\xa0\x80")); // surrogate
    CHECK(wraith::convert::valid_utf8("\xf0\x9f\x98\x80"));
}

TEST_CASE("convert: limit_req, limit_conn and limit_rate become [limit.NAME] zones and limit keys",
          "[convert]") {
    ConvertResult r = convert(R"(http {
 limit_req_zone $binary_remote_addr zone=api:10m rate=20r/s;
 limit_req_zone $http_x_api_key zone=keys:1m rate=600r/m;
 limit_conn_zone $binary_remote_addr zone=addr:10m;
 limit_req_status 429;
 limit_conn_status 429;
 server { listen 127.0.0.1:18080; server_name a.test; root /tmp;
  limit_conn addr 10;
  location /api/ { limit_req zone=api burst=40 nodelay; proxy_pass http://127.0.0.1:9000; }
  location /slow/ { limit_req zone=keys burst=10 delay=4; }
  location /dl/ { limit_rate 100k; limit_rate_after 1m; }
  location = /health { return 200 "ok"; }
  location / { }
 } })");
    INFO(r.toml);
    CHECK(has(r.toml, "[limit.api]\n# limit_req_zone at /etc/nginx/nginx.conf:2\nrate = \"20/s\"\n"
                      "size = \"10m\"\nburst = 40\nstatus = 429\n"));
    CHECK(has(r.toml, "[limit.keys]\n# limit_req_zone at /etc/nginx/nginx.conf:3\nrate = "
                      "\"600/m\"\nkey = \"$http_x_api_key\"\nsize = \"1m\"\nburst = 10\nmode = "
                      "\"delay\"\ndelay_after = 4\nstatus = 429\n"));
    CHECK(has(r.toml, "size = \"10m\"\nconnections = 10\nstatus = 429\n"));
    CHECK(has(r.toml, "[limit.bandwidth_100k_after_1m]"));
    CHECK(has(r.toml, "bandwidth = \"100k\"\nbandwidth_after = \"1m\"\n"));
    // Connection zones are counted at accept: [server] limit, noted for a server-level one.
    CHECK(has(r.toml, "\n[server]\nlimit = [\"addr\"]"));
    CHECK(has(r.toml, "limit_conn in a server or location block: Wraith counts connections at "
                      "accept"));
    CHECK(has(r.toml, "limit = [\"api\"]"));
    CHECK(has(r.toml, "limit = [\"keys\"]"));
    CHECK(has(r.toml, "limit = [\"bandwidth_100k_after_1m\"]"));
    // NGINX's return answers before any limit: the respond route has none.
    CHECK(has(r.toml, "respond = { status = 200, body = \"ok\", content_type = \"text/plain\" }\n"
                      "  compress = false\n"));
    // A key that may be empty: NGINX does not count such requests, Wraith by address.
    CHECK(has(r.toml, "NGINX does not limit a request whose key is empty"));
    CHECK(r.not_converted.empty());
    wraith::Diagnostics diag;
    auto config = wraith::load_config_text(r.toml, "converted.toml", "/tmp", diag);
    std::string problems;
    for (const auto& d : diag.list())
        problems += d.text() + "\n";
    INFO(problems);
    CHECK(config);
    CHECK(diag.list().empty());
}

TEST_CASE("convert: limits NGINX sets per use are settled on the zone, differences noted",
          "[convert]") {
    ConvertResult r = convert(R"(http {
 limit_req_zone $binary_remote_addr zone=one:1m rate=10r/s;
 limit_req_zone $server_name zone=site:32k rate=100r/s;
 limit_req_zone $limit_key zone=mapped:1m rate=1r/s;
 limit_conn_zone $http_x_user zone=users:1m;
 limit_conn_zone $binary_remote_addr zone=dry:1m;
 limit_req zone=site;
 server { listen 127.0.0.1:18080; root /tmp;
  location /a/ { limit_req zone=one burst=5; }
  location /b/ { limit_req zone=one burst=20 nodelay; }
  location /c/ { limit_req_dry_run on; limit_req zone=one burst=5; }
  location /d/ { limit_req zone=mapped; }
  location /e/ { limit_conn users 2; }
  location /f/ { limit_conn_dry_run on; limit_conn dry 2; }
  location /g/ { limit_req zone=nope; }
  location / { }
 } })");
    INFO(r.toml);
    // Without nodelay NGINX delays within the burst: the first use settles the zone.
    CHECK(has(r.toml, "[limit.one]\n# limit_req_zone at /etc/nginx/nginx.conf:2\n"
                      "# NGINX answered 503 (limit_req_status); Wraith answers 429 with "
                      "Retry-After: add status = 503 to keep NGINX's\nrate = \"10/s\"\nsize = "
                      "\"1m\"\nburst = 5\nmode = \"delay\"\n"));
    CHECK(has(r.toml, "limit_req zone=one: Wraith sets these on the zone, [limit.one], for every "
                      "route that lists it: burst = 5, mode = \"delay\" (from "
                      "/etc/nginx/nginx.conf:9) is used here too, not burst = 20"));
    CHECK(has(r.toml, "not burst = 5, mode = \"dry_run\""));
    // $server_name is the host name asked for; the http-level limit_req is inherited by
    // locations without their own (NGINX's array rule), replaced by those with one.
    CHECK(has(r.toml, "key = \"$host\"\nsize = \"32k\""));
    CHECK(has(r.toml, "$server_name is $host"));
    CHECK(has(r.toml, "path = \"/\"\n  static = "));
    CHECK(has(r.toml, "limit = [\"site\"]"));
    CHECK(has(r.toml, "limit = [\"one\"]"));
    CHECK_FALSE(has(r.toml, "limit = [\"site\", \"one\"]"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:4: limit_req_zone $limit_key zone=mapped:1m "
                      "rate=1r/s; -- key variable $limit_key"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:12: limit_req zone=mapped; -- its zone mapped was "
                      "not converted"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:5: limit_conn_zone $http_x_user zone=users:1m; -- "
                      "key $http_x_user"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:14: limit_conn dry 2; -- limit_conn_dry_run on"));
    CHECK(reported(r, "/etc/nginx/nginx.conf:15: limit_req zone=nope; -- no zone nope"));
    // A connection zone nothing uses is not written (Wraith has no empty one).
    CHECK(has(r.toml, "# limit_conn_zone at /etc/nginx/nginx.conf:6: no limit_conn uses it"));
    CHECK_FALSE(has(r.toml, "[limit.dry]"));
    wraith::Diagnostics diag;
    auto config = wraith::load_config_text(r.toml, "converted.toml", "/tmp", diag);
    std::string problems;
    for (const auto& d : diag.list())
        problems += d.text() + "\n";
    INFO(problems);
    CHECK(config);
}

TEST_CASE("convert: limit_req_zone keys as Wraith variables", "[convert]") {
    std::string out, unknown, note;
    CHECK(limit_key("$binary_remote_addr", &out, &unknown, &note));
    CHECK(out == "$client_ip");
    CHECK(limit_key("$binary_remote_addr$uri", &out, &unknown, &note));
    CHECK(out == "$client_ip$uri");
    CHECK(limit_key("${remote_addr}_x:$http_x_api_key", &out, &unknown, &note));
    CHECK(out == "${client_ip}_x:$http_x_api_key");
    CHECK(limit_key("$request_method $args", &out, &unknown, &note));
    CHECK(out == "$method $args");
    CHECK(note.empty());
    CHECK(limit_key("$http_host", &out, &unknown, &note));
    CHECK(out == "$host");
    CHECK_FALSE(note.empty());
    CHECK_FALSE(limit_key("$jwt_claim_sub", &out, &unknown, &note));
    CHECK(unknown == "$jwt_claim_sub");
}

TEST_CASE("convert: NGINX zone names Wraith cannot take get distinct valid ones", "[convert]") {
    ConvertResult r = convert(R"(http {
 limit_req_zone $binary_remote_addr zone=a.b:1m rate=1r/s;
 limit_req_zone $binary_remote_addr zone=a_b:1m rate=2r/s;
 limit_req_zone $binary_remote_addr zone=bandwidth_8k:1m rate=3r/s;
 server { listen 127.0.0.1:18080; root /tmp;
  location /x/ { limit_req zone=a.b; limit_req zone=a_b; }
  location /y/ { limit_req zone=bandwidth_8k; limit_rate 8k; }
 } })");
    INFO(r.toml);
    CHECK(has(r.toml, "[limit.a_b]\n# limit_req_zone at /etc/nginx/nginx.conf:2"));
    CHECK(has(r.toml, "[limit.a_b_2]\n# limit_req_zone at /etc/nginx/nginx.conf:3"));
    CHECK(has(r.toml, "limit = [\"a_b\", \"a_b_2\"]"));
    CHECK(has(r.toml, "limit = [\"bandwidth_8k\", \"bandwidth_8k_2\"]"));
    wraith::Diagnostics diag;
    CHECK(wraith::load_config_text(r.toml, "converted.toml", "/tmp", diag));
}

TEST_CASE("convert: stub_status becomes a metrics route", "[convert]") {
    ConvertResult r = convert(R"(http { server { listen 8080;
  location = /basic_status { stub_status; allow 127.0.0.1; deny all; }
  location / { root /srv; }
} })");
    CHECK(has(r.toml, "path = \"=/basic_status\"\n  metrics = {}"));
    CHECK(has(r.toml, "allow = [\"127.0.0.1\"]"));
    CHECK(has(r.toml, "stub_status: Wraith answers with Prometheus series"));
    CHECK(!reported(r, "stub_status"));
    // The output is a configuration Wraith loads.
    wraith::Diagnostics diag;
    CHECK(wraith::load_config_text(r.toml, "converted.toml", "/tmp", diag));
    CHECK(diag.count() == 0);
}

TEST_CASE("convert: a server weight too large for an integer is left out", "[convert]") {
    // Found by fuzz_nginx_conf: the digits went out as a TOML integer it cannot hold.
    ConvertResult r = convert(R"(http { upstream u {
  server 127.0.0.1:81 weight=99999999999999999999999 max_conns=12345678901;
  server 127.0.0.1:82 weight=5; }
  server { listen 8080; location / { proxy_pass http://u; } } })");
    CHECK(has(r.toml, "{ address = \"127.0.0.1:82\", weight = 5 }"));
    CHECK(has(r.toml, "weight=99999999999999999999999: too large; left out"));
    CHECK(has(r.toml, "max_conns=12345678901: too large; left out"));
    CHECK_NOTHROW(toml::parse(r.toml));
}
