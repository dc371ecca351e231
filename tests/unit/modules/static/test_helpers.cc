// Pure helpers of the static module: sidecar negotiation, content types, directory listings.
#include <catch2/catch.hpp>

#include <vector>

#include "modules/static/autoindex.h"
#include "modules/static/content_type.h"
#include "modules/static/precompressed.h"

using namespace wraith::static_files;
using wraith::Arena;

namespace {

std::vector<Coding> codings(std::string_view field) {
    Coding out[coding_count];
    size_t n = acceptable_codings(field, out);
    return {out, out + n};
}

} // namespace

TEST_CASE("static precompressed: preference order follows q then br, zstd, gzip",
          "[static][precompressed]") {
    using V = std::vector<Coding>;
    CHECK(codings("gzip, br, zstd") == V{Coding::br, Coding::zstd, Coding::gzip});
    CHECK(codings("gzip;q=1, br;q=0.5") == V{Coding::gzip, Coding::br});
    CHECK(codings("gzip, deflate") == V{Coding::gzip});
    CHECK(codings("x-gzip") == V{Coding::gzip});
    CHECK(codings("br;q=0, gzip") == V{Coding::gzip});
    CHECK(codings("*") == V{Coding::br, Coding::zstd, Coding::gzip});
    CHECK(codings("*;q=0.5, gzip") == V{Coding::gzip, Coding::br, Coding::zstd});
    CHECK(codings("*, br;q=0") == V{Coding::zstd, Coding::gzip});
    CHECK(codings("identity") == V{});
    CHECK(codings("") == V{});
    CHECK(codings("GZIP, BR") == V{Coding::br, Coding::gzip});
}

TEST_CASE("static precompressed: a coding weighted below identity is not used",
          "[static][precompressed]") {
    CHECK(codings("gzip;q=0.5, identity") == std::vector<Coding>{});
}

TEST_CASE("static precompressed: sidecar names and tokens", "[static][precompressed]") {
    CHECK(coding_extension(Coding::br) == ".br");
    CHECK(coding_extension(Coding::zstd) == ".zst");
    CHECK(coding_extension(Coding::gzip) == ".gz");
    CHECK(coding_token(Coding::zstd) == "zstd");
    CHECK(coding_etag_suffix(Coding::gzip) == "-gz");
}

TEST_CASE("static content type: charset goes on textual types only", "[static][type]") {
    Arena arena;
    CHECK(with_charset("text/html", "utf-8", arena) == "text/html; charset=utf-8");
    CHECK(with_charset("application/javascript", "utf-8", arena) ==
          "application/javascript; charset=utf-8");
    CHECK(with_charset("application/json", "utf-8", arena) == "application/json; charset=utf-8");
    CHECK(with_charset("image/svg+xml", "utf-8", arena) == "image/svg+xml; charset=utf-8");
    CHECK(with_charset("application/vnd.api+json", "utf-8", arena) ==
          "application/vnd.api+json; charset=utf-8");
    CHECK(with_charset("image/png", "utf-8", arena) == "image/png");
    CHECK(with_charset("text/html", "", arena) == "text/html");
    CHECK(with_charset("text/html; charset=latin1", "utf-8", arena) == "text/html; charset=latin1");
}

TEST_CASE("static content type: compressible types", "[static][type]") {
    CHECK(is_compressible_type("text/css"));
    CHECK(is_compressible_type("text/plain; charset=utf-8"));
    CHECK(is_compressible_type("application/wasm"));
    CHECK(is_compressible_type("image/svg+xml"));
    CHECK_FALSE(is_compressible_type("image/png"));
    CHECK_FALSE(is_compressible_type("application/octet-stream"));
    CHECK_FALSE(is_compressible_type("application/gzip"));
}

TEST_CASE("static autoindex: sorted, escaped, directories first", "[static][autoindex]") {
    std::vector<DirEntry> entries = {
        {"b.txt", false, 12, 0},
        {"a<script>.txt", false, 3, 0},
        {"zdir", true, 0, 0},
        {"sp ace&\"q\".html", false, 1, 0},
    };
    std::string html = render_autoindex("/files/<x>/", entries);
    CHECK(html.find("Index of /files/&lt;x&gt;/") != std::string::npos);
    CHECK(html.find("<script>") == std::string::npos);
    CHECK(html.find("href=\"./a%3Cscript%3E.txt\"") != std::string::npos);
    CHECK(html.find("a&lt;script&gt;.txt</a>") != std::string::npos);
    CHECK(html.find("href=\"./sp%20ace%26%22q%22.html\"") != std::string::npos);
    CHECK(html.find("sp ace&amp;&quot;q&quot;.html") != std::string::npos);
    CHECK(html.find("href=\"./zdir/\"") != std::string::npos);
    CHECK(html.find("href=\"../\"") != std::string::npos);
    size_t dir = html.find("zdir");
    size_t a = html.find("a&lt;");
    size_t b = html.find("b.txt");
    CHECK(dir < a);
    CHECK(a < b);
}

TEST_CASE("static autoindex: the root has no parent link", "[static][autoindex]") {
    std::vector<DirEntry> entries;
    CHECK(render_autoindex("/", entries).find("../") == std::string::npos);
}
