// DNS message walking and rewriting (message.h).
#include "modules/dns/message.h"

#include <cstring>

namespace wraith::dns {

namespace {

uint8_t lower(uint8_t c) {
    return c >= 'A' && c <= 'Z' ? static_cast<uint8_t>(c + 32) : c;
}

uint32_t read_u32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// Reads the name at `pos`; sets `end` to the offset after it (after the first pointer, if
// any). With `out`, copies it lower-cased in wire form and sets `out_len`. RFC 1035 §4.1.4:
// a pointer must point strictly before the label it replaces, so no loop can form.
ParseError read_name(const uint8_t* msg, size_t len, size_t pos, size_t& end, uint8_t* out,
                     uint8_t* out_len) {
    size_t total = 0;
    bool jumped = false;
    size_t limit = pos; // a pointer must point below the start of the labels it follows
    while (true) {
        if (pos >= len)
            return ParseError::truncated;
        const uint8_t c = msg[pos];
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len)
                return ParseError::truncated;
            const size_t target = size_t(c & 0x3f) << 8 | msg[pos + 1];
            if (!jumped)
                end = pos + 2;
            // Strictly backwards, and never into the header (no name starts there).
            if (target >= limit || target < kHeaderSize)
                return ParseError::compression_loop;
            jumped = true;
            limit = target;
            pos = target;
            continue;
        }
        if (c & 0xc0)
            return ParseError::bad_name; // 0x40 / 0x80: extended label types (RFC 6891 §5)
        if (pos + 1 + c > len)
            return ParseError::truncated;
        total += size_t(c) + 1;
        if (total > kMaxName)
            return ParseError::bad_name;
        if (out) {
            out[total - c - 1] = c;
            for (size_t i = 0; i < c; ++i)
                out[total - c + i] = lower(msg[pos + 1 + i]);
        }
        if (c == 0) {
            if (!jumped)
                end = pos + 1;
            if (out_len)
                *out_len = static_cast<uint8_t>(total);
            return ParseError::none;
        }
        pos += 1 + c;
    }
}

// Calls visit(offset of the record's type field, type, ttl offset) for every record.
template <class Visit>
ParseError walk_records(const uint8_t* msg, size_t len, size_t pos, const Message& m, size_t& end,
                        Visit&& visit) {
    const unsigned counts[3] = {m.ancount, m.nscount, m.arcount};
    for (int section = 0; section < 3; ++section) {
        for (unsigned i = 0; i < counts[section]; ++i) {
            size_t after = 0;
            if (ParseError e = read_name(msg, len, pos, after, nullptr, nullptr);
                e != ParseError::none)
                return e;
            if (after + 10 > len)
                return ParseError::truncated;
            const uint16_t type = uint16_t(msg[after] << 8 | msg[after + 1]);
            const uint16_t rdlength = uint16_t(msg[after + 8] << 8 | msg[after + 9]);
            if (after + 10 + rdlength > len)
                return ParseError::truncated;
            if (ParseError e = visit(section, type, after, after + 10, rdlength);
                e != ParseError::none)
                return e;
            pos = after + 10 + rdlength;
        }
    }
    end = pos;
    return ParseError::none;
}

} // namespace

const char* describe(ParseError e) {
    switch (e) {
    case ParseError::none:
        return "ok";
    case ParseError::truncated:
        return "truncated";
    case ParseError::too_long:
        return "too_long";
    case ParseError::bad_name:
        return "bad_name";
    case ParseError::compression_loop:
        return "compression_loop";
    case ParseError::no_question:
        return "no_question";
    case ParseError::bad_edns:
        return "bad_edns";
    }
    return "malformed";
}

