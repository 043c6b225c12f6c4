// settings_file.cc: the only I/O of the settings: reading the -f file.
#include "settings_file.h"

#include "fd.h"
#include "log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace sniproxy {

namespace {
    bool read_file(const std::string& path, std::string* text, std::string* err)
    {
        const std::string what = "settings file " + path;
        UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
        if (!fd) {
            *err = errno_message(what, errno);
            return false;
        }
        char buf[8192];
        for (;;) {
            const ssize_t n = read(fd.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                *err = errno_message(what, errno);
                return false;
            }
            if (n == 0)
                return true;
            text->append(buf, static_cast<std::size_t>(n));
            if (text->size() > max_settings_file_bytes) {
                *err = what + ": larger than " + std::to_string(max_settings_file_bytes)
                    + " bytes; is it the right file?";
                return false;
            }
        }
    }
} // namespace

bool load_settings(const Options& o, Settings* out, std::string* err)
{
    std::string text;
    if (!o.settings_file.empty() && !read_file(o.settings_file, &text, err))
        return false;
    return parse_settings(o.settings_file, text, o.settings, out, err);
}

} // namespace sniproxy
