// hosts_cache_test.cc: the worker's hosts cache against a real directory: it answers like
// lstat, from memory between changes, and sees every change once refreshed.
#include "catch.h"
#include "hosts_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>

using namespace sniproxy;

namespace {
struct TempHosts {
    std::string dir;
    TempHosts()
    {
        char tmpl[] = "/tmp/hosts_cache_test.XXXXXX";
        dir = std::string(mkdtemp(tmpl)) + "/";
    }
    ~TempHosts() { std::system(("rm -rf " + dir).c_str()); }
    void mkdir(const std::string& p) const { ::mkdir((dir + p).c_str(), 0755); }
    void touch(const std::string& p) const { std::ofstream(dir + p) << ""; }
    // A directory with these (empty) files in it.
    void entry(const std::string& p, std::initializer_list<const char*> files) const
    {
        mkdir(p);
        for (const char* f : files)
            touch(p + "/" + f);
    }
    void remove(const std::string& p) const { std::remove((dir + p).c_str()); }
    void link(const std::string& target, const std::string& p) const
    {
        symlink(target.c_str(), (dir + p).c_str());
    }
    // ln -sfn: a new link renamed over the old one, as an operator swaps a host.
    void swap_link(const std::string& target, const std::string& p) const
    {
        link(target, p + ".new");
        std::rename((dir + p + ".new").c_str(), (dir + p).c_str());
    }
};

struct Opened {
    HostsCache cache;
    explicit Opened(const TempHosts& h)
        : cache(h.dir)
    {
        std::string err;
        REQUIRE(cache.open(&err));
    }
};
} // namespace

TEST_CASE("only the six names directly inside an entry are cached")
{
    std::string_view entry;
    CHECK(cached_file_bit("example.com/tls-socket", &entry) == 0);
    CHECK(entry == "example.com");
    CHECK(cached_file_bit("*.example.com/send-proxy-v2-ja4", &entry) == 4);
    CHECK(cached_file_bit("_default/allow", &entry) == 5);
    CHECK(cached_file_bit("example.com/alpn/h2/tls-socket", &entry) == -1);
    CHECK(cached_file_bit("example.com/unknown", &entry) == -1);
    CHECK(cached_file_bit("example.com", &entry) == -1);
    CHECK(cached_file_bit("/tls-socket", &entry) == -1);
}

TEST_CASE("a symlinked entry is cached only when it names a sibling")
{
    CHECK(is_sibling_link("example.com"));
    CHECK_FALSE(is_sibling_link("sites/example.com"));
    CHECK_FALSE(is_sibling_link("../example.com"));
    CHECK_FALSE(is_sibling_link(".."));
    CHECK_FALSE(is_sibling_link("."));
    CHECK_FALSE(is_sibling_link(""));
}

TEST_CASE("the cache answers like lstat and reads an entry once between changes")
{
    TempHosts h;
    h.entry("example.com", { "tls-socket", "send-proxy-v2" });
    Opened o(h);
    HostsCache& c = o.cache;
    for (int i = 0; i < 3; i++) {
        c.refresh();
        CHECK(c.exists("example.com/tls-socket"));
        CHECK(c.exists("example.com/send-proxy-v2"));
        CHECK_FALSE(c.exists("example.com/send-proxy-v1"));
        CHECK_FALSE(c.exists("example.com/allow"));
        CHECK_FALSE(c.exists("missing.example/tls-socket"));
    }
    CHECK(c.fills() == 2); // example.com and missing.example, once each
}

TEST_CASE("a refreshed cache sees a flag file added or removed")
{
    TempHosts h;
    h.entry("example.com", { "tls-socket" });
    Opened o(h);
    HostsCache& c = o.cache;
    CHECK_FALSE(c.exists("example.com/send-proxy-v1"));
    h.touch("example.com/send-proxy-v1");
    h.touch("example.com/allow");
    h.mkdir("example.com/alpn");
    c.refresh();
    CHECK(c.exists("example.com/send-proxy-v1"));
    CHECK(c.exists("example.com/allow"));
    CHECK(c.exists("example.com/alpn"));
    h.remove("example.com/send-proxy-v1");
    h.remove("example.com/tls-socket");
    c.refresh();
    CHECK_FALSE(c.exists("example.com/send-proxy-v1"));
    CHECK_FALSE(c.exists("example.com/tls-socket"));
}

