// log_test.cc: escaping of untrusted text and level filtering.
#include "catch.h"
#include "log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

using namespace sniproxy;

TEST_CASE("untrusted text cannot forge lines")
{
    CHECK(sanitize_log_text("example.com") == "example.com");
    CHECK(sanitize_log_text("a\nb") == "a\\x0ab");
    CHECK(sanitize_log_text(std::string("a\0b", 3)) == "a\\x00b");
    CHECK(sanitize_log_text("back\\slash") == "back\\x5cslash");
    CHECK(sanitize_log_text("\xff") == "\\xff");
    CHECK(sanitize_log_text(std::string(100, 'x'), 10) == std::string(10, 'x') + "...");
    // Worker records are escaped already: the parent must not escape the escapes.
    CHECK(sanitize_log_text("sni=a\\x00b\n", 512, false) == "sni=a\\x00b\\x0a");
}

TEST_CASE("debug records only with -v; the sink sees the rest")
{
    std::vector<std::pair<LogLevel, std::string>> seen;
    log_set_sink([&](LogLevel l, std::string_view t) { seen.emplace_back(l, std::string(t)); });
    log_set_verbosity(0);
    logf(LogLevel::debug, "hidden %d", 1);
    logf(LogLevel::info, "shown %d", 2);
    log_set_verbosity(1);
    logf(LogLevel::debug, "now shown");
    log_set_sink(nullptr);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == std::pair { LogLevel::info, std::string("shown 2") });
    CHECK(seen[1].second == "now shown");
}

TEST_CASE("logf_errno appends the errno it was called with; set_error fails")
{
    std::vector<std::string> seen;
    log_set_sink([&](LogLevel, std::string_view t) { seen.emplace_back(t); });
    errno = ENOENT;
    logf_errno(LogLevel::err, "open %s", "/x");
    log_set_sink(nullptr);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == std::string("open /x: ") + std::strerror(ENOENT));
    CHECK(errno_message("bind", EACCES) == std::string("bind: ") + std::strerror(EACCES));
    std::string err;
    CHECK_FALSE(set_error(&err, "-l: bad"));
    CHECK(err == "-l: bad");
}

namespace {
// Points stderr at a pipe for the life of the object; read() returns what reached it.
struct CapturedStderr {
    int pipe_fds[2] = { -1, -1 };
    int saved = -1;
    CapturedStderr()
    {
        REQUIRE(pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) == 0);
        saved = dup(STDERR_FILENO);
        dup2(pipe_fds[1], STDERR_FILENO);
    }
    ~CapturedStderr()
    {
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
    }
    std::string read_all()
    {
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0)
            out.append(buf, static_cast<std::size_t>(n));
        return out;
    }
};
} // namespace

TEST_CASE("a batch's lines reach stderr when it ends, whole and in order; none waits longer")
{
    CapturedStderr cap;
    log_to_stderr();
    const std::string pid = std::to_string(getpid());
    logf(LogLevel::info, "alone");
    CHECK(cap.read_all() == "sniproxyd[" + pid + "]: alone\n"); // no batch: at once
    std::string expected;
    {
        LogBatch outer;
        {
            LogBatch inner;
            log_record_of(4242, LogLevel::info, "from a worker");
            expected += "sniproxyd[4242]: from a worker\n";
        }
        logf(LogLevel::notice, "line %d", 1);
        expected += "sniproxyd[" + pid + "]: line 1\n";
        CHECK(cap.read_all().empty()); // held until the outermost batch ends
    }
    CHECK(cap.read_all() == expected);

    // More than a pipe takes in one atomic write (PIPE_BUF): all of it arrives, in order.
    expected.clear();
    {
        LogBatch batch;
        for (int i = 0; i < 200; i++) {
            const std::string text = "record " + std::to_string(i) + std::string(40, 'x');
            log_line(LogLevel::info, text);
            expected += "sniproxyd[" + pid + "]: " + text + "\n";
        }
    }
    CHECK(cap.read_all() == expected);
    log_set_sink(nullptr);
}
