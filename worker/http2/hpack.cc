// HPACK decoder (request blocks, dynamic table) and encoder (response blocks, no dynamic
// table). The Huffman code is in hpack_huffman.cc.
#include "worker/http2/hpack.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace wraith::http2 {

const StaticEntry kStaticTable[kStaticTableSize + 1] = {
    {"", ""},
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
};

namespace {

// RFC 7541 §4.1: an entry's size is its name and value plus 32.
constexpr uint32_t kEntryOverhead = 32;

// Scratch for Huffman-decoded strings: one name and one value at a time, per worker thread.
char* scratch(int which, size_t n) {
    thread_local std::vector<char> buffers[3];
    std::vector<char>& b = buffers[which];
    if (b.size() < n)
        b.resize(std::max(n, size_t{256}));
    return b.data();
}

// RFC 7541 §5.1. False: truncated, or a value past 2^32 - 1 (RFC 7541 §5.1 lets a decoder
// bound it; nothing here needs more).
bool read_integer(const uint8_t*& p, const uint8_t* end, int prefix_bits, uint32_t& out) {
    if (p == end)
        return false;
    const uint32_t max_prefix = (1u << prefix_bits) - 1;
    uint32_t v = *p++ & max_prefix;
    if (v < max_prefix) {
        out = v;
        return true;
    }
    uint64_t value = v;
    for (int shift = 0;; shift += 7) {
        if (p == end || shift > 28)
            return false;
        uint8_t b = *p++;
        value += static_cast<uint64_t>(b & 0x7f) << shift;
        if (value > UINT32_MAX)
            return false;
        if (!(b & 0x80))
            break;
    }
    out = static_cast<uint32_t>(value);
    return true;
}

enum class StringResult : uint8_t { ok, oversized, error };

// RFC 7541 §5.2 string literal, into `out` (pointing into the block, or into scratch `which`
// when Huffman-coded).
StringResult read_string(const uint8_t*& p, const uint8_t* end, size_t max_string, int which,
                         std::string_view& out) {
    if (p == end)
        return StringResult::error;
    const bool huffman = *p & 0x80;
    uint32_t len;
    if (!read_integer(p, end, 7, len) || static_cast<size_t>(end - p) < len)
        return StringResult::error;
    const uint8_t* s = p;
    p += len;
    if (!huffman) {
        if (len > max_string)
            return StringResult::oversized;
        out = {reinterpret_cast<const char*>(s), len};
        return StringResult::ok;
    }
    // The shortest code is 5 bits: at most len * 8 / 5 symbols.
    const size_t most = static_cast<size_t>(len) * 8 / 5 + 1;
    if (len > max_string) // decodes to at least len * 8 / 30 bytes; checked exactly below
        return HpackDecoder::huffman_decode(s, len, scratch(2, most)) < 0 ? StringResult::error
                                                                          : StringResult::oversized;
    char* dst = scratch(which, most);
    long n = HpackDecoder::huffman_decode(s, len, dst);
    if (n < 0)
        return StringResult::error;
    if (static_cast<size_t>(n) > max_string)
        return StringResult::oversized;
    out = {dst, static_cast<size_t>(n)};
    return StringResult::ok;
}

} // namespace

HpackDecoder::~HpackDecoder() {
    std::free(bytes_);
    std::free(entries_);
}

size_t HpackDecoder::memory() const {
    return bytes_cap_ + entry_cap_ * sizeof(Entry);
}

bool HpackDecoder::lookup(uint32_t index, std::string_view& name, std::string_view& value) const {
    if (index == 0)
        return false;
    if (index <= kStaticTableSize) {
        name = kStaticTable[index].name;
        value = kStaticTable[index].value;
        return true;
    }
    uint32_t k = index - kStaticTableSize - 1;
    if (k >= count_)
        return false;
    const Entry& e = entry(k);
    const char* p = bytes_ + begin_ + (e.pos - base_pos_);
    name = {p, e.name_len};
    value = {p + e.name_len, e.value_len};
    return true;
}

void HpackDecoder::evict_oldest() {
    const Entry& e = entries_[head_];
    const uint32_t n = e.name_len + e.value_len;
    size_ -= n + kEntryOverhead;
    begin_ += n;
    base_pos_ += n;
    head_ = (head_ + 1) & (entry_cap_ - 1);
    if (--count_ == 0)
        begin_ = end_ = head_ = 0;
}

void HpackDecoder::set_max_size(uint32_t size) {
    max_size_ = size;
    while (size_ > max_size_)
        evict_oldest();
}

