#include "worker/protocols.h"

#include "worker/http1/connection.h"
#include "worker/worker.h"

namespace wraith {

bool protocol_implemented(std::string_view name) {
    return name == "http/1.1"; // "h2" joins when worker/http2 is wired in here
}

void start_protocol(Worker& worker, std::unique_ptr<Transport> transport,
                    const sockaddr_storage& peer, const ListenConfig& listen,
                    std::string_view alpn, std::string_view already_read) {
    (void)alpn;
    (void)already_read;
    auto* c = new http1::Connection(worker, std::move(transport), peer, listen);
    worker.add_connection(c);
    c->start();
}

} // namespace wraith