ParseError parse(std::string_view data, Message& m) {
    const auto* msg = reinterpret_cast<const uint8_t*>(data.data());
    const size_t len = data.size();
    if (len > kMaxMessage)
        return ParseError::too_long;
    if (len < kHeaderSize)
        return ParseError::truncated;
    m = Message{};
    m.id = uint16_t(msg[0] << 8 | msg[1]);
    m.flags = uint16_t(msg[2] << 8 | msg[3]);
    m.qdcount = uint16_t(msg[4] << 8 | msg[5]);
    m.ancount = uint16_t(msg[6] << 8 | msg[7]);
    m.nscount = uint16_t(msg[8] << 8 | msg[9]);
    m.arcount = uint16_t(msg[10] << 8 | msg[11]);
    if (m.qdcount != 1)
        return ParseError::no_question;
    size_t pos = kHeaderSize;
    if (ParseError e = read_name(msg, len, pos, pos, m.qname, &m.qname_len); e != ParseError::none)
        return e;
    if (pos + 4 > len)
        return ParseError::truncated;
    m.qtype = uint16_t(msg[pos] << 8 | msg[pos + 1]);
    m.qclass = uint16_t(msg[pos + 2] << 8 | msg[pos + 3]);
    pos += 4;
    m.question_end = pos;
    size_t end = 0;
    ParseError e =
        walk_records(msg, len, pos, m, end,
                     [&](int section, uint16_t type, size_t at, size_t rdata, uint16_t rdlength) {
                         const uint32_t ttl = read_u32(msg + at + 4);
                         if (type == kTypeOpt) {
                             if (section != 2 || m.edns)
                                 return ParseError::bad_edns;
                             m.edns = true;
                             const uint16_t size = uint16_t(msg[at + 2] << 8 | msg[at + 3]);
                             m.udp_size = size < 512 ? 512 : size; // RFC 6891 §6.2.5
                             m.dnssec_ok = ttl & 0x8000;
                             m.opt_rdata = rdata;
                             // The options: code, length, data; they must fill RDATA exactly.
                             size_t o = rdata;
                             const size_t end = rdata + rdlength;
                             while (end - o >= 4) {
                                 const uint16_t code = uint16_t(msg[o] << 8 | msg[o + 1]);
                                 const uint16_t olen = uint16_t(msg[o + 2] << 8 | msg[o + 3]);
                                 if (olen > end - o - 4)
                                     return ParseError::bad_edns;
                                 if (code == kOptionPadding)
                                     m.padded = true;
                                 else if (code == kOptionKeepalive)
                                     m.keepalive = olen;
                                 o += 4 + olen;
                             }
                             if (o != end)
                                 return ParseError::bad_edns;
                             return ParseError::none;
                         }
                         if (ttl < m.min_ttl)
                             m.min_ttl = ttl;
                         if (type == kTypeSoa && section == 1) {
                             // RDATA: MNAME, RNAME, then five 32-bit fields; MINIMUM is the last.
                             if (rdlength < 22)
                                 return ParseError::truncated;
                             const uint32_t minimum = read_u32(msg + rdata + rdlength - 4);
                             const uint32_t negative = ttl < minimum ? ttl : minimum;
                             if (negative < m.soa_ttl)
                                 m.soa_ttl = negative;
                         }
                         return ParseError::none;
                     });
    if (e != ParseError::none)
        return e;
    if (end != len)
        return ParseError::too_long;
    return ParseError::none;
}

const char* check_query(const Message& m) {
    if (m.response())
        return "not_a_query";
    if (m.opcode() != 0)
        return "not_opcode_query";
    return nullptr;
}

bool same_question(const Message& query, const Message& answer) {
    return answer.response() && answer.qtype == query.qtype && answer.qclass == query.qclass &&
           answer.qname_len == query.qname_len &&
           std::memcmp(answer.qname, query.qname, query.qname_len) == 0;
}

