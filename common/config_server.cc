// The loader's [server], [http], [http2], [http3], [access_log] and [[listen]] tables.
#include <algorithm>
#include <filesystem>
#include <unistd.h>

#include <toml++/toml.h>

#include "common/accounts.h"
#include "common/config_loader.h"
#include "common/config_values.h"
#include "common/variables.h"
#include "common/mime.h"
#include "common/module.h"

namespace wraith::config_loader {

using namespace config_values;
namespace fs = std::filesystem;

void Loader::load_server(const toml::table& t) {
    ServerConfig& s = cfg_.server;
    const bool root = geteuid() == 0;
    const std::string state = root ? "/run" : home_dir() + "/.wraith";
    s.pid_file = state + "/wraith.pid";
    s.control_socket = state + "/wraith.sock";
    s.cert_dir = root ? "/etc/wraith/certs" : home_dir() + "/.wraith/certs";

    TableReader r(t, diag_, "server");
    if (const toml::node* n = r.node("workers")) {
        const auto* text = n->as_string();
        const auto* number = n->as_integer();
        if (text && text->get() == "auto")
            s.workers = 0;
        else if (number && number->get() >= 1 && number->get() <= 256)
            s.workers = static_cast<int>(number->get());
        else
            diag_.error(n, "server.workers: expected \"auto\" or an integer between 1 and "
                           "256, got " +
                               describe_value(*n));
    }
    std::optional<std::string> user = r.string("user");
    std::optional<std::string> group = r.string("group");
    if (user && user->empty())
        r.error("user", "must not be empty");
    else if (user)
        s.user = *user;
    if (group)
        s.group = *group;
    // Only a root master switches users, so only then must they exist.
    // The default user too: a root master without it could not start workers.
    if (root && !s.user.empty() && !user_exists(s.user))
        r.error("user", "user " + in_quotes(s.user) + " does not exist" +
                            (user ? "" : " (the default; set server.user to one that does)"));
    if (root && group && !group->empty() && !group_exists(*group))
        r.error("group", "group " + in_quotes(*group) + " does not exist");
    path_option(r, "pid_file", s.pid_file);
    path_option(r, "control_socket", s.control_socket);
    if (std::optional<std::string> log = r.string("error_log")) {
        if (log->empty())
            r.error("error_log", "must not be empty (use \"stderr\", \"stdout\" or a path)");
        else if (*log == "stderr" || *log == "stdout")
            s.error_log = *log;
        else
            s.error_log = resolve_path(cfg_.dir, *log);
    }
    s.log_level = r.choice("log_level", s.log_level, {"error", "warn", "info", "debug"});
    read_positive(r, "drain_timeout", s.drain_timeout);
    path_option(r, "cert_dir", s.cert_dir);
    path_option(r, "mime_types", s.mime_types);
    s.max_connections = static_cast<size_t>(
        r.integer("max_connections", static_cast<int64_t>(s.max_connections), 1, 1000000));
    s.seccomp = r.boolean("seccomp", s.seccomp);
    s.landlock = r.boolean("landlock", s.landlock);
    if (auto allow = r.strings("landlock_allow")) {
        for (const std::string& p : *allow) {
            std::error_code ec;
            std::string path = resolve_path(cfg_.dir, p);
            if (!fs::exists(path, ec))
                r.error("landlock_allow", "path " + in_quotes(path) + " does not exist");
            else
                s.landlock_allow.push_back(path);
        }
        if (!s.landlock)
            r.error("landlock_allow", "applies to landlock = true");
    }
    load_mime_types(r);
    mark_filter_keys(r); // filters at server scope: built once the rest is loaded
    r.finish();
}

// An explicit server.mime_types must exist; the default one beside the config is optional.
void Loader::load_mime_types(TableReader& r) {
    ServerConfig& s = cfg_.server;
    std::error_code ec;
    if (r.has("mime_types")) {
        if (s.mime_types.empty())
            return; // already reported
        if (!fs::exists(s.mime_types, ec)) {
            r.error("mime_types", "file " + in_quotes(s.mime_types) + " does not exist");
        } else {
            cfg_.mime = MimeTypes::load(s.mime_types, diag_);
        }
    } else {
        std::string beside = resolve_path(cfg_.dir, "mime.types");
        if (!cfg_.dir.empty() && fs::is_regular_file(beside, ec)) {
            s.mime_types = beside;
            cfg_.mime = MimeTypes::load(beside, diag_);
        }
    }
    if (!cfg_.mime)
        cfg_.mime = MimeTypes::builtin(); // so modules built later still have a table
}

void Loader::load_http(const toml::table& t) {
    HttpConfig& h = cfg_.http;
    TableReader r(t, diag_, "http");
    h.client_max_body_size = r.size("client_max_body_size", h.client_max_body_size);
    h.max_request_target = r.size("max_request_target", h.max_request_target);
    h.max_header_size = r.size("max_header_size", h.max_header_size);
    h.max_headers = static_cast<uint64_t>(
        r.integer("max_headers", static_cast<int64_t>(h.max_headers), 1, 10000));
    read_positive(r, "header_timeout", h.header_timeout);
    read_positive(r, "body_timeout", h.body_timeout);
    read_positive(r, "keepalive_timeout", h.keepalive_timeout);
    read_positive(r, "send_timeout", h.send_timeout);
    h.keepalive_requests = static_cast<uint64_t>(
        r.integer("keepalive_requests", static_cast<int64_t>(h.keepalive_requests), 1, 1000000000));
    h.server_header = r.string("server_header", h.server_header);

    if (h.max_header_size < 1024 || h.max_header_size > (1u << 20))
        r.error("max_header_size",
                "must be between 1k and 1m, got " + std::to_string(h.max_header_size));
    else if (h.max_request_target < 256 || h.max_request_target > h.max_header_size)
        r.error("max_request_target", "must be between 256 and max_header_size (" +
                                          std::to_string(h.max_header_size) + "), got " +
                                          std::to_string(h.max_request_target));
    // It goes out verbatim as a field value: no CR/LF injection.
    if (std::any_of(h.server_header.begin(), h.server_header.end(),
                    [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
        r.error("server_header", "must not contain control characters");
    r.finish();
}

void Loader::load_http2(const toml::table& t) {
    Http2Config& h = cfg_.http2;
    TableReader r(t, diag_, "http2");
    h.max_concurrent_streams = static_cast<uint32_t>(
        r.integer("max_concurrent_streams", h.max_concurrent_streams, 1, 10000));
    // RFC 9113 §6.5.2: windows up to 2^31-1, frames 2^14..2^24-1.
    auto window = [&](std::string_view key, uint32_t& out, uint64_t min) {
        uint64_t v = r.size(key, out);
        if (v < min || v > 0x7fffffff)
            r.error(key, "must be between " + std::to_string(min / 1024) +
                             "k and 2147483647 bytes, got " + std::to_string(v));
        else
            out = static_cast<uint32_t>(v);
    };
    window("initial_window_size", h.initial_window_size, 16384);
    window("connection_window_size", h.connection_window_size, 65536);
    uint64_t frame = r.size("max_frame_size", h.max_frame_size);
    if (frame < 16384 || frame > 16777215)
        r.error("max_frame_size",
                "must be between 16k and 16777215 bytes, got " + std::to_string(frame));
    else
        h.max_frame_size = static_cast<uint32_t>(frame);
    // By default the same budget as an HTTP/1 head (checked with [http]).
    h.max_header_list_size = r.size("max_header_list_size", cfg_.http.max_header_size);
    if (r.has("max_header_list_size") &&
        (h.max_header_list_size < 1024 || h.max_header_list_size > (1u << 20)))
        r.error("max_header_list_size",
                "must be between 1k and 1m, got " + std::to_string(h.max_header_list_size));
    h.rapid_reset_limit =
        static_cast<uint32_t>(r.integer("rapid_reset_limit", h.rapid_reset_limit, 1, 100000));
    h.rapid_reset_burst =
        static_cast<uint32_t>(r.integer("rapid_reset_burst", h.rapid_reset_burst, 1, 100000));
    h.control_frame_limit =
        static_cast<uint32_t>(r.integer("control_frame_limit", h.control_frame_limit, 1, 100000));
    h.max_continuations =
        static_cast<uint32_t>(r.integer("max_continuations", h.max_continuations, 0, 1000));
    r.finish();
}

void Loader::load_http3(const toml::table& t) {
    Http3Config& h = cfg_.http3;
    TableReader r(t, diag_, "http3");
    h.max_connections =
        static_cast<uint32_t>(r.integer("max_connections", h.max_connections, 1, 1000000));
    h.max_concurrent_streams = static_cast<uint32_t>(
        r.integer("max_concurrent_streams", h.max_concurrent_streams, 1, 10000));
    auto window = [&](std::string_view key, uint64_t& out, uint64_t min) {
        uint64_t v = r.size(key, out);
        if (v < min || v > (1ull << 30))
            r.error(key, "must be between " + std::to_string(min / 1024) + "k and 1g, got " +
                             std::to_string(v));
        else
            out = v;
    };
    window("stream_window", h.stream_window, 16384);
    window("connection_window", h.connection_window, 65536);
    read_positive(r, "idle_timeout", h.idle_timeout);
    read_positive(r, "handshake_timeout", h.handshake_timeout);
    std::string retry = r.choice("retry", "auto", {"auto", "always", "never"});
    h.retry = retry == "always"  ? Http3Config::Retry::always
              : retry == "never" ? Http3Config::Retry::never
                                 : Http3Config::Retry::automatic;
    h.retry_above = static_cast<uint32_t>(r.integer("retry_above", h.retry_above, 1, 10000000));
    // RFC 9000 §18.2: at least 1200; more than Ethernet needs a jumbo-frame path.
    h.max_udp_payload_size = static_cast<uint32_t>(
        r.integer("max_udp_payload_size", h.max_udp_payload_size, 1200, 65527));
    h.qpack_table_size = static_cast<uint32_t>(r.size("qpack_table_size", h.qpack_table_size));
    if (h.qpack_table_size > (1u << 20))
        r.error("qpack_table_size",
                "must be at most 1m, got " + std::to_string(h.qpack_table_size));
    h.qpack_blocked_streams = static_cast<uint32_t>(
        r.integer("qpack_blocked_streams", h.qpack_blocked_streams, 0, 65535));
    if (std::optional<Duration> d = r.duration("alt_svc_max_age")) {
        if (d->count() < 1000)
            r.error("alt_svc_max_age", "must be at least 1s");
        else
            h.alt_svc_max_age = *d;
    }
    if (const toml::array* list = r.array("versions")) {
        std::vector<uint32_t> versions;
        for (const toml::node& n : *list) {
            const auto* v = n.as_string();
            uint32_t version = !v                 ? 0
                               : v->get() == "v1" ? Http3Config::kVersion1
                               : v->get() == "v2" ? Http3Config::kVersion2
                                                  : 0;
            if (!version)
                diag_.error(&n, "http3.versions: expected \"v1\" or \"v2\", got " +
                                    describe_value(n));
            else if (std::find(versions.begin(), versions.end(), version) != versions.end())
                diag_.error(&n, "http3.versions: " + v->get() + " is listed twice");
            else
                versions.push_back(version);
        }
        if (list->empty())
            r.error("versions", "must name at least one version, such as [\"v1\"]");
        else if (!versions.empty())
            h.versions = std::move(versions);
    }
    if (const toml::array* list = r.array("cipher_suites")) {
        static constexpr std::string_view known[] = {
            "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};
        for (const toml::node& n : *list) {
            const auto* v = n.as_string();
            if (!v || std::find(std::begin(known), std::end(known), v->get()) == std::end(known))
                diag_.error(&n, "http3.cipher_suites: expected TLS_AES_128_GCM_SHA256, "
                                "TLS_AES_256_GCM_SHA384 or TLS_CHACHA20_POLY1305_SHA256, got " +
                                    describe_value(n));
            else
                h.cipher_suites.push_back(v->get());
        }
        if (list->empty())
            r.error("cipher_suites", "must name at least one cipher suite");
    }
    h.udp_buffer_size = r.size("udp_buffer_size", h.udp_buffer_size);
    if (h.udp_buffer_size < 65536 || h.udp_buffer_size > (1ull << 30))
        r.error("udp_buffer_size",
                "must be between 64k and 1g, got " + std::to_string(h.udp_buffer_size));
    r.finish();
}

void Loader::read_access_log(TableReader& r, AccessLogConfig& out) {
    if (std::optional<std::string> path = r.string("path")) {
        if (path->empty() || *path == "off")
            out.path = "off";
        else if (*path == "stdout" || *path == "stderr")
            out.path = *path;
        else
            out.path = resolve_path(cfg_.dir, *path);
    }
    if (std::optional<std::string> format = r.string("format")) {
        if (*format == "combined" || *format == "json") {
            out.format = *format;
            out.custom.reset();
        } else if (format->find('$') != std::string::npos) {
            auto custom = std::make_shared<VarString>();
            std::string err;
            size_t at = 0;
            if (custom->compile(*format, &err, &at)) {
                out.format = "custom";
                out.custom = std::move(custom);
            } else {
                r.error("format", err + " (at byte " + std::to_string(at + 1) + " of the format)");
            }
        } else {
            r.error("format", "expected \"combined\", \"json\" or a format with variables "
                              "(\"$remote_addr \\\"$request\\\" $status $request_time\"), got " +
                                  in_quotes(*format));
        }
    }
    std::string escape = r.choice("escape",
                                  out.escape == AccessLogConfig::Escape::json   ? "json"
                                  : out.escape == AccessLogConfig::Escape::none ? "none"
                                                                                : "default",
                                  {"default", "json", "none"});
    out.escape = escape == "json"   ? AccessLogConfig::Escape::json
                 : escape == "none" ? AccessLogConfig::Escape::none
                                    : AccessLogConfig::Escape::standard;
    r.finish();
}

void Loader::load_listeners(const toml::node* n) {
    for (const toml::table* t : tables_of(n, "listen"))
        load_listen(*t);
    if (cfg_.listeners.empty() && (!n || (n->as_array() && n->as_array()->empty())))
        diag_.error(SourcePos{diag_.file(), 1, 1},
                    "no [[listen]] table: add one, e.g. [[listen]] address = \"[::]:8080\"");
}

void Loader::load_listen(const toml::table& t) {
    TableReader r(t, diag_, "listen");
    r.set_heading("[[listen]]");
    ListenConfig l;
    bool address_ok = false;
    const toml::node* a = r.node("address");
    if (!a) {
        diag_.error(r.table_pos(), "listen.address: required, e.g. address = \"[::]:8080\"");
    } else {
        l.pos = diag_.pos(a);
        std::string err;
        if (const auto* s = a->as_string()) {
            l.address = s->get();
            err = parse_listen_address(l.address, l);
        } else if (const auto* i = a->as_integer()) {
            l.address = std::to_string(i->get());
            err = check_port(i->get());
            if (err.empty())
                set_ipv6(l, in6addr_any, static_cast<uint16_t>(i->get()));
        } else {
            err =
                "expected an address like \"[::]:80\" or a port number, got " + describe_value(*a);
        }
        if (err.empty())
            address_ok = true;
        else
            diag_.error(a, "listen.address: " + err);
    }
    l.ipv6_only = r.boolean("ipv6_only", false);
    if (l.ipv6_only && address_ok && l.addr.ss_family == AF_INET)
        r.error("ipv6_only",
                "applies only to IPv6 addresses, and " + in_quotes(l.address) + " is IPv4");
    l.backlog = static_cast<int>(r.integer("backlog", l.backlog, 1, 65535));
    l.tls = r.boolean("tls", false);
    l.proxy_protocol = r.boolean("proxy_protocol", false);
    read_protocols(r, l);
    // PROXY headers come over TCP: QUIC on the same port would see the balancer's address
    // (or none), so a PROXY listener speaks TCP protocols only.
    if (l.proxy_protocol && l.quic())
        r.error("protocols", "\"h3\" cannot be combined with proxy_protocol = true (the PROXY "
                             "header comes over TCP; QUIC would see the balancer's address): "
                             "list [\"h2\", \"http/1.1\"]");
    read_streams(t, r, l);
    r.finish();
    if (!address_ok)
        return;
    for (const ListenConfig& other : cfg_.listeners) {
        if (same_endpoint(l, other)) {
            diag_.error(l.pos, "listen.address: " + in_quotes(l.address) +
                                   " is already listened on at " + pos_text(other.pos));
            return;
        }
        if (port_of(l) == port_of(other) &&
            ((is_dual_stack(other) && l.addr.ss_family == AF_INET) ||
             (is_dual_stack(l) && other.addr.ss_family == AF_INET))) {
            diag_.error(l.pos, "listen.address: " + in_quotes(l.address) + " overlaps " +
                                   in_quotes(other.address) + " at " + pos_text(other.pos) +
                                   " ([::] also accepts IPv4 unless ipv6_only = true)");
            return;
        }
    }
    cfg_.listeners.push_back(std::move(l));
}

void Loader::read_protocols(TableReader& r, ListenConfig& l) {
    const toml::node* n = r.node("protocols");
    if (!n) {
        // TLS negotiates with ALPN, preferring HTTP/2; cleartext speaks HTTP/1.1.
        // HTTP/3 first: a TLS listener also answers QUIC on the same UDP port.
        l.protocols = l.tls && !l.proxy_protocol ? std::vector<std::string>{"h3", "h2", "http/1.1"}
                      : l.tls                    ? std::vector<std::string>{"h2", "http/1.1"}
                                                 : std::vector<std::string>{"http/1.1"};
        return;
    }
    const toml::array* arr = n->as_array();
    if (!arr) {
        diag_.error(n, "listen.protocols: expected an array like [\"http/1.1\"], got " +
                           describe_value(*n));
        return;
    }
    if (arr->empty())
        r.error("protocols", "needs at least one protocol, e.g. [\"http/1.1\"]");
    for (const toml::node& element : *arr) {
        const auto* s = element.as_string();
        if (!s) {
            diag_.error(&element, "listen.protocols: expected a protocol name like "
                                  "\"http/1.1\", got " +
                                      describe_value(element));
            continue;
        }
        const std::string& p = s->get();
        const ModuleSpec* stream = ModuleRegistry::instance().find(p);
        if (stream && !stream->build_stream)
            stream = nullptr;
        const ModuleSpec* quic_app = ModuleRegistry::instance().find(p);
        if (quic_app && quic_app->quic_application && !stream) {
            if (!l.tls)
                diag_.error(&element, "listen.protocols: " + in_quotes(p) +
                                          " runs over QUIC, which is always encrypted: it "
                                          "needs tls = true");
            else if (std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end())
                diag_.error(&element, "listen.protocols: " + in_quotes(p) + " is listed twice");
            else if (std::string why = quic_app->quic_check ? quic_app->quic_check(cfg_) : "";
                     !why.empty())
                diag_.error(&element, "listen.protocols: " + in_quotes(p) + ": " + why);
            else {
                l.protocols.push_back(p);
                l.quic_protocols.push_back(p);
            }
            continue;
        }
        if (stream) {
            if (std::any_of(l.streams.begin(), l.streams.end(),
                            [&](const ListenStream& ls) { return ls.protocol == p; }))
                diag_.error(&element, "listen.protocols: " + in_quotes(p) + " is listed twice");
            else {
                l.protocols.push_back(p);
                l.streams.push_back({p, std::string(stream->stream_alpn), nullptr});
            }
            continue;
        }
        if (p != "http/1.1" && p != "h2" && p != "h2c" && p != "h3")
            diag_.error(&element, "listen.protocols: unknown protocol " + in_quotes(p) +
                                      " (expected \"h3\", \"h2\", \"http/1.1\", \"h2c\"" +
                                      stream_protocol_names() + ")");
        else if (p == "h3" && !l.tls)
            diag_.error(&element, "listen.protocols: \"h3\" is HTTP/3 over QUIC, which is "
                                  "always encrypted: it needs tls = true");
        else if (p == "h2" && !l.tls)
            diag_.error(&element, "listen.protocols: \"h2\" needs tls = true; cleartext "
                                  "HTTP/2 is \"h2c\"");
        else if (p == "h2c" && l.tls)
            diag_.error(&element, "listen.protocols: \"h2c\" is cleartext HTTP/2; on a "
                                  "TLS listener it is \"h2\"");
        else if (std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end())
            diag_.error(&element, "listen.protocols: " + in_quotes(p) + " is listed twice");
        else
            l.protocols.push_back(p);
    }
    // Browsers find HTTP/3 through Alt-Svc on TCP, so QUIC comes with a TCP protocol.
    if (l.h3() && !l.http())
        r.error("protocols", "\"h3\" needs \"h2\" or \"http/1.1\" beside it on the same "
                             "port: browsers learn about HTTP/3 from Alt-Svc over TCP");
    // A listener's TCP socket is always bound: a module's QUIC protocol shares the port with
    // something that answers over TCP ("dot" beside "doq", as on port 853).
    if (!l.quic_protocols.empty() && l.protocols.size() == l.quic_protocols.size() + l.h3())
        r.error("protocols", in_quotes(l.quic_protocols.front()) +
                                 " runs over QUIC: it needs a protocol over TCP beside it on "
                                 "the same port, e.g. [\"dot\", \"doq\"]");
    // Each connection must be able to tell which protocol it speaks: without ALPN (cleartext,
    // or a protocol without an ALPN id) a stream protocol must be the listener's only one.
    for (const ListenStream& ls : l.streams)
        if ((ls.alpn.empty() || !l.tls) && l.protocols.size() > 1)
            r.error("protocols", in_quotes(ls.protocol) + " must be the listener's only protocol" +
                                     (l.tls ? " (it has no ALPN id that could tell it apart)"
                                            : " (cleartext connections cannot say which "
                                              "protocol they speak)"));
}

// ", or a stream protocol: \"tcp\"" — the registered stream protocols, for messages.
std::string Loader::stream_protocol_names() {
    std::string out;
    for (const ModuleSpec& m : ModuleRegistry::instance().all())
        if (m.build_stream)
            out += (out.empty() ? ", or a stream protocol: " : ", ") + in_quotes(m.key);
    std::string quic;
    for (const ModuleSpec& m : ModuleRegistry::instance().all())
        if (m.quic_application)
            quic += (quic.empty() ? ", or over QUIC: " : ", ") + in_quotes(m.key);
    out += quic;
    return out;
}

// The options of each stream protocol the listener carries: the listener's key of the same
// name (absent: the defaults).
void Loader::read_streams(const toml::table& t, TableReader& r, ListenConfig& l) {
    for (ListenStream& ls : l.streams) {
        const ModuleSpec* spec = ModuleRegistry::instance().find(ls.protocol);
        const toml::node* value = r.node(ls.protocol);
        const toml::table* options = value ? value->as_table() : &empty_table();
        if (!options) {
            diag_.error(value, "listen." + ls.protocol + ": expected a table, got " +
                                   describe_value(*value));
            continue;
        }
        SourcePos at = value ? diag_.pos(value) : l.pos;
        size_t errors_before = diag_.count();
        TableReader reader(*options, diag_, "listen." + ls.protocol);
        BuildContext ctx{cfg_, nullptr, diag_, Scope::listener,
                         ModuleRegistry::instance().index_of(*spec)};
        try {
            ls.handler = spec->build_stream(reader, ctx);
        } catch (const std::exception& e) {
            diag_.error(at, "listen." + ls.protocol + ": " + e.what());
        }
        reader.finish();
        diag_.place_unplaced(errors_before, at); // no `tcp = {...}`: at the listener
        if (!ls.handler && diag_.count() == errors_before)
            diag_.error(at, "listen." + ls.protocol + ": the module could not be built");
    }
    // A stream module's key on a listener that does not carry it is a mistake worth naming.
    for (const auto& [key, value] : t) {
        const ModuleSpec* spec = ModuleRegistry::instance().find(key.str());
        std::string_view name_view = key.str(); // clang 14 cannot capture a structured binding
        if (spec && spec->build_stream &&
            std::none_of(l.streams.begin(), l.streams.end(),
                         [&](const ListenStream& ls) { return ls.protocol == name_view; })) {
            r.node(key.str());
            std::string name(key.str());
            diag_.error(&value, "listen." + name + ": the listener does not carry " +
                                    in_quotes(name) + " (add it to protocols)");
        }
    }
}

// A TLS listener needs a certificate to present: some site must have one.
void Loader::check_tls_listeners() {
    bool any = std::any_of(cfg_.sites.begin(), cfg_.sites.end(),
                           [](const auto& s) { return s->tls && !s->tls->certificates.empty(); });
    if (any)
        return;
    for (const ListenConfig& l : cfg_.listeners)
        if (l.tls)
            diag_.error(l.pos, "listen.tls: no [[site]] has a certificate; add tls = { cert "
                               "= ..., key = ... } to a site");
}

} // namespace wraith::config_loader
