// hosts_layout.cc: paths inside an entry and the hashed-name shape check.
#include "hosts_layout.h"

#include <algorithm>

namespace sniproxy {

namespace {

    bool is_base64url(char c)
    {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || c == '-' || c == '_';
    }

    // Value of a base64url character (is_base64url must hold).
    unsigned base64url_value(char c)
    {
        if (c >= 'A' && c <= 'Z')
            return static_cast<unsigned>(c - 'A');
        if (c >= 'a' && c <= 'z')
            return static_cast<unsigned>(c - 'a') + 26;
        if (c >= '0' && c <= '9')
            return static_cast<unsigned>(c - '0') + 52;
        return c == '-' ? 62 : 63;
    }

} // namespace

std::string entry_path(std::string_view directory, std::string_view file)
{
    std::string path;
    path.reserve(directory.size() + 1 + file.size());
    path.append(directory).append("/").append(file);
    return path;
}

std::string socket_path(std::string_view directory)
{
    return entry_path(directory, socket_file);
}

bool socket_path_fits(std::string_view directory)
{
    return directory.size() + 1 + socket_file.size() <= max_unix_path;
}

bool looks_hashed(std::string_view name)
{
    return name.size() == hashed_name_length && std::all_of(name.begin(), name.end(), is_base64url);
}

bool is_hashed_shape(std::string_view name)
{
    // 43 characters carry 258 bits for 256: the encoder leaves the last 2 bits zero.
    return looks_hashed(name) && (base64url_value(name.back()) & 3) == 0;
}

} // namespace sniproxy
