// libFuzzer target for the JSON reader (common/json_reader.h), which `wraith top` points at
// the master's answers. Any input must parse or fail with an offset inside it, never crash or
// run deep. A document that parses is written back out and must read again as the same tree
// (strings, numbers and exact integers kept); tighter limits may only turn success into
// failure, never the other way.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/json_reader.h"

using namespace wraith;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

namespace {

void write(const json::Value& v, std::string& out) {
    switch (v.type) {
    case json::Type::null:
        out += "null";
        break;
    case json::Type::boolean:
        out += v.boolean ? "true" : "false";
        break;
    case json::Type::number: {
        char buf[40];
        if (v.is_uint)
            snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(v.integer));
        else
            snprintf(buf, sizeof(buf), "%.17g", v.number);
        out += buf;
        break;
    }
    case json::Type::string:
        append_json_string(out, v.text);
        break;
    case json::Type::array:
        out += '[';
        for (size_t i = 0; i < v.items.size(); ++i) {
            if (i)
                out += ',';
            write(v.items[i], out);
        }
        out += ']';
        break;
    case json::Type::object:
        out += '{';
        for (size_t i = 0; i < v.members.size(); ++i) {
            if (i)
                out += ',';
            append_json_string(out, v.members[i].key);
            out += ':';
            write(v.members[i].value, out);
        }
        out += '}';
        break;
    }
}

bool same(const json::Value& a, const json::Value& b) {
    if (a.type != b.type)
        return false;
    switch (a.type) {
    case json::Type::null:
        return true;
    case json::Type::boolean:
        return a.boolean == b.boolean;
    case json::Type::number:
        // 1e2 written back as "100" reads as exact; an exact integer stays exact.
        return a.number == b.number && (!a.is_uint || (b.is_uint && a.integer == b.integer));
    case json::Type::string:
        return a.text == b.text;
    case json::Type::array:
        if (a.items.size() != b.items.size())
            return false;
        for (size_t i = 0; i < a.items.size(); ++i)
            if (!same(a.items[i], b.items[i]))
                return false;
        return true;
    case json::Type::object:
        if (a.members.size() != b.members.size())
            return false;
        for (size_t i = 0; i < a.members.size(); ++i)
            if (a.members[i].key != b.members[i].key ||
                !same(a.members[i].value, b.members[i].value))
                return false;
        return true;
    }
    return false;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    json::Value doc;
    json::Error error;
    const bool ok = json::parse(in, &doc, &error);
    if (!ok) {
        CHECK(!error.message.empty() && error.offset <= size);
    } else {
        std::string again;
        write(doc, again);
        json::Value copy;
        json::Error copy_error;
        CHECK(json::parse(again, &copy, &copy_error));
        CHECK(same(doc, copy));
    }
    json::Limits tight;
    tight.max_depth = 3;
    tight.max_values = 32;
    json::Value small;
    json::Error small_error;
    if (json::parse(in, &small, &small_error, tight))
        CHECK(ok && same(doc, small));
    return 0;
}
