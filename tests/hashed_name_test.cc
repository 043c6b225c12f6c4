// hashed_name_test.cc: hashed directory names and the sun_path threshold.
// Expected hashes were computed independently with Python's hashlib.blake2s.
#include "catch.h"
#include "hashed_name.h"
#include "hostname.h"

#include <string>
#include <vector>

using namespace sniproxy;

namespace {

std::string b64(std::string_view s)
{
    return base64url_unpadded(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

bool in_alphabet(const std::string& s)
{
    return s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        == std::string::npos;
}

} // namespace

TEST_CASE("base64url follows RFC 4648 without padding", "[hashed]")
{
    CHECK(b64("") == "");
    CHECK(b64("f") == "Zg");
    CHECK(b64("fo") == "Zm8");
    CHECK(b64("foo") == "Zm9v");
    CHECK(b64("foob") == "Zm9vYg");
    CHECK(b64("fooba") == "Zm9vYmE");
    CHECK(b64("foobar") == "Zm9vYmFy");
    CHECK(b64("\xfb\xff\xbf") == "-_-_"); // the URL-safe characters, not '+' and '/'
    CHECK(b64(std::string("\0\0\0", 3)) == "AAAA");
}

TEST_CASE("hashed names match the sniproxy-rs scheme", "[hashed]")
{
    CHECK(hashed_name("example.com") == "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe0");
    CHECK(hashed_name("www.example.com") == "5rusFfqQVA-lQWCJ7DUG8Ysc2hJTGVvjTjW5fHKwrlU");
    CHECK(hashed_name("*.example.com") == "TVgeyCpe1FfRC9o4Wz7T5YQWYxS89Mv6YQnJ30Q2gVM");
    CHECK(hashed_name("") == "aSF6MHmQgJThESHQQjVKfB9VtkgsoaUeGyUN_R7Q7vk");
}

TEST_CASE("hashed names are 43 URL-safe characters a checker accepts", "[hashed]")
{
    for (const char* n : { "example.com", "a", "*.apps.example.com", "xn--bcher-kva.example" }) {
        std::string h = hashed_name(n);
        INFO(n << " -> " << h);
        CHECK(h.size() == 43);
        CHECK(in_alphabet(h));
        CHECK(classify_dir_name(h) == DirKind::hashed);
    }
    std::string long_name = std::string(200, 'a');
    CHECK(hashed_name(long_name).size() == 43);
    CHECK(hashed_name("example.com") != hashed_name("example.org"));
    CHECK(hashed_name("example.com") == hashed_name("example.com"));
}

TEST_CASE("host_directory hashes exactly when sun_path would overflow", "[hashed]")
{
    std::string fits(96, 'a'); // 96 + 11 = 107 bytes, plus NUL = 108
    std::string over(97, 'a');
    REQUIRE(socket_path(fits).size() == max_unix_path);
    CHECK(host_directory(fits, false) == fits);
    CHECK(host_directory(over, false) == hashed_name(over));
    CHECK(host_directory(over, false) == "X8MuJQgZJ1Lljeky_2aCI85RIs0o4595uh1FgKY5Rcw");
    CHECK(socket_path(host_directory(over, false)).size() <= max_unix_path);

    // A valid 253-byte name is routable through its hashed directory.
    std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "."
        + std::string(63, 'c') + "." + std::string(61, 'd');
    REQUIRE(longest.size() == 253);
    CHECK(host_directory(longest, false) == hashed_name(longest));
}

TEST_CASE("host_directory with every name hashed", "[hashed]")
{
    CHECK(host_directory("example.com", false) == "example.com");
    CHECK(host_directory("example.com", true) == "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe0");
    // Wildcards hash their literal string, "*." included.
    CHECK(host_directory("*.example.com", false) == "*.example.com");
    CHECK(host_directory("*.example.com", true) == hashed_name("*.example.com"));
    std::string wild = "*." + std::string(95, 'a'); // 97 bytes
    CHECK(host_directory(wild, false) == hashed_name(wild));
}

TEST_CASE("_default is never hashed", "[hashed]")
{
    CHECK(host_directory("_default", false) == "_default");
    CHECK(host_directory("_default", true) == "_default");
    CHECK(socket_path("_default") == "_default/tls-socket");
}

TEST_CASE("socket_path appends /tls-socket", "[hashed]")
{
    CHECK(socket_path("example.com") == "example.com/tls-socket");
}

TEST_CASE("route candidates map to one directory each", "[hashed]")
{
    std::string sni = "www.example.com";
    std::vector<std::string> dirs;
    for (const std::string& c : route_candidates(&sni))
        dirs.push_back(host_directory(c, true));
    CHECK(dirs
        == std::vector<std::string> { "5rusFfqQVA-lQWCJ7DUG8Ysc2hJTGVvjTjW5fHKwrlU",
            "TVgeyCpe1FfRC9o4Wz7T5YQWYxS89Mv6YQnJ30Q2gVM", "_default" });
}
