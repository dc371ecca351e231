#include "tools/h3/errors.h"

#include <gnutls/gnutls.h>

#include <cstdio>

namespace h3 {

namespace {

std::string hex(uint64_t code) {
    char text[24];
    std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(code));
    return text;
}

} // namespace

std::string application_error_name(uint64_t code) {
    static constexpr const char* kH3[] = {"H3_NO_ERROR",
                                          "H3_GENERAL_PROTOCOL_ERROR",
                                          "H3_INTERNAL_ERROR",
                                          "H3_STREAM_CREATION_ERROR",
                                          "H3_CLOSED_CRITICAL_STREAM",
                                          "H3_FRAME_UNEXPECTED",
                                          "H3_FRAME_ERROR",
                                          "H3_EXCESSIVE_LOAD",
                                          "H3_ID_ERROR",
                                          "H3_SETTINGS_ERROR",
                                          "H3_MISSING_SETTINGS",
                                          "H3_REQUEST_REJECTED",
                                          "H3_REQUEST_CANCELLED",
                                          "H3_REQUEST_INCOMPLETE",
                                          "H3_MESSAGE_ERROR",
                                          "H3_CONNECT_ERROR",
                                          "H3_VERSION_FALLBACK"};
    static constexpr const char* kQpack[] = {
        "QPACK_DECOMPRESSION_FAILED", "QPACK_ENCODER_STREAM_ERROR", "QPACK_DECODER_STREAM_ERROR"};
    if (code >= 0x100 && code < 0x100 + std::size(kH3)) {
        return kH3[code - 0x100];
    }
    if (code >= 0x200 && code < 0x200 + std::size(kQpack)) {
        return kQpack[code - 0x200];
    }
    return hex(code);
}

std::string transport_error_name(uint64_t code) {
    static constexpr const char* kNames[] = {"NO_ERROR",
                                             "INTERNAL_ERROR",
                                             "CONNECTION_REFUSED",
                                             "FLOW_CONTROL_ERROR",
                                             "STREAM_LIMIT_ERROR",
                                             "STREAM_STATE_ERROR",
                                             "FINAL_SIZE_ERROR",
                                             "FRAME_ENCODING_ERROR",
                                             "TRANSPORT_PARAMETER_ERROR",
                                             "CONNECTION_ID_LIMIT_ERROR",
                                             "PROTOCOL_VIOLATION",
                                             "INVALID_TOKEN",
                                             "APPLICATION_ERROR",
                                             "CRYPTO_BUFFER_EXCEEDED",
                                             "KEY_UPDATE_ERROR",
                                             "AEAD_LIMIT_REACHED",
                                             "NO_VIABLE_PATH"};
    if (code < std::size(kNames)) {
        return kNames[code];
    }
    if (code >= 0x100 && code <= 0x1ff) {
        // CRYPTO_ERROR carries the TLS alert in its low byte (RFC 9001 §4.8).
        auto alert = static_cast<gnutls_alert_description_t>(code & 0xff);
        const char* name = gnutls_alert_get_name(alert);
        return "CRYPTO_ERROR(" + (name ? std::string(name) : hex(code & 0xff)) + ")";
    }
    return hex(code);
}

} // namespace h3
