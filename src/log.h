// log.h: one logging entry point for every process. The parent writes to stderr (-d) or
// syslog; workers, jailed, hand their records to the parent through a sink.
#pragma once

#include <sys/types.h>

#include <cstdarg>
#include <functional>
#include <string>
#include <string_view>

namespace sniproxy {

// Values are syslog priorities, so records can cross the worker channel as one byte.
enum class LogLevel : unsigned char { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

using LogSink = std::function<void(LogLevel, std::string_view)>;

// verbosity 0 logs err..info (one line per connection is info); 1 and more adds debug.
void log_set_verbosity(int verbosity);
bool log_enabled(LogLevel level);
void log_set_sink(LogSink sink);
void log_to_stderr(); // "sniproxyd[pid]: message" lines
void log_to_syslog(); // openlog(LOG_DAEMON) now, while /dev/log is reachable

[[gnu::format(printf, 2, 3)]] void logf(LogLevel level, const char* format, ...);
void log_line(LogLevel level, std::string_view message);
// The parent writing a worker's record: the line carries the worker's pid, not the parent's
// ("sniproxyd[WORKER]: ..."), on stderr and in syslog alike.
void log_record_of(pid_t pid, LogLevel level, std::string_view message);
// While one is alive, lines for stderr collect in a buffer and leave in as few write()s as
// fit (whole lines, at most PIPE_BUF bytes each, so that a pipe never interleaves another
// writer's output into one) when the outermost LogBatch ends: one wake-up's lines cost one
// system call instead of one each, and none waits past the batch it was logged in.
// syslog takes one send per line whatever we do (syslog(3) sends each message alone).
class LogBatch {
public:
    LogBatch();
    ~LogBatch();
    LogBatch(const LogBatch&) = delete;
    LogBatch& operator=(const LogBatch&) = delete;
};

// logf, then ": " and strerror of errno as it was on entry: the one way to log a failed call.
[[gnu::format(printf, 2, 3)]] void logf_errno(LogLevel level, const char* format, ...);
// "what: strerror(err)": the one way to put a failed call into an error string.
std::string errno_message(std::string_view what, int err);
// Sets *err and returns false, for `return set_error(err, "why");` in a function that fails
// the one way (bool, std::string* err last).
bool set_error(std::string* err, std::string message);

// A whole record made safe for one line (escape.h, EscapeSet::text), cut after max bytes.
// The parent passes escape_backslash=false for worker records, which are escaped already
// (EscapeSet::escaped_text): every control byte still goes, the worker's escapes stay.
std::string sanitize_log_text(
    std::string_view text, std::size_t max = 512, bool escape_backslash = true);

} // namespace sniproxy