bool set_hop_options(std::string& msg, int keepalive, size_t block, size_t limit) {
    Message m;
    if (parse(msg, m) != ParseError::none)
        return false;
    if (!m.edns) {
        if (keepalive < 0 && block == 0)
            return true;
        // An OPT record at the end: root owner, TYPE 41, payload size 1232, no flags.
        static const char opt[11] = {0, 0, 41, 0x04, static_cast<char>(0xd0), 0, 0, 0, 0, 0, 0};
        msg.append(opt, sizeof opt);
        const uint16_t arcount = uint16_t(read_u16(msg.data() + 10) + 1);
        msg[10] = static_cast<char>(arcount >> 8);
        msg[11] = static_cast<char>(arcount & 0xff);
        m.opt_rdata = msg.size();
    }
    const size_t rdata = m.opt_rdata;
    const size_t rdlength = read_u16(msg.data() + rdata - 2);
    // The options kept, then ours.
    std::string options;
    options.reserve(rdlength + 6);
    for (size_t o = rdata; o < rdata + rdlength;) {
        const uint16_t code = read_u16(msg.data() + o);
        const size_t olen = read_u16(msg.data() + o + 2);
        if (code != kOptionPadding && code != kOptionKeepalive)
            options.append(msg, o, 4 + olen);
        o += 4 + olen;
    }
    if (keepalive >= 0) {
        const uint16_t t = keepalive > 0xffff ? 0xffff : static_cast<uint16_t>(keepalive);
        const char k[6] = {0, static_cast<char>(kOptionKeepalive), 0,
                           2, static_cast<char>(t >> 8),           static_cast<char>(t & 0xff)};
        options.append(k, sizeof k);
    }
    if (block > 0) {
        const size_t unpadded = msg.size() - rdlength + options.size() + 4;
        if (unpadded <= limit) {
            size_t pad = (block - unpadded % block) % block;
            if (unpadded + pad > limit)
                pad = limit - unpadded;
            const char p[4] = {0, static_cast<char>(kOptionPadding), static_cast<char>(pad >> 8),
                               static_cast<char>(pad & 0xff)};
            options.append(p, sizeof p);
            options.append(pad, '\0');
        }
    }
    if (options.size() > 0xffff)
        return false;
    msg.replace(rdata, rdlength, options);
    msg[rdata - 2] = static_cast<char>(options.size() >> 8);
    msg[rdata - 1] = static_cast<char>(options.size() & 0xff);
    return true;
}

void set_id(char* data, uint16_t id) {
    data[0] = static_cast<char>(id >> 8);
    data[1] = static_cast<char>(id & 0xff);
}

bool rewrite_ttls(char* data, size_t len, uint32_t elapsed, uint32_t floor, uint32_t cap) {
    Message m;
    if (parse(std::string_view(data, len), m) != ParseError::none)
        return false;
    auto* msg = reinterpret_cast<uint8_t*>(data);
    size_t end = 0;
    const bool walked = walk_records(msg, len, m.question_end, m, end,
                                     [&](int, uint16_t type, size_t at, size_t, uint16_t) {
                                         if (type == kTypeOpt)
                                             return ParseError::none;
                                         uint32_t ttl = read_u32(msg + at + 4);
                                         if (ttl < floor)
                                             ttl = floor;
                                         if (ttl > cap)
                                             ttl = cap;
                                         ttl = ttl > elapsed ? ttl - elapsed : 0;
                                         msg[at + 4] = uint8_t(ttl >> 24);
                                         msg[at + 5] = uint8_t(ttl >> 16);
                                         msg[at + 6] = uint8_t(ttl >> 8);
                                         msg[at + 7] = uint8_t(ttl);
                                         return ParseError::none;
                                     }) == ParseError::none;
    // A compression pointer may aim into a TTL (parse() only asks that pointers go backwards):
    // then the new TTL changed a name, and the message may no longer walk.
    return walked && parse(std::string_view(data, len), m) == ParseError::none;
}