// RFC 7541 §4.4: make room by evicting the oldest; an entry larger than the table empties it.
void HpackDecoder::insert(std::string_view name, std::string_view value) {
    const uint32_t n = static_cast<uint32_t>(name.size() + value.size());
    if (n + kEntryOverhead > max_size_) {
        while (count_)
            evict_oldest();
        return;
    }
    // The name may be an entry's own bytes, which eviction and compaction move: keep a copy.
    if (!name.empty() && bytes_ && name.data() >= bytes_ && name.data() < bytes_ + bytes_cap_) {
        char* copy = scratch(2, name.size());
        std::memcpy(copy, name.data(), name.size());
        name = {copy, name.size()};
    }
    while (size_ + n + kEntryOverhead > max_size_)
        evict_oldest();
    if (bytes_cap_ - end_ < n) {
        const uint32_t live = end_ - begin_;
        if (begin_ > 0) {
            std::memmove(bytes_, bytes_ + begin_, live);
            begin_ = 0;
            end_ = live;
        }
        if (bytes_cap_ - end_ < n) {
            // Grow geometrically, but never past what the table can hold.
            uint32_t cap = std::max<uint32_t>(
                live + n, std::min<uint32_t>(std::max(bytes_cap_ * 2, 128u), max_size_));
            auto* p = static_cast<char*>(std::realloc(bytes_, cap));
            if (!p)
                std::abort(); // as operator new would
            bytes_ = p;
            bytes_cap_ = cap;
        }
    }
    if (count_ == entry_cap_ && !move_entries(entry_cap_ ? entry_cap_ * 2 : 4))
        std::abort();
    if (!name.empty()) // an entry may be empty: 32 bytes of size and no bytes (no buffer)
        std::memcpy(bytes_ + end_, name.data(), name.size());
    if (!value.empty())
        std::memcpy(bytes_ + end_ + name.size(), value.data(), value.size());
    entries_[(head_ + count_) & (entry_cap_ - 1)] = {base_pos_ + (end_ - begin_),
                                                     static_cast<uint16_t>(name.size()),
                                                     static_cast<uint16_t>(value.size())};
    end_ += n;
    ++count_;
    size_ += n + kEntryOverhead;
}

void HpackDecoder::compact() {
    if (count_ == 0) {
        std::free(bytes_);
        std::free(entries_);
        bytes_ = nullptr;
        entries_ = nullptr;
        bytes_cap_ = entry_cap_ = 0;
        begin_ = end_ = head_ = 0;
        return;
    }
    const uint32_t live = end_ - begin_;
    if (live == 0) { // entries of empty names and values only
        std::free(bytes_);
        bytes_ = nullptr;
        bytes_cap_ = begin_ = end_ = 0;
    } else if (live < bytes_cap_) {
        std::memmove(bytes_, bytes_ + begin_, live);
        begin_ = 0;
        end_ = live;
        if (auto* p = static_cast<char*>(std::realloc(bytes_, live))) {
            bytes_ = p;
            bytes_cap_ = live;
        }
    }
    uint32_t cap = 1;
    while (cap < count_)
        cap *= 2;
    if (cap < entry_cap_)
        move_entries(cap); // a failure keeps the larger ring
}

bool HpackDecoder::move_entries(uint32_t cap) {
    auto* p = static_cast<Entry*>(std::malloc(cap * sizeof(Entry)));
    if (!p)
        return false;
    for (uint32_t i = 0; i < count_; ++i)
        p[i] = entries_[(head_ + i) & (entry_cap_ - 1)];
    std::free(entries_);
    entries_ = p;
    entry_cap_ = cap;
    head_ = 0;
    return true;
}

