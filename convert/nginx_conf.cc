#include "convert/nginx_conf.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <glob.h>
#include <sstream>
#include <sys/stat.h>

namespace wraith::convert {

namespace {

enum class TokenKind { word, semicolon, open, close, end, error };

struct Token {
    TokenKind kind = TokenKind::end;
    std::string text;
    int line = 0;
};

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// NGINX's escapes, in words and strings alike (ngx_conf_read_token): \" \' \\ \t \r \n; any
// other backslash stays with the character after it (regular expressions keep theirs).
void unescape_into(std::string& out, char c) {
    switch (c) {
    case 't':
        out += '\t';
        break;
    case 'r':
        out += '\r';
        break;
    case 'n':
        out += '\n';
        break;
    default:
        out += c;
    }
}

class Lexer {
public:
    Lexer(std::string_view text, const NginxLimits& limits) : text_(text), limits_(limits) {}

    Token next() {
        skip_space_and_comments();
        Token t;
        t.line = line_;
        if (pos_ >= text_.size()) {
            t.kind = TokenKind::end;
            return t;
        }
        char c = text_[pos_];
        if (c == ';' || c == '{' || c == '}') {
            ++pos_;
            t.kind = c == ';'   ? TokenKind::semicolon
                     : c == '{' ? TokenKind::open
                                : TokenKind::close;
            return t;
        }
        if (c == '"' || c == '\'')
            return quoted(c, t);
        return word(t);
    }

private:
    void skip_space_and_comments() {
        while (pos_ < text_.size()) {
            char c = text_[pos_];
            if (c == '\n') {
                ++line_;
                ++pos_;
            } else if (is_space(c)) {
                ++pos_;
            } else if (c == '#') {
                while (pos_ < text_.size() && text_[pos_] != '\n')
                    ++pos_;
            } else {
                return;
            }
        }
    }

    Token error(Token t, std::string message) {
        t.kind = TokenKind::error;
        t.text = std::move(message);
        return t;
    }

    Token quoted(char quote, Token t) {
        ++pos_;
        while (true) {
            if (pos_ >= text_.size())
                return error(t, std::string("unexpected end of file, expecting ") + quote);
            char c = text_[pos_++];
            if (c == '\n')
                ++line_;
            if (c == quote)
                break;
            if (c == '\\' && pos_ < text_.size()) {
                char e = text_[pos_++];
                if (e == '\n')
                    ++line_;
                if (e == '"' || e == '\'' || e == '\\' || e == 't' || e == 'r' || e == 'n') {
                    unescape_into(t.text, e);
                } else {
                    t.text += '\\';
                    t.text += e;
                }
            } else {
                t.text += c;
            }
            if (t.text.size() > limits_.max_token)
                return error(t, "too long parameter");
        }
        // NGINX wants a separator after a closing quote.
        if (pos_ < text_.size()) {
            char n = text_[pos_];
            if (!is_space(n) && n != ';' && n != '{' && n != '}' && n != ')')
                return error(t, std::string("unexpected \"") + n + "\"");
        }
        t.kind = TokenKind::word;
        return t;
    }

    Token word(Token t) {
        int variable_depth = 0; // inside ${...}, braces belong to the word
        while (pos_ < text_.size()) {
            char c = text_[pos_];
            if (variable_depth == 0 && (is_space(c) || c == ';' || c == '{' || c == '}'))
                break;
            ++pos_;
            if (c == '\\' && pos_ < text_.size()) {
                char e = text_[pos_++];
                if (e == '\n')
                    ++line_;
                if (e == '"' || e == '\'' || e == '\\' || e == 't' || e == 'r' || e == 'n') {
                    unescape_into(t.text, e);
                } else {
                    t.text += '\\';
                    t.text += e;
                }
            } else if (c == '$' && pos_ < text_.size() && text_[pos_] == '{') {
                t.text += "${";
                ++pos_;
                ++variable_depth;
            } else if (c == '}' && variable_depth > 0) {
                t.text += c;
                --variable_depth;
            } else {
                if (c == '\n')
                    ++line_;
                t.text += c;
            }
            if (t.text.size() > limits_.max_token)
                return error(t, "too long parameter");
        }
        if (variable_depth > 0)
            return error(t, "the closing bracket in a variable name is missing");
        t.kind = TokenKind::word;
        return t;
    }

    std::string_view text_;
    const NginxLimits& limits_;
    size_t pos_ = 0;
    int line_ = 1;
};

bool read_whole(const std::string& path, size_t limit, std::string* out, std::string* error) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        *error = std::string("cannot stat: ") + std::strerror(errno);
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        *error = "is a directory";
        return false;
    }
    if (static_cast<size_t>(st.st_size) > limit) {
        *error = "larger than " + std::to_string(limit) + " bytes";
        return false;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        *error = std::string("cannot open: ") + std::strerror(errno);
        return false;
    }
    std::ostringstream s;
    s << in.rdbuf();
    *out = s.str();
    if (out->size() > limit) {
        *error = "larger than " + std::to_string(limit) + " bytes";
        return false;
    }
    return true;
}

class Parser {
public:
    Parser(NginxConf& conf, const NginxLimits& limits, std::string base_dir, bool includes)
        : conf_(conf), limits_(limits), base_dir_(std::move(base_dir)), includes_(includes) {}