std::string name_text(const uint8_t* wire, size_t len) {
    std::string out;
    size_t pos = 0;
    while (pos < len && wire[pos] != 0) {
        const size_t n = wire[pos];
        for (size_t i = 1; i <= n && pos + i < len; ++i) {
            const uint8_t c = wire[pos + i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_') {
                out += static_cast<char>(c);
            } else {
                char buf[5];
                buf[0] = '\\';
                buf[1] = static_cast<char>('0' + c / 100);
                buf[2] = static_cast<char>('0' + c / 10 % 10);
                buf[3] = static_cast<char>('0' + c % 10);
                out.append(buf, 4);
            }
        }
        out += '.';
        pos += n + 1;
    }
    return out.empty() ? "." : out;
}

size_t name_to_wire(std::string_view text, uint8_t out[kMaxName]) {
    if (!text.empty() && text.back() == '.')
        text.remove_suffix(1);
    size_t n = 0;
    while (!text.empty()) {
        const size_t dot = text.find('.');
        const std::string_view label = text.substr(0, dot);
        if (label.empty() || label.size() > 63 || n + label.size() + 2 > kMaxName)
            return 0;
        out[n++] = static_cast<uint8_t>(label.size());
        for (char c : label)
            out[n++] = lower(static_cast<uint8_t>(c));
        text = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
    }
    out[n++] = 0;
    return n;
}

std::string type_text(uint16_t type) {
    switch (type) {
    case kTypeA:
        return "A";
    case kTypeNs:
        return "NS";
    case kTypeCname:
        return "CNAME";
    case kTypeSoa:
        return "SOA";
    case 12:
        return "PTR";
    case 15:
        return "MX";
    case kTypeTxt:
        return "TXT";
    case kTypeAaaa:
        return "AAAA";
    case 33:
        return "SRV";
    case 64:
        return "SVCB";
    case 65:
        return "HTTPS";
    case 255:
        return "ANY";
    }
    return "TYPE" + std::to_string(type);
}

std::string rcode_text(uint8_t rcode) {
    static const char* const names[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                        "NXDOMAIN", "NOTIMP",  "REFUSED"};
    return rcode < 6 ? names[rcode] : "RCODE" + std::to_string(rcode);
}

void build_answer(std::string_view query_data, const Message& q, uint8_t rcode, std::string& out,
                  std::string_view address, uint32_t ttl) {
    const size_t start = out.size();
    out.append(query_data.substr(0, q.question_end));
    char* h = out.data() + start;
    const uint16_t flags = uint16_t(kFlagQr | (q.flags & (kFlagRd | 0x0010)) | kFlagRa | rcode);
    h[2] = static_cast<char>(flags >> 8);
    h[3] = static_cast<char>(flags & 0xff);
    const bool record = !address.empty();
    const char counts[8] = {0, 1, 0, static_cast<char>(record), 0, 0, 0, 0};
    std::memcpy(h + 4, counts, sizeof counts);
    if (!record)
        return;
    const uint16_t type = address.size() == 4 ? kTypeA : kTypeAaaa;
    const char rr[12] = {static_cast<char>(0xc0),
                         static_cast<char>(kHeaderSize),
                         0,
                         static_cast<char>(type),
                         0,
                         static_cast<char>(q.qclass),
                         static_cast<char>(ttl >> 24),
                         static_cast<char>(ttl >> 16),
                         static_cast<char>(ttl >> 8),
                         static_cast<char>(ttl),
                         0,
                         static_cast<char>(address.size())};
    out.append(rr, sizeof rr);
    out.append(address);
}

bool base64url_decode(std::string_view in, std::string& out) {
    if (in.size() % 4 == 1)
        return false;
    out.clear();
    out.reserve(in.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-')
            v = 62;
        else if (c == '_')
            v = 63;
        else
            return false;
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    // Leftover bits must be zero (RFC 4648 §3.5: canonical encoding).
    return (acc & ((1u << bits) - 1)) == 0;
}

std::string base64url_encode(std::string_view in) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        acc = (acc << 8) | static_cast<uint8_t>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out += alphabet[(acc << (6 - bits)) & 63];
    return out;
}

} // namespace wraith::dns
