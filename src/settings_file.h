// settings_file.h: reading the -f file and applying the -o items, at start and on SIGHUP.
#pragma once

#include "options.h"
#include "settings.h"

#include <string>

namespace sniproxy {

// Reads o.settings_file (if any; at most max_settings_file_bytes) and parses it with o.settings
// (the -o items). On error *out is untouched, so a SIGHUP with a broken file keeps the old
// settings; *err says why ("settings file F line 3: ...", "settings file F: No such file...").
bool load_settings(const Options& o, Settings* out, std::string* err);

inline constexpr std::size_t max_settings_file_bytes = 1 << 20;

} // namespace sniproxy