bool HpackDecoder::decode(const uint8_t* p, size_t len, HpackSink& sink) {
    const uint8_t* end = p + len;
    bool fields_seen = false;
    while (p < end) {
        const uint8_t b = *p;
        if (b & 0x80) { // §6.1 indexed field
            uint32_t index;
            std::string_view name, value;
            if (!read_integer(p, end, 7, index) || !lookup(index, name, value))
                return false;
            sink.field(name, value);
            fields_seen = true;
            continue;
        }
        if ((b & 0xe0) == 0x20) { // §6.3 dynamic table size update
            // RFC 7541 §4.2: only at the start of a block, and within our limit.
            uint32_t size;
            if (fields_seen || !read_integer(p, end, 5, size) || size > limit_)
                return false;
            set_max_size(size);
            continue;
        }
        // §6.2 literals: with incremental indexing (01), without (0000), never indexed (0001).
        const bool indexing = (b & 0xc0) == 0x40;
        uint32_t index;
        if (!read_integer(p, end, indexing ? 6 : 4, index))
            return false;
        std::string_view name, value, unused;
        StringResult nr = StringResult::ok;
        if (index) {
            if (!lookup(index, name, unused))
                return false;
        } else {
            nr = read_string(p, end, max_string_, 0, name);
            if (nr == StringResult::error)
                return false;
        }
        StringResult vr = read_string(p, end, max_string_, 1, value);
        if (vr == StringResult::error)
            return false;
        fields_seen = true;
        if (nr == StringResult::oversized || vr == StringResult::oversized) {
            // Too long for us, and so for the table (max_string_ > limit_): it empties it.
            if (indexing)
                while (count_)
                    evict_oldest();
            sink.oversized();
            continue;
        }
        // The sink first: an indexed name points into the table, which the insertion may
        // move.
        sink.field(name, value);
        if (indexing)
            insert(name, value);
    }
    return true;
}

// ---- encoder -------------------------------------------------------------------------------

namespace {

// Static table index of a response field name (lowercase), or 0.
uint32_t static_name_index(std::string_view name) {
    // Names that responses carry, checked by length first.
    for (uint32_t i = 15; i <= kStaticTableSize; ++i) {
        const std::string_view s = kStaticTable[i].name;
        if (s.size() == name.size() && s == name)
            return i;
    }
    return 0;
}

bool has_upper(std::string_view s) {
    for (char c : s)
        if (c >= 'A' && c <= 'Z')
            return true;
    return false;
}

uint8_t* write_string(uint8_t* out, std::string_view s, bool lower) {
    const size_t h = HpackEncoder::huffman_length(s, lower);
    if (h < s.size()) {
        out = HpackEncoder::integer(out, h, 7, 0x80);
        return HpackEncoder::huffman_encode(out, s, lower);
    }
    out = HpackEncoder::integer(out, s.size(), 7, 0);
    if (lower)
        for (char c : s)
            *out++ = static_cast<uint8_t>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    else if (!s.empty())
        std::memcpy(out, s.data(), s.size()), out += s.size();
    return out;
}

} // namespace

uint8_t* HpackEncoder::integer(uint8_t* out, uint64_t value, int prefix_bits, uint8_t first) {
    const uint64_t max_prefix = (1u << prefix_bits) - 1;
    if (value < max_prefix) {
        *out++ = static_cast<uint8_t>(first | value);
        return out;
    }
    *out++ = static_cast<uint8_t>(first | max_prefix);
    value -= max_prefix;
    while (value >= 128) {
        *out++ = static_cast<uint8_t>(0x80 | (value & 0x7f));
        value >>= 7;
    }
    *out++ = static_cast<uint8_t>(value);
    return out;
}

uint8_t* HpackEncoder::table_size_zero(uint8_t* out) {
    *out++ = 0x20;
    return out;
}

uint8_t* HpackEncoder::status(uint8_t* out, int status) {
    switch (status) {
    case 200:
        *out++ = 0x80 | 8;
        return out;
    case 204:
        *out++ = 0x80 | 9;
        return out;
    case 206:
        *out++ = 0x80 | 10;
        return out;
    case 304:
        *out++ = 0x80 | 11;
        return out;
    case 400:
        *out++ = 0x80 | 12;
        return out;
    case 404:
        *out++ = 0x80 | 13;
        return out;
    case 500:
        *out++ = 0x80 | 14;
        return out;
    default:
        break;
    }
    // Literal without indexing, name :status (index 8); three digits, never Huffman-shorter
    // by more than a byte, so kept plain.
    const unsigned s = static_cast<unsigned>(status) % 1000;
    *out++ = 0x08;
    *out++ = 3;
    *out++ = static_cast<uint8_t>('0' + s / 100);
    *out++ = static_cast<uint8_t>('0' + s / 10 % 10);
    *out++ = static_cast<uint8_t>('0' + s % 10);
    return out;
}

uint8_t* HpackEncoder::field(uint8_t* out, std::string_view name, std::string_view value) {
    const bool lower = has_upper(name);
    uint32_t index = 0;
    if (!lower)
        index = static_name_index(name);
    // §6.2.2 literal without indexing: 0000 and a 4-bit index prefix.
    if (index) {
        out = integer(out, index, 4, 0x00);
    } else {
        *out++ = 0x00;
        out = write_string(out, name, lower);
    }
    return write_string(out, value, false);
}

} // namespace wraith::http2
