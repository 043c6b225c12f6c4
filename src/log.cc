// log.cc: the logging sinks (stderr, syslog, or a forwarding hook set by workers).
#include "log.h"

#include "escape.h"

#include <limits.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace sniproxy {

namespace {
    int g_verbosity = 0;
    LogSink g_sink;
    pid_t g_pid = 0; // ours when logging to stderr began (not a system call per line)
    pid_t g_record_pid = 0; // set while a worker's record is written: the line names the worker
    bool g_syslog = false;
    char g_ident[32]; // "sniproxyd[PID]" for a worker's record sent to syslog

    int g_batch_depth = 0; // LogBatch nesting
    std::string g_pending; // whole lines for stderr, written when the outermost batch ends

    void write_all(std::string_view bytes)
    {
        while (!bytes.empty()) {
            const ssize_t n = write(STDERR_FILENO, bytes.data(), bytes.size());
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return; // nowhere to say it
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    void flush_pending()
    {
        const int saved = errno;
        write_all(g_pending);
        g_pending.clear();
        errno = saved;
    }

    void stderr_sink(LogLevel, std::string_view message)
    {
        if (g_pid == 0) // logging before log_to_stderr() (or after a sink was removed)
            g_pid = getpid();
        char prefix[40];
        const int n = std::snprintf(prefix, sizeof prefix, "sniproxyd[%d]: ",
            static_cast<int>(g_record_pid ? g_record_pid : g_pid));
        std::string text(prefix, static_cast<std::size_t>(std::max(n, 0)));
        text += message;
        text += '\n';
        if (g_batch_depth == 0) {
            const int saved = errno;
            write_all(text);
            errno = saved;
            return;
        }
        if (g_pending.size() + text.size() > PIPE_BUF)
            flush_pending();
        g_pending += text;
    }
} // namespace

LogBatch::LogBatch()
{
    g_batch_depth++;
}

LogBatch::~LogBatch()
{
    if (--g_batch_depth == 0 && !g_pending.empty())
        flush_pending();
}

void log_set_verbosity(int verbosity)
{
    g_verbosity = verbosity;
}

bool log_enabled(LogLevel level)
{
    return level != LogLevel::debug || g_verbosity > 0;
}

void log_set_sink(LogSink sink)
{
    g_sink = std::move(sink);
}

void log_to_stderr()
{
    g_pid = getpid();
    g_sink = stderr_sink;
}

void log_to_syslog()
{
    openlog("sniproxyd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    g_syslog = true;
    g_sink = [](LogLevel level, std::string_view message) {
        syslog(static_cast<int>(level), "%.*s", static_cast<int>(message.size()), message.data());
    };
}

void log_record_of(pid_t pid, LogLevel level, std::string_view message)
{
    if (!log_enabled(level))
        return;
    g_record_pid = pid;
    // syslog(3) prints its own pid with LOG_PID; for a worker's record the ident carries the
    // worker's instead (openlog only swaps a pointer once the socket is open).
    if (g_syslog) {
        std::snprintf(g_ident, sizeof g_ident, "sniproxyd[%d]", static_cast<int>(pid));
        openlog(g_ident, LOG_NDELAY, LOG_DAEMON);
    }
    log_line(level, message);
    if (g_syslog)
        openlog("sniproxyd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    g_record_pid = 0;
}

void log_line(LogLevel level, std::string_view message)
{
    if (!log_enabled(level))
        return;
    if (g_sink)
        g_sink(level, message);
    else
        stderr_sink(level, message);
}

namespace {
    // printf into a bounded line, then ": strerror(err)" unless err is -1.
    void vlog(LogLevel level, int err, const char* format, va_list ap)
    {
        char buf[1024];
        const int n = std::vsnprintf(buf, sizeof buf, format, ap);
        if (n < 0)
            return;
        const std::string_view line(buf, std::min<std::size_t>(n, sizeof buf - 1));
        log_line(level, err < 0 ? std::string(line) : errno_message(line, err));
    }
} // namespace

void logf(LogLevel level, const char* format, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, format);
    vlog(level, -1, format, ap);
    va_end(ap);
}

void logf_errno(LogLevel level, const char* format, ...)
{
    const int err = errno;
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, format);
    vlog(level, err, format, ap);
    va_end(ap);
}

std::string errno_message(std::string_view what, int err)
{
    std::string s(what);
    s += ": ";
    s += std::strerror(err);
    return s;
}

bool set_error(std::string* err, std::string message)
{
    *err = std::move(message);
    return false;
}

std::string sanitize_log_text(std::string_view text, std::size_t max, bool escape_backslash)
{
    return escape(text, escape_backslash ? EscapeSet::text : EscapeSet::escaped_text, max);
}

} // namespace sniproxy
