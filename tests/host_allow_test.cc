// host_allow_test.cc: reading a hosts-directory entry's allow file from a real directory.
#include "catch.h"
#include "host_allow.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

using namespace sniproxy;

namespace {
struct TempHosts {
    std::string dir;
    int fd = -1;
    TempHosts()
    {
        char tmpl[] = "/tmp/host_allow_test.XXXXXX";
        dir = mkdtemp(tmpl);
        mkdir((dir + "/example.com").c_str(), 0755);
        fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    ~TempHosts()
    {
        close(fd);
        std::system(("rm -rf " + dir).c_str());
    }
    void write(const std::string& text) { std::ofstream(dir + "/example.com/allow") << text; }
};
} // namespace

TEST_CASE("the entry of a socket path is its first component")
{
    CHECK(entry_of("example.com/tls-socket") == "example.com");
    CHECK(entry_of("example.com/alpn/h2/tls-socket") == "example.com");
}

TEST_CASE("no allow file lets everyone in; one lets in its CIDRs only")
{
    TempHosts h;
    std::optional<CidrList> allow;
    std::string err;
    REQUIRE(read_host_allow(h.fd, "example.com", &allow, &err));
    CHECK_FALSE(allow.has_value());
    h.write("# office\n192.0.2.0/24 # the VPN\n2001:db8::/32\n");
    REQUIRE(read_host_allow(h.fd, "example.com", &allow, &err));
    REQUIRE(allow.has_value());
    Cidr c;
    REQUIRE(parse_cidr("192.0.2.77", &c, &err));
    CHECK(allow->contains(c.network));
    REQUIRE(parse_cidr("198.51.100.1", &c, &err));
    CHECK_FALSE(allow->contains(c.network));
}

TEST_CASE("an allow file of comments only lets nobody in")
{
    TempHosts h;
    h.write("# closed for maintenance\n\n");
    std::optional<CidrList> allow;
    std::string err;
    REQUIRE(read_host_allow(h.fd, "example.com", &allow, &err));
    REQUIRE(allow.has_value());
    CHECK(allow->empty());
}

TEST_CASE("a bad, oversized or linked allow file is an error naming it")
{
    TempHosts h;
    std::optional<CidrList> allow;
    std::string err;
    SECTION("a bad line")
    {
        h.write("192.0.2.0/24\n10.0.0.0/33\n");
        CHECK_FALSE(read_host_allow(h.fd, "example.com", &allow, &err));
        CHECK(err.find("example.com/allow line 2") != std::string::npos);
    }
    SECTION("too large")
    {
        h.write(std::string(max_allow_file_bytes + 10, '#'));
        CHECK_FALSE(read_host_allow(h.fd, "example.com", &allow, &err));
        CHECK(err.find("larger than") != std::string::npos);
    }
    SECTION("a symlink")
    {
        std::ofstream(h.dir + "/elsewhere") << "0.0.0.0/0\n";
        REQUIRE(symlink("../elsewhere", (h.dir + "/example.com/allow").c_str()) == 0);
        CHECK_FALSE(read_host_allow(h.fd, "example.com", &allow, &err));
    }
    SECTION("a FIFO, which must not hang the worker waiting for a writer")
    {
        REQUIRE(mkfifo((h.dir + "/example.com/allow").c_str(), 0644) == 0);
        CHECK_FALSE(read_host_allow(h.fd, "example.com", &allow, &err));
        CHECK(err.find("not a regular file") != std::string::npos);
    }
    CHECK_FALSE(allow.has_value());
}
