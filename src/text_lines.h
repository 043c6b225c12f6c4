// text_lines.h: the line format shared by the -f settings file and HOST/allow files: '#'
// starts a comment anywhere on a line, surrounding spaces and tabs are ignored, blank lines
// are skipped.
#pragma once

#include <cstddef>
#include <string_view>

namespace sniproxy {

inline std::string_view trim_spaces(std::string_view s)
{
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos)
        return {};
    return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// Calls fn(line_number, content) for each line that has content once its comment and spaces
// are gone; stops at, and returns, the first false fn returns.
template <typename Fn> bool for_each_content_line(std::string_view text, Fn fn)
{
    std::size_t number = 0;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view {} : text.substr(nl + 1);
        number++;
        line = trim_spaces(line.substr(0, line.find('#')));
        if (!line.empty() && !fn(number, line))
            return false;
    }
    return true;
}

} // namespace sniproxy
