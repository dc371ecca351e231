// The WebSocket handshake pieces the proxy checks or makes when it maps a client's tunnel
// request onto an HTTP/1.1 Upgrade to the upstream (RFC 6455 §4; RFC 8441 §5, RFC 9220).
// The frames themselves are never parsed: after the handshake the proxy moves bytes.
#pragma once

#include <string>
#include <string_view>

#include "common/http.h"

namespace wraith::proxy {

// RFC 6455 §4.2.2: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string websocket_accept(std::string_view key);

// A fresh Sec-WebSocket-Key (RFC 6455 §4.1): 16 random bytes, base64 (24 characters). Made
// for HTTP/2 and HTTP/3 clients, whose extended CONNECT carries none (RFC 8441 §5).
std::string websocket_key();

// True when some `name` field of `headers` lists `token` (a comma-separated list, RFC 9110
// §5.6.1, compared ignoring ASCII case): "Connection: keep-alive, Upgrade" lists "upgrade".
bool field_lists(const Headers& headers, std::string_view name, std::string_view token);

// True when a comma-separated list value contains `token` (ASCII case ignored).
bool list_contains(std::string_view list, std::string_view token);

} // namespace wraith::proxy
