// hosts_check_test.cc: the hosts-directory checker against real trees with real Unix sockets:
// every kind of finding, each on exactly the entry crafted for it, and silence on good trees.
#include "catch.h"
#include "fd.h"
#include "hashed_name.h"
#include "hosts_check.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using namespace sniproxy;
using Severity = Finding::Severity;

namespace {

enum class Listener { live, bound, closed };

// A scratch directory holding "hosts/" and things outside it; removed with everything in it.
class Scratch {
public:
    Scratch()
    {
        char tmpl[] = "/tmp/hcXXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        top_ = tmpl;
        hosts_ = top_ + "/hosts";
        REQUIRE(::mkdir(hosts_.c_str(), 0755) == 0);
        chmod(top_.c_str(), 0755);
    }
    ~Scratch()
    {
        std::error_code ec;
        std::filesystem::remove_all(top_, ec);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    const std::string& top() const { return top_; }
    const std::string& hosts() const { return hosts_; }

    // Paths are relative to hosts/ unless they start with "../" (then relative to top).
    std::string path(const std::string& rel) const { return hosts_ + "/" + rel; }

    void dir(const std::string& rel, mode_t mode = 0755)
    {
        REQUIRE(::mkdir(path(rel).c_str(), 0700) == 0);
        REQUIRE(chmod(path(rel).c_str(), mode) == 0); // not subject to the umask
    }
    void file(const std::string& rel)
    {
        const UniqueFd fd(open(path(rel).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        REQUIRE(fd);
    }
    void link(const std::string& rel, const std::string& target)
    {
        REQUIRE(symlink(target.c_str(), path(rel).c_str()) == 0);
    }
    // Binds under a short name in top/ and renames into place: the final path may be longer
    // than sun_path allows.
    void socket(const std::string& rel, Listener state = Listener::live, mode_t mode = 0666)
    {
        const std::string shortpath = top_ + "/s" + std::to_string(sockets_.size());
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(fd);
        sockaddr_un addr {};
        addr.sun_family = AF_UNIX;
        REQUIRE(shortpath.size() < sizeof addr.sun_path);
        shortpath.copy(addr.sun_path, shortpath.size());
        REQUIRE(bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        if (state == Listener::live)
            REQUIRE(listen(fd.get(), 64) == 0);
        REQUIRE(chmod(shortpath.c_str(), mode) == 0);
        REQUIRE(std::rename(shortpath.c_str(), path(rel).c_str()) == 0);
        if (state == Listener::closed)
            fd.reset();
        sockets_.push_back(std::move(fd));
    }
    // A complete, working host entry.
    void host(const std::string& name)
    {
        dir(name);
        socket(name + "/tls-socket");
    }

private:
    std::string top_, hosts_;
    std::vector<UniqueFd> sockets_;
};

struct Expect {
    Severity severity;
    std::string text; // a substring of the message
};

std::vector<Finding> findings_of(const std::vector<Finding>& all, const std::string& entry)
{
    std::vector<Finding> out;
    std::copy_if(all.begin(), all.end(), std::back_inserter(out),
        [&](const Finding& f) { return f.entry == entry; });
    return out;
}

// `entry` has exactly these findings, in any order.
void expect_exactly(
    const std::vector<Finding>& all, const std::string& entry, const std::vector<Expect>& expected)
{
    const std::vector<Finding> got = findings_of(all, entry);
    std::string seen;
    for (const Finding& f : got)
        seen += "\n  got: " + format_finding(f);
    INFO("entry " << entry << seen);
    REQUIRE(got.size() == expected.size());
    for (const Expect& e : expected) {
        INFO("expected: " << e.text);
        CHECK(std::any_of(got.begin(), got.end(), [&](const Finding& f) {
            return f.severity == e.severity && f.message.find(e.text) != std::string::npos;
        }));
    }
}

std::size_t errors_in(const std::vector<Finding>& all)
{
    return static_cast<std::size_t>(std::count_if(
        all.begin(), all.end(), [](const Finding& f) { return f.severity == Severity::error; }));
}

std::string dump(const std::vector<Finding>& all)
{
    std::string s;
    for (const Finding& f : all)
        s += format_finding(f) + "\n";
    return s;
}

// One of each kind of entry that is right: hostname, wildcard, alias, _default, hashed name.
void build_clean_tree(Scratch& s)
{
    s.host("example.com");
    s.link("www.example.com", "example.com");
    s.host("*.apps.example.com");
    s.host("_default");
    s.host(hashed_name("hidden.example"));
}

const std::string long_name = std::string(63, 'a') + "." + std::string(40, 'b') + ".example";

} // namespace

TEST_CASE("a clean hosts directory has no findings", "[hosts_check]")
{
    Scratch s;
    build_clean_tree(s);
    const std::vector<Finding> all = check_hosts_dir(s.hosts(), {});
    INFO(dump(all));
    CHECK(all.empty());
}

TEST_CASE("every kind of finding, each on the entry crafted for it", "[hosts_check]")
{
    Scratch s;
    build_clean_tree(s);
    // Also right: symlinked sockets inside the tree, absolute (read inside the chroot) or not,
    // and a PROXY header option.
    s.dir("abs-inside.example");
    s.link("abs-inside.example/tls-socket", "/example.com/tls-socket");
    s.dir("rel-inside.example");
    s.link("rel-inside.example/tls-socket", "../example.com/tls-socket");
    s.host("proxy.example");
    s.file("proxy.example/send-proxy-v2");

    // Outside the tree: a live socket, and a complete host directory.
    s.socket("../outside.sock");
    s.dir("../outside-dir");
    s.socket("../outside-dir/tls-socket");

    s.host("Upper.example");
    s.host("bad_char.example");
    s.host("trailing.example.");
    s.host("bücher.example");
    s.dir("nosocket.example");
    s.dir("notsock.example");
    s.file("notsock.example/tls-socket");
    s.dir("dangling.example");
    s.link("dangling.example/tls-socket", "nowhere.sock");
    s.dir("climb.example");
    s.link("climb.example/tls-socket", "../../outside.sock");
    s.dir("absolute.example");
    s.link("absolute.example/tls-socket", s.top() + "/outside.sock");
    s.link("escape.example", "../outside-dir");
    s.link("absdir.example", s.top() + "/outside-dir");
    s.dir("loop.example");
    s.link("loop.example/tls-socket", "tls-socket");
    s.link("file-alias.example", "example.com/tls-socket");
    s.host(long_name);
    s.host("both.example");
    s.file("both.example/send-proxy-v1");
    s.file("both.example/send-proxy-v2");
    s.host("junk.example");
    s.file("junk.example/notes.txt");
    s.file("README");
    s.dir("dead.example");
    s.socket("dead.example/tls-socket", Listener::bound);
    s.dir("closed.example");
    s.socket("closed.example/tls-socket", Listener::closed);

    const std::vector<Finding> all = check_hosts_dir(s.hosts(), {});
    INFO(dump(all));
    const Severity E = Severity::error, W = Severity::warning;
    expect_exactly(all, "Upper.example", { { E, "rename it to upper.example" } });
    expect_exactly(all, "bad_char.example", { { E, "not a valid name (bad-char)" } });
    expect_exactly(all, "trailing.example.", { { E, "rename it to trailing.example" } });
    expect_exactly(all, "bücher.example", { { E, "A-label" } });
    expect_exactly(all, "nosocket.example", { { E, "no tls-socket" } });
    expect_exactly(
        all, "notsock.example", { { E, "tls-socket is not a socket (it is a regular file)" } });
    expect_exactly(all, "dangling.example", { { E, "tls-socket is a dangling symlink" } });
    expect_exactly(all, "climb.example", { { E, "tls-socket leaves the hosts directory" } });
    expect_exactly(all, "absolute.example", { { E, "tls-socket leaves the hosts directory" } });
    expect_exactly(all, "escape.example", { { E, "symlink leaves the hosts directory" } });
    expect_exactly(all, "absdir.example", { { E, "symlink leaves the hosts directory" } });
    expect_exactly(all, "loop.example", { { E, "too many levels of symbolic links" } });
    expect_exactly(all, "file-alias.example", { { E, "not a directory" } });
    expect_exactly(all, long_name,
        { { E,
            "never used: its tls-socket path does not fit in sun_path (123 > 107 bytes): rename it "
            "to "
                + hashed_name(long_name) } });
    expect_exactly(all, "both.example", { { E, "both send-proxy-v1 and send-proxy-v2" } });
    expect_exactly(all, "junk.example", { { W, "unknown file notes.txt" } });
    expect_exactly(all, "README", { { W, "unknown file (a regular file" } });
    expect_exactly(all, "dead.example", { { W, "nobody listens on it" } });
    expect_exactly(all, "closed.example", { { W, "nobody listens on it" } });

    // Nothing else: the good entries are silent.
    CHECK(all.size() == 19);
    CHECK(errors_in(all) == 15);
    CHECK(std::is_sorted(all.begin(), all.end(),
        [](const Finding& a, const Finding& b) { return a.entry < b.entry; }));
}

TEST_CASE("with every name hashed, plain names are never used", "[hosts_check]")
{
    Scratch s;
    build_clean_tree(s);
    CheckOptions options;
    options.all_hashed = true;
    const std::vector<Finding> all = check_hosts_dir(s.hosts(), options);
    INFO(dump(all));
    const Severity E = Severity::error;
    expect_exactly(all, "example.com",
        { { E,
            "never used with every name hashed (-a): rename it to "
                + hashed_name("example.com") } });
    expect_exactly(
        all, "www.example.com", { { E, "rename it to " + hashed_name("www.example.com") } });
    expect_exactly(
        all, "*.apps.example.com", { { E, "rename it to " + hashed_name("*.apps.example.com") } });
    CHECK(all.size() == 3); // _default and the hashed name are right
}

TEST_CASE("a missing hosts directory is an error", "[hosts_check]")
{
    Scratch s;
    s.file("plain");
    for (const std::string& dir : { s.top() + "/nonexistent", s.path("plain") }) {
        const std::vector<Finding> all = check_hosts_dir(dir, {});
        REQUIRE(all.size() == 1);
        CHECK(all[0].severity == Severity::error);
        CHECK(all[0].entry == dir);
    }
    CHECK(check_hosts_dir(s.path("plain"), {})[0].message == "not a directory");
}

TEST_CASE("permissions of the worker user", "[hosts_check]")
{
    Scratch s;
    // Not the owner of anything here, but in its group: the group bits are the ones that count.
    CheckOptions options;
    options.worker_uid = geteuid() + 12345;
    options.worker_gid = getegid();
    REQUIRE(chmod(s.hosts().c_str(), 0750) == 0);
    s.dir("ok.example", 0750);
    s.socket("ok.example/tls-socket", Listener::live, 0660);
    s.dir("private.example", 0700);
    s.socket("private.example/tls-socket", Listener::live, 0666);
    s.dir("rosock.example", 0755);
    // Others may write, the group may not: the kernel uses the group bits only.
    s.socket("rosock.example/tls-socket", Listener::live, 0646);
    s.dir("via.example", 0755);
    s.link("via.example/tls-socket", "../private.example/tls-socket");

    std::vector<Finding> all = check_hosts_dir(s.hosts(), options);
    INFO(dump(all));
    const Severity W = Severity::warning;
    expect_exactly(all, "ok.example", {});
    expect_exactly(all, "private.example", { { W, "cannot search private.example (mode 0700" } });
    expect_exactly(all, "rosock.example",
        { { W, "cannot write rosock.example/tls-socket, which connecting" } });
    expect_exactly(all, "via.example", { { W, "cannot search private.example" } });
    CHECK(all.size() == 3);

    // The hosts directory itself is reported once, under its own path.
    REQUIRE(chmod(s.hosts().c_str(), 0700) == 0);
    all = check_hosts_dir(s.hosts(), options);
    expect_exactly(all, s.hosts(), { { W, "cannot search the hosts directory (mode 0700" } });
    CHECK(all.front().entry == s.hosts()); // sorted first
    CHECK(all.size() == 4);

    // As the owner, only the owner bits count.
    options.worker_uid = geteuid();
    CHECK(check_hosts_dir(s.hosts(), options).empty());
    // No user given: no permission checks at all.
    CHECK(check_hosts_dir(s.hosts(), {}).empty());
}

TEST_CASE("findings format as one safe line", "[hosts_check]")
{
    CHECK(format_finding({ Severity::error, "example.com", "tls-socket is not a socket" })
        == "error: example.com: tls-socket is not a socket");
    CHECK(format_finding({ Severity::warning, "x", "unknown file a\nb, ignored" })
        == "warning: x: unknown file a\\x0ab, ignored");
    CHECK(format_finding({ Severity::error, "b\xc3\xbc", "m" }) == "error: b\\xc3\\xbc: m");
}

TEST_CASE("alpn/ entries, _nosni and send-proxy-v2-ja4", "[hosts_check]")
{
    Scratch s;
    s.host("_nosni");
    s.host("example.com");
    s.dir("example.com/alpn");
    s.dir("example.com/alpn/acme-tls%2f1");
    s.socket("example.com/alpn/acme-tls%2f1/tls-socket");
    s.dir("example.com/alpn/h2");
    s.socket("example.com/alpn/h2/tls-socket");
    s.file("example.com/send-proxy-v2");
    s.file("example.com/send-proxy-v2-ja4");
    s.host("*.apps.example");
    s.dir("*.apps.example/alpn");
    s.dir("*.apps.example/alpn/h2");
    s.socket("*.apps.example/alpn/h2/tls-socket");

    s.host("bad.example");
    s.dir("bad.example/alpn");
    s.dir("bad.example/alpn/acme-tls%2F1"); // uppercase hex: never what encode gives
    s.socket("bad.example/alpn/acme-tls%2F1/tls-socket");
    s.dir("bad.example/alpn/acme-tls/"); // same as acme-tls: fine as a name, but no socket
    s.dir("bad.example/alpn/h2");
    s.file("bad.example/alpn/h2/tls-socket");
    s.dir("bad.example/alpn/http%2f1.1");
    s.socket("bad.example/alpn/http%2f1.1/tls-socket", Listener::bound);
    s.host("file.example");
    s.file("file.example/alpn");
    s.host("ja4only.example");
    s.file("ja4only.example/send-proxy-v2-ja4");
    s.dir("alpnonly.example");
    s.dir("alpnonly.example/alpn");
    s.dir("alpnonly.example/alpn/h2");
    s.socket("alpnonly.example/alpn/h2/tls-socket");

    const std::vector<Finding> all = check_hosts_dir(s.hosts(), {});
    INFO(dump(all));
    const Severity E = Severity::error, W = Severity::warning;
    expect_exactly(all, "_nosni", {});
    expect_exactly(all, "example.com", {});
    expect_exactly(all, "*.apps.example", {});
    expect_exactly(all, "bad.example",
        { { E, "alpn/acme-tls%2F1: " }, { E, "alpn/acme-tls/tls-socket does not exist" },
            { E, "alpn/h2/tls-socket is not a socket" },
            { W, "alpn/http%2f1.1/tls-socket: nobody listens on it" } });
    expect_exactly(all, "file.example", { { E, "alpn is a regular file, not a directory" } });
    expect_exactly(all, "ja4only.example", { { W, "send-proxy-v2-ja4 without send-proxy-v2" } });
    expect_exactly(all, "alpnonly.example", { { E, "no tls-socket" } });
}

TEST_CASE("an allow file is known; a bad one is an error with its line", "[hosts_check]")
{
    Scratch s;
    build_clean_tree(s);
    const auto write = [&](const std::string& rel, const std::string& text) {
        s.file(rel);
        const UniqueFd fd(open((s.hosts() + "/" + rel).c_str(), O_WRONLY | O_CLOEXEC));
        REQUIRE(::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    };
    s.host("good.example");
    write("good.example/allow", "192.0.2.0/24 # office\n2001:db8::/32\n");
    s.host("bad.example");
    write("bad.example/allow", "192.0.2.0/24\nnot-an-address\n");
    s.host("nobody.example");
    write("nobody.example/allow", "# closed\n");
    const std::vector<Finding> all = check_hosts_dir(s.hosts(), {});
    INFO(dump(all));
    expect_exactly(all, "good.example", {});
    expect_exactly(all, "bad.example", { { Severity::error, "bad.example/allow line 2" } });
    expect_exactly(all, "nobody.example", { { Severity::warning, "allow lists nobody" } });
}
