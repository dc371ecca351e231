// Variables in config strings: "$host", "$http_x_api_key", "$client_ip:$cookie_session", as
// NGINX spells them. A string is compiled once at config time into literal pieces and
// variable references (an unknown variable is a config error at its position), and expanded
// per request into the request's arena. The core defines the request's own variables;
// modules add theirs (geo, captures, upstream) to the registry before configs load.
//
//   $host $uri $args $scheme $method $request_uri $client_ip $remote_port $server_port
//   $protocol $request_id $route $arg_NAME $http_NAME $cookie_NAME
//   $1..$9 (groups of the route's path regex, or of the last rewrite's pattern)
//
// `$name` ends at the first character that is not a letter, digit or '_'; `${name}` delimits
// it explicitly ("${host}x"); `$$` is a literal '$'; `$1x` is $1 then "x" (one digit).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/arena.h"

namespace wraith {

struct Request;

// A variable's value for one request. `suffix` is what follows a prefix variable's name
// ("x_api_key" of $http_x_api_key), empty for plain ones. The view may point into the request,
// its connection, or `arena` for values made on the fly; empty when the variable has no value.
using VariableGetter = std::string_view (*)(const Request& req, std::string_view suffix,
                                            Arena& arena);

class Variables {
public:
    static Variables& instance();
    // `name` is a whole variable name ("client_ip") or, with `prefix`, the start of a family
    // ("http_" for $http_NAME; the rest of the name is the suffix). Registering a name twice
    // is a programming error (it aborts).
    void add(std::string_view name, VariableGetter getter, bool prefix = false);
    // The getter for `name` and the suffix it passes; nullptr when no variable has the name.
    VariableGetter find(std::string_view name, std::string_view* suffix) const;

private:
    Variables();
    struct Entry {
        std::string name;
        VariableGetter getter;
        bool prefix;
    };
    std::vector<Entry> entries_;
};

// A compiled string with variables.
class VarString {
public:
    VarString() = default;
    // Compiles `text`; false with the problem in *error ("unknown variable $foo") and the
    // offset of the '$' in *at, for FILE:LINE:COL messages.
    bool compile(std::string_view text, std::string* error, size_t* at = nullptr);
    // True when the string has no variables (expand() returns it as is).
    bool constant() const { return vars_ == 0; }
    // A constant string's value ("$$" read as "$"); meaningless when it has variables.
    const std::string& constant_value() const { return pool_; }
    const std::string& text() const { return text_; }
    // The highest $1..$9 the string uses (0: none), for "no such group" checks at load.
    int highest_capture() const { return highest_capture_; }
    // The value for `req`, in req's arena when it has variables. Values are inserted as they
    // are; callers that emit them into a header or log escape or check them themselves.
    std::string_view expand(const Request& req, Arena& arena) const;
    // The same piece by piece, for callers that escape values but not the literal text
    // (access-log formats): `each(text, is_value)` in order.
    template <class Each> void expand_each(const Request& req, Arena& arena, Each each) const {
        for (const Piece& p : pieces_) {
            std::string_view piece{pool_.data() + p.from, p.len};
            if (p.getter)
                each(p.getter(req, piece, arena), true);
            else
                each(piece, false);
        }
    }

private:
    struct Piece {
        VariableGetter getter; // null: a literal, text_[from, from + len)
        uint32_t from;
        uint32_t len; // literal length, or the suffix's in text_
    };
    std::string text_; // as written (compiled pieces point into a copy of it)
    std::string pool_; // literal bytes and suffixes
    std::vector<Piece> pieces_;
    size_t vars_ = 0;
    int highest_capture_ = 0;
};

} // namespace wraith
