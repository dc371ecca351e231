// A strict JSON reader (RFC 8259) for what wraith reads back, such as the master's `stats`
// answer in `wraith top`. Not on a hot path: it builds a small tree. Limits on size, nesting
// and value count make hostile input an error with a byte offset, never a crash, unbounded
// recursion or unbounded memory. (Writing JSON: common/json.h.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wraith::json {

enum class Type : uint8_t { null, boolean, number, string, array, object };

struct Member;

// One JSON value; only the fields of its `type` mean anything.
struct Value {
    Type type = Type::null;
    bool boolean = false;
    // `integer` holds the number exactly: its literal had no sign, fraction or exponent and
    // fits 64 bits. `number` is always set, rounded to the nearest double.
    bool is_uint = false;
    double number = 0;
    uint64_t integer = 0;
    std::string text;            // a string's bytes (UTF-8, escapes decoded)
    std::vector<Value> items;    // an array's elements
    std::vector<Member> members; // an object's members, in document order (duplicates kept)

    bool is_object() const { return type == Type::object; }
    bool is_array() const { return type == Type::array; }

    // The first member called `key`; nullptr when there is none or this is not an object.
    const Value* find(std::string_view key) const;

    // Readers of a document whose shape is known but not trusted: a missing member or a value
    // of another type reads as null, `fallback`, or empty; never an error.
    const Value& operator[](std::string_view key) const;
    uint64_t as_uint(uint64_t fallback = 0) const;
    double as_double(double fallback = 0) const;
    std::string_view as_string() const;
};

struct Member {
    std::string key;
    Value value;
};

struct Limits {
    size_t max_size = 4 << 20;   // bytes of input
    int max_depth = 64;          // arrays and objects inside one another (at most 1000)
    size_t max_values = 1 << 18; // values in all (a Value is about 100 bytes)
};

struct Error {
    size_t offset = 0;   // the byte of the input where reading stopped
    std::string message; // what is wrong there
    // "at byte N: message"
    std::string describe() const;
};

// Reads `text` as one JSON value, with only whitespace around it, into `*out`. On bad input
// returns false with `*error` set; `*out` is then unspecified.
bool parse(std::string_view text, Value* out, Error* error, const Limits& limits = {});

} // namespace wraith::json