    // Parses one file's text into `into`; `include_depth` counts nested includes.
    void parse(std::string_view text, const std::string& name, const std::string& included_from,
               size_t include_depth, std::vector<NginxDirective>& into) {
        Lexer lexer(text, limits_);
        // Explicit stack: the block each level appends to (never recursion on input depth).
        std::vector<std::vector<NginxDirective>*> stack{&into};
        NginxDirective current;
        bool have_name = false;
        while (true) {
            Token t = lexer.next();
            if (t.kind == TokenKind::error) {
                fail(name, t.line, t.text);
                return;
            }
            if (t.kind == TokenKind::end) {
                if (have_name)
                    fail(name, t.line, "unexpected end of file, expecting \";\" or \"}\"");
                else if (stack.size() > 1)
                    fail(name, t.line, "unexpected end of file, expecting \"}\"");
                return;
            }
            if (t.kind == TokenKind::word) {
                if (!have_name) {
                    current = NginxDirective{};
                    current.name = std::move(t.text);
                    current.at = SourceRef{name, t.line};
                    current.included_from = included_from;
                    have_name = true;
                } else {
                    if (current.args.size() >= limits_.max_args) {
                        fail(name, t.line, "too many parameters");
                        return;
                    }
                    current.args.push_back(std::move(t.text));
                }
                continue;
            }
            if (t.kind == TokenKind::close) {
                if (have_name) {
                    fail(name, t.line, "unexpected \"}\"");
                    return;
                }
                if (stack.size() == 1) {
                    fail(name, t.line, "unexpected \"}\"");
                    return;
                }
                stack.pop_back();
                continue;
            }
            if (!have_name) {
                fail(name, t.line,
                     t.kind == TokenKind::open ? "unexpected \"{\"" : "unexpected \";\"");
                return;
            }
            have_name = false;
            if (++directives_ > limits_.max_directives) {
                fail(name, t.line, "too many directives");
                return;
            }
            if (t.kind == TokenKind::semicolon) {
                if (current.name == "include" && includes_) {
                    include(current, include_depth, *stack.back());
                    if (!conf_.errors.empty())
                        return;
                } else {
                    stack.back()->push_back(std::move(current));
                }
                continue;
            }
            // '{': a block
            if (stack.size() > limits_.max_depth) {
                fail(name, t.line, "blocks nested too deeply");
                return;
            }
            current.block = true;
            stack.back()->push_back(std::move(current));
            stack.push_back(&stack.back()->back().children);
        }
    }

private:
    void fail(const std::string& file, int line, const std::string& message) {
        conf_.errors.push_back(file + ":" + std::to_string(line) + ": " + message);
    }

    void include(const NginxDirective& d, size_t depth, std::vector<NginxDirective>& into) {
        if (d.args.size() != 1) {
            fail(d.at.file, d.at.line, "invalid number of arguments in \"include\" directive");
            return;
        }
        if (depth + 1 > limits_.max_include_depth) {
            fail(d.at.file, d.at.line, "includes nested too deeply (a loop?)");
            return;
        }
        std::string pattern = d.args[0];
        if (pattern.empty() || pattern[0] != '/')
            pattern = base_dir_ + "/" + pattern;
        std::vector<std::string> paths;
        if (pattern.find_first_of("*?[") == std::string::npos) {
            paths.push_back(pattern);
        } else {
            glob_t g{};
            int rc = glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g);
            if (rc == 0)
                for (size_t i = 0; i < g.gl_pathc; ++i)
                    paths.emplace_back(g.gl_pathv[i]);
            globfree(&g);
            std::sort(paths.begin(), paths.end()); // nginx sorts glob results too
        }
        for (const auto& p : paths) {
            if (conf_.files.size() >= limits_.max_files) {
                fail(d.at.file, d.at.line, "too many included files");
                return;
            }
            std::string text, error;
            if (!read_whole(p, limits_.max_file_size, &text, &error)) {
                fail(d.at.file, d.at.line, "include " + p + ": " + error);
                return;
            }
            conf_.files.push_back(p);
            parse(text, p, d.at.file, depth + 1, into);
            if (!conf_.errors.empty())
                return;
        }
    }

    NginxConf& conf_;
    const NginxLimits& limits_;
    std::string base_dir_;
    bool includes_;
    size_t directives_ = 0;
};

std::string dir_of(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

} // namespace

NginxConf parse_nginx_conf(std::string_view text, const std::string& name,
                           const std::string& base_dir, const NginxLimits& limits,
                           bool follow_includes) {
    NginxConf conf;
    conf.files.push_back(name);
    Parser(conf, limits, base_dir, follow_includes).parse(text, name, "", 0, conf.top);
    return conf;
}

NginxConf read_nginx_conf(const std::string& path, const NginxLimits& limits,
                          bool follow_includes) {
    std::string text, error;
    if (!read_whole(path, limits.max_file_size, &text, &error)) {
        NginxConf conf;
        conf.errors.push_back(path + ": " + error);
        return conf;
    }
    return parse_nginx_conf(text, path, dir_of(path), limits, follow_includes);
}

} // namespace wraith::convert
