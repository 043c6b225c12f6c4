// hosts_layout_test.cc: entry paths, the sun_path threshold and the hashed-name shape.
#include "catch.h"
#include "hashed_name.h"
#include "hosts_layout.h"

#include <string>

using namespace sniproxy;

TEST_CASE("paths inside an entry", "[layout]")
{
    CHECK(socket_path("example.com") == "example.com/tls-socket");
    CHECK(entry_path("example.com", proxy_v2_file) == "example.com/send-proxy-v2");
    CHECK(entry_path("*.apps.example.com", proxy_v1_file) == "*.apps.example.com/send-proxy-v1");
}

TEST_CASE("socket_path_fits is the sun_path limit, NUL included", "[layout]")
{
    // "/tls-socket" is 11 bytes: a 96-byte name makes a 107-byte path, the most that fits.
    CHECK(socket_path_fits(std::string(96, 'a')));
    CHECK(socket_path(std::string(96, 'a')).size() == max_unix_path);
    CHECK_FALSE(socket_path_fits(std::string(97, 'a')));
}

TEST_CASE("a hashed name is 43 base64url characters with 256 bits", "[layout]")
{
    const std::string h = hashed_name("example.com");
    CHECK(h.size() == hashed_name_length);
    CHECK(looks_hashed(h));
    CHECK(is_hashed_shape(h));
    for (const char* name : { "example.com", "_default", "" })
        CHECK_FALSE(looks_hashed(name));
    // One character too few or too many, or one outside the alphabet.
    CHECK_FALSE(looks_hashed(h.substr(1)));
    CHECK_FALSE(looks_hashed(h + "A"));
    CHECK_FALSE(looks_hashed(std::string(42, 'A') + "."));
    CHECK_FALSE(looks_hashed(std::string(42, 'A') + "="));
    // The last character carries 2 unused bits that the encoder leaves zero: "B" (1) has
    // one set, so no hash can end in it, though it looks like one.
    const std::string odd = std::string(42, 'A') + "B";
    CHECK(looks_hashed(odd));
    CHECK_FALSE(is_hashed_shape(odd));
    CHECK(is_hashed_shape(std::string(42, '_') + "w")); // w = 48, low bits zero
    CHECK_FALSE(is_hashed_shape(std::string(42, '_') + "_")); // 63
}
