// DNS messages (RFC 1035 §4) as the DoH handler and the forwarder see them: a strict walk of a
// whole message (every name, every record, compression pointers only backwards), what the
// cache and the answer need from it (the question, EDNS's DO bit and UDP size, the TTLs, the
// SOA of a negative answer), and the few rewrites a forwarder makes (ID, TTLs). Nothing here
// allocates; names are kept in wire form, lower-cased, in fixed buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wraith::dns {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxMessage = 65535; // RFC 1035 §4.2.2: TCP's two-byte length
constexpr size_t kMaxName = 255;      // RFC 1035 §3.1, in wire form

constexpr uint16_t kTypeA = 1, kTypeNs = 2, kTypeCname = 5, kTypeSoa = 6, kTypeTxt = 16,
                   kTypeAaaa = 28, kTypeOpt = 41;
constexpr uint16_t kClassIn = 1;
constexpr uint8_t kRcodeNoError = 0, kRcodeFormErr = 1, kRcodeServFail = 2, kRcodeNxDomain = 3;

// EDNS(0) options (RFC 6891 §6.1.2) that belong to one hop, never forwarded as they came.
constexpr uint16_t kOptionKeepalive = 11; // edns-tcp-keepalive, RFC 7828
constexpr uint16_t kOptionPadding = 12;   // RFC 7830
// RFC 8467 §4.1: responses are padded to a multiple of this (queries to 128).
constexpr size_t kResponsePaddingBlock = 468;

// Header flag bits (RFC 1035 §4.1.1), in the 16-bit flags word.
constexpr uint16_t kFlagQr = 0x8000, kFlagAa = 0x0400, kFlagTc = 0x0200, kFlagRd = 0x0100,
                   kFlagRa = 0x0080;

// Why a message was refused.
enum class ParseError : uint8_t {
    none,
    truncated,        // shorter than its counts say
    too_long,         // over 65535 bytes, or bytes after the last record
    bad_name,         // a label over 63, a name over 255, a reserved label type
    compression_loop, // a pointer that does not point strictly backwards
    no_question,      // QDCOUNT is not 1
    bad_edns,         // more than one OPT record, one outside the additional section, or
                      // options that overrun its data
};
// A short token for logs ("truncated", "compression_loop").
const char* describe(ParseError e);

// What parse() learnt about a message.
struct Message {
    uint16_t id = 0;
    uint16_t flags = 0; // QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode (low 4 bits)
    uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
    // The (only) question: its name in wire form, lower-cased, with its final zero label.
    uint8_t qname[kMaxName] = {};
    uint8_t qname_len = 0;
    uint16_t qtype = 0;
    uint16_t qclass = 0;
    size_t question_end = 0; // offset just after the question
    // EDNS (RFC 6891): an OPT record in the additional section.
    bool edns = false;
    bool dnssec_ok = false;  // the DO bit
    uint16_t udp_size = 512; // the OPT's payload size (512 without EDNS)
    bool padded = false;     // the OPT carries a Padding option (RFC 7830)
    int keepalive = -1;      // the length of its edns-tcp-keepalive option; -1 for none
    size_t opt_rdata = 0;    // where the OPT's options start (0 without OPT)
    uint8_t rcode() const { return flags & 0x0f; }
    uint8_t opcode() const { return (flags >> 11) & 0x0f; }
    bool response() const { return flags & kFlagQr; }
    bool truncated() const { return flags & kFlagTc; }
    // The smallest TTL of the answer and authority records and of the additional records
    // other than OPT; UINT32_MAX when there is no such record.
    uint32_t min_ttl = UINT32_MAX;
    // RFC 2308 §5: a negative answer's SOA (authority section) gives min(SOA TTL, MINIMUM);
    // UINT32_MAX without a SOA there.
    uint32_t soa_ttl = UINT32_MAX;
};

// Walks all of `data` (a whole message). None, or why it is malformed.
ParseError parse(std::string_view data, Message& out);

// A DoH query's checks on top of parse(): a query (QR clear), opcode QUERY, one question.
// Null when it is acceptable, else a short token for the 400's log note ("not_a_query").
const char* check_query(const Message& m);

// Whether `answer` answers `query`: the same ID (the caller compares its own), a response,
// and the same question (name case-insensitively, type and class).
bool same_question(const Message& query, const Message& answer);

// Rewrites the hop-by-hop EDNS options of `msg` (a whole message that parse()s): removes its
// Padding and edns-tcp-keepalive options, then adds edns-tcp-keepalive with `keepalive` (units
// of 100 ms, RFC 7828 §3.3.2) when it is 0 or more, then, when `block` is not 0, a Padding
// option that makes the message a multiple of `block` octets (RFC 7830, RFC 8467 block-length
// padding) or, when that would pass `limit`, exactly `limit` long (none when even the option's
// header does not fit). A message without OPT gets one (payload size 1232) only when something
// is added. False (and `msg` unchanged) when it does not parse.
bool set_hop_options(std::string& msg, int keepalive, size_t block, size_t limit = kMaxMessage);

// Sets the ID of the message in `data` (at least a header long).
void set_id(char* data, uint16_t id);
inline uint16_t read_u16(const char* p) {
    return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) << 8 | static_cast<uint8_t>(p[1]));
}

// Clamps every TTL of a message to [floor, cap], then lowers it by `elapsed` seconds (not
// below 0); OPT records are left alone (their "TTL" carries EDNS flags). False when the
// message does not walk, before or after (a hostile message's compression pointer may aim
// into a TTL): then it must not be used.
bool rewrite_ttls(char* data, size_t len, uint32_t elapsed, uint32_t floor = 0,
                  uint32_t cap = UINT32_MAX);

// The question's name as text, "www.example.com." ("." for the root), escaping bytes outside
// letters, digits, '-' and '_' as \DDD (RFC 1035 §5.1).
std::string name_text(const uint8_t* wire, size_t len);
// A name in text ("Example.COM", trailing dot optional) as lower-cased wire form; 0 when it
// is not a valid name (empty labels, a label over 63, over 255 in all).
size_t name_to_wire(std::string_view text, uint8_t out[kMaxName]);
// "A", "AAAA", "TXT" ... or the number.
std::string type_text(uint16_t type);
// "NOERROR", "SERVFAIL", "NXDOMAIN" ... or the number.
std::string rcode_text(uint8_t rcode);

// Builds an answer to `query` (its bytes `query_data`, parse()d into `q`) with `rcode` and no
// records, or, with `address` (4 or 16 bytes) one A or AAAA record of `ttl` seconds: the header
// (QR, RD copied, RA), the question as asked. Appends to `out`.
void build_answer(std::string_view query_data, const Message& q, uint8_t rcode, std::string& out,
                  std::string_view address = {}, uint32_t ttl = 0);

// RFC 4648 §5 base64url without padding (RFC 8484 §4.1), the form of DoH's `dns` parameter.
// False on any other character, or a length that no encoding has.
bool base64url_decode(std::string_view in, std::string& out);
std::string base64url_encode(std::string_view in);

} // namespace wraith::dns
