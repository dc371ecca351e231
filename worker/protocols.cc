#include "worker/protocols.h"

#include "common/module.h"

#include "worker/http1/connection.h"
#include "worker/http2/connection.h"
#include "worker/http3/session.h"
#include "worker/stream/connection.h"
#include "worker/worker.h"

namespace wraith {

bool protocol_implemented(std::string_view name) {
    return name == "http/1.1" || name == "h2";
}

bool offers_alpn(const ListenConfig& listen, std::string_view name) {
    if (protocol_implemented(name))
        return true;
    for (const ListenStream& s : listen.streams)
        if (!s.alpn.empty() && s.alpn == name)
            return true;
    return false;
}

void register_quic_protocols() {
    quic::register_application({"h3", http3::Session::create, NGHTTP3_H3_NO_ERROR});
    // Modules' QUIC protocols ("doq"), offered only on listeners that name them.
    for (const ModuleSpec& m : ModuleRegistry::instance().all())
        if (m.quic_application)
            quic::register_application(*m.quic_application);
}

void start_protocol(Worker& worker, std::unique_ptr<Transport> transport,
                    const sockaddr_storage& peer, const ListenConfig& listen, std::string_view alpn,
                    std::string_view already_read) {
    if (const ListenStream* s = listen.stream_for(alpn)) {
        // A stream (L4) protocol: no HTTP, the handler gets the bytes.
        auto* c = new stream::Connection(worker, std::move(transport), peer, listen, *s->handler);
        worker.add_connection(c);
        c->start();
        return;
    }
    if (alpn == "h2" || alpn == "h2c") {
        auto* c = new http2::Connection(worker, std::move(transport), peer, listen, already_read);
        worker.add_connection(c, ConnectionKind::h2);
        c->start();
        if (worker.draining())
            c->drain(); // a handshake that ended during a drain: serve what came, then GOAWAY
        return;
    }
    auto* c = new http1::Connection(worker, std::move(transport), peer, listen);
    worker.add_connection(c, ConnectionKind::h1);
    c->start(); // HTTP/1 closes after its first response while the worker drains
}

} // namespace wraith
