// Command-line reading for the client tools: "--name=value", "--name value", "-Xvalue",
// "-X value", clustered flags ("-kvi") and "--" before positional arguments.
#pragma once

#include <string>

namespace h3 {

class ArgReader {
public:
    enum class Kind { Option, Positional, End };

    ArgReader(int argc, char** argv) : argc_(argc), argv_(argv) {}

    // The next option name ("-k", "--insecure") or positional argument, in `out`.
    Kind next(std::string& out) {
        has_inline_ = false;
        if (cluster_pos_ > 0 && cluster_pos_ < cluster_.size()) {
            out = std::string("-") + cluster_[cluster_pos_++];
            return Kind::Option;
        }
        cluster_pos_ = 0;
        if (index_ >= argc_) {
            return Kind::End;
        }
        std::string arg = argv_[index_++];
        if (only_positional_ || arg.size() < 2 || arg[0] != '-') {
            out = arg;
            return Kind::Positional;
        }
        if (arg == "--") {
            only_positional_ = true;
            return next(out);
        }
        if (arg[1] == '-') {
            auto eq = arg.find('=');
            if (eq != std::string::npos) {
                inline_value_ = arg.substr(eq + 1);
                has_inline_ = true;
                arg.resize(eq);
            }
            out = arg;
            return Kind::Option;
        }
        cluster_ = arg.substr(1);
        cluster_pos_ = 1;
        out = std::string("-") + cluster_[0];
        return Kind::Option;
    }

    // The value of the option just read; false if there is none.
    bool value(std::string& out) {
        if (has_inline_) {
            out = inline_value_;
            has_inline_ = false;
            return true;
        }
        if (cluster_pos_ > 0 && cluster_pos_ < cluster_.size()) {
            out = cluster_.substr(cluster_pos_);
            cluster_pos_ = cluster_.size();
            return true;
        }
        if (index_ >= argc_) {
            return false;
        }
        out = argv_[index_++];
        return true;
    }

    // True if "--name=value" gave a value that a flag option must not have.
    bool has_inline_value() const { return has_inline_; }

private:
    int argc_;
    char** argv_;
    int index_ = 1;
    std::string cluster_;      // `cluster_` is the letters of "-abc" after the dash.
    size_t cluster_pos_ = 0;   // `cluster_pos_` is the next letter of `cluster_` to read.
    std::string inline_value_; // `inline_value_` is the part after '=' in "--name=value".
    bool has_inline_ = false;
    bool only_positional_ = false; // after "--"
};

} // namespace h3
