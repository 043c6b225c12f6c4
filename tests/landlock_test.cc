// landlock_test.cc: what each Landlock ABI puts in force (the pure plans), and the worker's
// ruleset applied for real in forked children where the running kernel has Landlock:
// no TCP connect, no abstract Unix socket outside the domain, no file outside the directory.
#include "catch.h"
#include "loopback.h"

#include "fd.h"
#include "landlock.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

using namespace sniproxy;

namespace {

// The child's exit code: 0 when `body` returned true.
int in_child(const std::function<bool()>& body)
{
    const pid_t pid = fork();
    if (pid == 0)
        _exit(body() ? 0 : 1);
    int status = -1;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

bool restrict_to(const std::string& dir)
{
    std::string err;
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        && apply_landlock(plan_worker_landlock(landlock_abi(), dir), &err);
}

} // namespace

TEST_CASE("each ABI handles what it knows", "[landlock]")
{
    const LandlockPlan none = plan_worker_landlock(0, ".");
    CHECK(none.abi == 0);
    CHECK(none.rules.empty());
    CHECK(landlock_protections(none).empty());

    CHECK(landlock_protections(plan_worker_landlock(1, ".")) == "fs");
    CHECK(landlock_protections(plan_worker_landlock(3, ".")) == "fs");
    CHECK(landlock_protections(plan_worker_landlock(4, ".")) == "net, fs");
    CHECK(landlock_protections(plan_worker_landlock(6, ".")) == "net, scope, fs");
    CHECK(landlock_protections(plan_worker_landlock(7, ".")) == "net, scope, fs");

    // Every right is handled, so nothing a newer ABI adds is left open by accident.
    CHECK(landlock_fs_rights(1) == 0x1fff);
    CHECK(landlock_fs_rights(2) == 0x3fff);
    CHECK(landlock_fs_rights(3) == 0x7fff);
    CHECK(landlock_fs_rights(5) == 0xffff);
    CHECK(plan_worker_landlock(5, ".").handled_fs == 0xffff);
}

TEST_CASE("a worker may only read under its directory", "[landlock]")
{
    const LandlockPlan plan = plan_worker_landlock(7, "/srv/hosts");
    REQUIRE(plan.rules.size() == 1);
    CHECK(plan.rules[0].path == "/srv/hosts");
    CHECK(plan.rules[0].access == 0xc); // READ_FILE | READ_DIR: no write, no execute
}

TEST_CASE("the parent's ruleset names its binary, libraries, pid file and hosts tree", "[landlock]")
{
    const LandlockPlan plan = plan_parent_landlock(
        7, { "/usr/sbin/sniproxyd", "/etc/sniproxyd/hosts", "/run/sniproxyd.pid", "" });
    auto access_of = [&](const std::string& path) {
        for (const LandlockPathRule& r : plan.rules)
            if (r.path == path)
                return r.access;
        return std::uint64_t { 0 };
    };
    CHECK(access_of("/usr/sbin") == 0x5); // EXECUTE | READ_FILE: a replaced binary stays runnable
    CHECK(access_of("/etc/sniproxyd/hosts") == 0xc);
    CHECK(access_of("/etc/sniproxyd") == 0xc);
    CHECK((access_of("/run/sniproxyd.pid") & 0x2) != 0); // WRITE_FILE
    CHECK(access_of("/etc") == 0); // so not /etc/shadow, not /etc/cron.d
    CHECK(access_of("/") == 0);
    CHECK(plan.handled_net == 0x3);
    CHECK(plan.scoped == 0x1); // abstract sockets only: an upgraded parent signals the old one
}

TEST_CASE("the worker ruleset holds on this kernel", "[landlock]")
{
    const int abi = landlock_abi();
    if (abi == 0) {
        WARN("Landlock is not available on this kernel: skipped");
        return;
    }
    char tmpl[] = "/tmp/landlockXXXXXX";
    REQUIRE(mkdtemp(tmpl));
    const std::string dir = tmpl;
    REQUIRE(close(open((dir + "/flag").c_str(), O_CREAT | O_WRONLY, 0644)) == 0);

    SECTION("files under the directory can be read, nothing else, nothing written")
    {
        CHECK(in_child([&] {
            return restrict_to(dir) && UniqueFd(open((dir + "/flag").c_str(), O_RDONLY))
                && !UniqueFd(open("/etc/passwd", O_RDONLY)) && errno == EACCES
                && !UniqueFd(open((dir + "/flag").c_str(), O_WRONLY))
                && !UniqueFd(open((dir + "/new").c_str(), O_CREAT | O_WRONLY, 0644));
        }) == 0);
    }
    if (abi >= 4) {
        SECTION("no TCP connect, even to a listener on loopback")
        {
            sockaddr_in a;
            const UniqueFd listener = test::loopback_listener(&a);
            CHECK(in_child([&] {
                UniqueFd s(socket(AF_INET, SOCK_STREAM, 0));
                return restrict_to(dir)
                    && connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0
                    && errno == EACCES;
            }) == 0);
        }
    }
    if (abi >= 6) {
        SECTION("no abstract Unix socket made outside the domain")
        {
            UniqueFd listener(socket(AF_UNIX, SOCK_STREAM, 0));
            sockaddr_un a {};
            a.sun_family = AF_UNIX;
            const char name[] = "sniproxyd-landlock-test";
            std::memcpy(a.sun_path + 1, name, sizeof name - 1);
            const socklen_t len
                = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + sizeof name);
            REQUIRE(bind(listener.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
            REQUIRE(listen(listener.get(), 1) == 0);
            CHECK(in_child([&] {
                UniqueFd s(socket(AF_UNIX, SOCK_STREAM, 0));
                return restrict_to(dir)
                    && connect(s.get(), reinterpret_cast<sockaddr*>(&a), len) != 0
                    && errno == EPERM;
            }) == 0);
        }
        SECTION("no signal to a process outside the domain")
        {
            const pid_t me = getpid();
            CHECK(in_child([&] { return restrict_to(dir) && kill(me, 0) != 0 && errno == EPERM; })
                == 0);
        }
    }
    std::system(("rm -rf " + dir).c_str());
}
