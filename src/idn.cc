// idn.cc: UTS #46 to A-label with libidn2, then the daemon's own hostname validation.
#include "idn.h"

#include "hostname.h"

#include <idn2.h>

#include <memory>

namespace sniproxy {

namespace {

    struct Idn2Free {
        void operator()(char* p) const { idn2_free(p); }
    };

} // namespace

bool to_a_label(std::string_view user_input, std::string* out, std::string* err)
{
    out->clear();
    // idn2 takes a C string: an embedded NUL would silently cut the name short.
    if (user_input.find('\0') != std::string_view::npos) {
        *err = "contains a NUL byte";
        return false;
    }
    const std::string input(user_input);
    char* raw = nullptr;
    // IDN2_USE_STD3_ASCII_RULES is deliberately NOT passed: libidn2 2.3 then silently DELETES
    // the characters STD3 forbids instead of failing ("a_b.example" -> "ab.example",
    // "＿acme.example" -> "acme.example"), which would print some other host's directory.
    // Without it those characters survive the mapping and canonicalize_hostname below rejects
    // them, which is exactly the STD3 rule (only LDH ASCII after mapping; UTS #46 rev. 33).
    const int rc = idn2_to_ascii_8z(input.c_str(), &raw, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    const std::unique_ptr<char, Idn2Free> owned(raw);
    if (rc != IDN2_OK) {
        *err = idn2_strerror(rc);
        return false;
    }
    std::string_view ascii(raw);
    // The mapping turns a full-width "＊．" into "*." as well, so test after it.
    std::string_view prefix;
    if (ascii.starts_with(wildcard_prefix)) {
        prefix = wildcard_prefix;
        ascii.remove_prefix(wildcard_prefix.size());
    }
    std::string canonical;
    // This drops the one trailing dot a user may type, and rejects IP literals, empty labels,
    // over-long names and anything outside [a-z0-9-], as the daemon would for an SNI.
    if (const NameError e = canonicalize_hostname(ascii, &canonical); e != NameError::ok) {
        *err = name_error_string(e);
        return false;
    }
    out->reserve(prefix.size() + canonical.size());
    out->append(prefix);
    out->append(canonical);
    return true;
}

} // namespace sniproxy
