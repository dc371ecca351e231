// The registry of QUIC applications (common/quic_application.h), by ALPN: what a worker's
// QUIC listeners offer and what a handshake's ALPN starts.
#pragma once

#include <span>
#include <string_view>

#include "common/quic_application.h"

namespace wraith::quic {

// Adds (or replaces) the application for spec.alpn. Built-in protocols register in
// worker/protocols.cc; a module or a test registers its own before the worker starts. Every
// registered application is offered in ALPN on every QUIC listener.
void register_application(const ApplicationSpec& spec);
// The application for a negotiated ALPN; nullptr if none (the handshake fails with
// no_application_protocol, RFC 9001 §8.1).
const ApplicationSpec* find_application(std::string_view alpn);
// Every registered ALPN, most preferred first (the server picks in this order).
std::span<const ApplicationSpec> applications();

} // namespace wraith::quic