TEST_CASE("a refreshed cache sees an entry appear, and a chmod")
{
    TempHosts h;
    Opened o(h);
    HostsCache& c = o.cache;
    CHECK_FALSE(c.exists("new.example/tls-socket"));
    h.mkdir("new.example");
    h.touch("new.example/tls-socket");
    c.refresh();
    CHECK(c.exists("new.example/tls-socket"));
    // Between refreshes the cache answers from memory: the refresh is what keeps it exact.
    h.touch("new.example/send-proxy-v1");
    CHECK_FALSE(c.exists("new.example/send-proxy-v1"));
    c.refresh();
    CHECK(c.exists("new.example/send-proxy-v1"));
    if (geteuid() != 0) { // root's lstat ignores the mode
        chmod((h.dir + "new.example").c_str(), 0);
        c.refresh();
        CHECK_FALSE(c.exists("new.example/tls-socket"));
        chmod((h.dir + "new.example").c_str(), 0755);
    }
}

TEST_CASE("a refreshed cache follows a swapped symlink")
{
    TempHosts h;
    h.entry("a", { "tls-socket", "send-proxy-v1" });
    h.entry("b", { "tls-socket" });
    h.link("a", "www.example");
    Opened o(h);
    HostsCache& c = o.cache;
    CHECK(c.exists("www.example/send-proxy-v1"));
    h.swap_link("b", "www.example");
    c.refresh();
    CHECK(c.exists("www.example/tls-socket"));
    CHECK_FALSE(c.exists("www.example/send-proxy-v1"));
    // A change inside the target is seen through the link's watch.
    h.touch("b/send-proxy-v2");
    c.refresh();
    CHECK(c.exists("www.example/send-proxy-v2"));
}

TEST_CASE("an entry linked beyond its siblings is looked up every time")
{
    TempHosts h;
    h.mkdir("sites");
    h.entry("sites/x", { "tls-socket" });
    h.link("sites/x", "x.example");
    Opened o(h);
    HostsCache& c = o.cache;
    CHECK(c.exists("x.example/tls-socket"));
    // No refresh: nothing watches sites/x, so only a fresh lstat can see this.
    h.touch("sites/x/send-proxy-v1");
    CHECK(c.exists("x.example/send-proxy-v1"));
    CHECK(c.exists("x.example/tls-socket"));
}

TEST_CASE("paths below an entry's own files go to lstat")
{
    TempHosts h;
    h.mkdir("example.com");
    h.mkdir("example.com/alpn");
    h.mkdir("example.com/alpn/h2");
    Opened o(h);
    HostsCache& c = o.cache;
    CHECK_FALSE(c.exists("example.com/alpn/h2/tls-socket"));
    h.touch("example.com/alpn/h2/tls-socket");
    CHECK(c.exists("example.com/alpn/h2/tls-socket"));
}

TEST_CASE("a closed cache is plain lstat")
{
    TempHosts h;
    h.mkdir("example.com");
    HostsCache c(h.dir); // never opened
    CHECK_FALSE(c.active());
    CHECK_FALSE(c.exists("example.com/tls-socket"));
    h.touch("example.com/tls-socket");
    CHECK(c.exists("example.com/tls-socket"));
    CHECK(c.fills() == 0);
}

TEST_CASE("entries created and removed over time do not use up the watches")
{
    TempHosts h;
    Opened o(h);
    HostsCache& c = o.cache;
    for (int i = 0; i < 1100; i++) { // more than the cache may watch at once
        const std::string name = "gone" + std::to_string(i) + ".example";
        h.entry(name, { "tls-socket" });
        c.refresh();
        REQUIRE(c.exists(name + "/tls-socket"));
        h.remove(name + "/tls-socket");
        h.remove(name);
        c.refresh();
    }
    CHECK(c.watches() == 0);
    h.entry("example.com", { "tls-socket" });
    c.refresh();
    CHECK(c.exists("example.com/tls-socket"));
    CHECK(c.watches() == 1); // still cached: watched, not looked up every time
}

TEST_CASE("only local filesystems that report every change are trusted")
{
    CHECK(inotify_sees_all_changes(0xef53)); // ext4
    CHECK(inotify_sees_all_changes(0x58465342)); // xfs
    CHECK(inotify_sees_all_changes(0x01021994)); // tmpfs
    CHECK_FALSE(inotify_sees_all_changes(0x6969)); // nfs
    CHECK_FALSE(inotify_sees_all_changes(0xff534d42)); // cifs
    CHECK_FALSE(inotify_sees_all_changes(0xfe534d42)); // smb2
    CHECK_FALSE(inotify_sees_all_changes(0x65735546)); // fuse
    CHECK_FALSE(inotify_sees_all_changes(0x01021997)); // v9fs
    CHECK_FALSE(inotify_sees_all_changes(0x00c36400)); // ceph

    // A directory elsewhere (procfs stands in for a network filesystem): the cache stays off
    // and says why; lookups are plain lstat.
    HostsCache c("/proc/self/");
    std::string err;
    CHECK_FALSE(c.open(&err));
    CHECK(err.find("filesystem") != std::string::npos);
    CHECK_FALSE(c.active());
    CHECK(c.exists("fd"));
    CHECK(c.fills() == 0);
}
