// settings_file_test.cc: -f and -o together, as sniproxyd reads them at start and on SIGHUP.
#include "catch.h"
#include "settings_file.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

using namespace sniproxy;

namespace {
struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text)
    {
        char tmpl[] = "/tmp/settings_test.XXXXXX";
        const int fd = mkstemp(tmpl);
        REQUIRE(fd >= 0);
        close(fd);
        path = tmpl;
        std::ofstream(path) << text;
    }
    ~TempFile() { unlink(path.c_str()); }
};
} // namespace

TEST_CASE("the file is read and -o wins")
{
    TempFile f("source-max=5\nsource-hellos=2\n");
    Options o;
    o.settings_file = f.path;
    o.settings = { "source-max=7" };
    Settings s;
    std::string err;
    REQUIRE(load_settings(o, &s, &err));
    CHECK(s.source_max == 7);
    CHECK(s.source_hellos == 2);
}

TEST_CASE("no file: only the -o items")
{
    Options o;
    o.settings = { "idle-timeout=60" };
    Settings s;
    std::string err;
    REQUIRE(load_settings(o, &s, &err));
    CHECK(s.idle_timeout == 60);
}

TEST_CASE("a missing or broken file keeps the old settings and says why")
{
    Settings old;
    old.source_max = 3;
    Options o;
    o.settings_file = "/nonexistent/sniproxyd.conf";
    std::string err;
    CHECK(!load_settings(o, &old, &err));
    CHECK(err == "settings file /nonexistent/sniproxyd.conf: No such file or directory");
    CHECK(old.source_max == 3);

    TempFile broken("source-max=4\nsource-hellos=oops\n");
    o.settings_file = broken.path;
    CHECK(!load_settings(o, &old, &err));
    CHECK(err == "settings file " + broken.path + " line 2: source-hellos: not a number: oops");
    CHECK(old.source_max == 3);
}

TEST_CASE("a huge file is refused")
{
    TempFile big(std::string(max_settings_file_bytes + 10, '#'));
    Options o;
    o.settings_file = big.path;
    Settings s;
    std::string err;
    CHECK(!load_settings(o, &s, &err));
    CHECK(err.find("larger than") != std::string::npos);
}
