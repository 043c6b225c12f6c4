// ja4.cc: JA4 (FoxIO-LLC/ja4, technical_details/JA4.md). The details implementations often
// get wrong, as the specification words them: GREASE (RFC 8701) is dropped everywhere; ECH
// (0xfe0d) is an ordinary extension; SNI and ALPN are counted but not hashed; the version
// comes from supported_versions when present; a first ALPN value that does not begin and end
// with an ASCII letter or digit is shown by the first and last digits of its hex form.
#include "config.h"

#include "ja4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

namespace sniproxy {

namespace {

    constexpr std::uint16_t ext_server_name = 0x0000;
    constexpr std::uint16_t ext_alpn = 0x0010;
    constexpr std::uint16_t ext_supported_versions = 0x002b;
    constexpr char hex_digits[] = "0123456789abcdef";

    // 0x0a0a, 0x1a1a, ... 0xfafa.
    bool is_grease(std::uint16_t v)
    {
        return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
    }

    std::vector<std::uint16_t> without_grease(const std::vector<std::uint16_t>& in)
    {
        std::vector<std::uint16_t> out;
        out.reserve(in.size());
        for (std::uint16_t v : in)
            if (!is_grease(v))
                out.push_back(v);
        return out;
    }

    bool contains(const std::vector<std::uint16_t>& list, std::uint16_t v)
    {
        return std::find(list.begin(), list.end(), v) != list.end();
    }

    const char* version_code(std::uint16_t v)
    {
        switch (v) {
        case 0x0304:
            return "13";
        case 0x0303:
            return "12";
        case 0x0302:
            return "11";
        case 0x0301:
            return "10";
        case 0x0300:
            return "s3";
        case 0x0002:
            return "s2";
        case 0xfeff:
            return "d1";
        case 0xfefd:
            return "d2";
        case 0xfefc:
            return "d3";
        default:
            return "00";
        }
    }

    std::uint16_t tls_version(const HelloInfo& hello)
    {
        if (!contains(hello.extensions, ext_supported_versions))
            return hello.legacy_version;
        std::uint16_t best = 0; // only GREASE offered: "00", as for any unknown version
        for (std::uint16_t v : hello.supported_versions)
            if (!is_grease(v))
                best = std::max(best, v);
        return best;
    }

    bool alnum(unsigned char c)
    {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    }

    std::string alpn_code(const HelloInfo& hello)
    {
        if (!contains(hello.extensions, ext_alpn) || hello.alpn.empty() || hello.alpn[0].empty())
            return "00";
        const std::string& p = hello.alpn[0];
        const auto first = static_cast<unsigned char>(p.front());
        const auto last = static_cast<unsigned char>(p.back());
        if (alnum(first) && alnum(last))
            return { static_cast<char>(first), static_cast<char>(last) };
        return { hex_digits[first >> 4], hex_digits[last & 0xf] };
    }

    std::string two_digits(std::size_t n)
    {
        n = std::min<std::size_t>(n, 99);
        return { static_cast<char>('0' + n / 10), static_cast<char>('0' + n % 10) };
    }

    std::string hex_list(const std::vector<std::uint16_t>& list)
    {
        std::string out;
        out.reserve(list.size() * 5);
        for (std::uint16_t v : list) {
            if (!out.empty())
                out += ',';
            const char item[4] = { hex_digits[v >> 12], hex_digits[(v >> 8) & 0xf],
                hex_digits[(v >> 4) & 0xf], hex_digits[v & 0xf] };
            out.append(item, 4);
        }
        return out;
    }

    const EVP_MD* sha256()
    {
        static const EVP_MD* const md = [] {
            OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
            return EVP_MD_fetch(nullptr, "SHA256", nullptr);
        }();
        return md;
    }

    // The first 12 hex digits of SHA-256, or twelve zeros for an empty list (the spec's
    // marker for "no values", rather than the hash of nothing).
    std::string hash12(const std::string& text)
    {
        if (text.empty())
            return "000000000000";
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (!sha256() || !EVP_Digest(text.data(), text.size(), digest, &len, sha256(), nullptr))
            return {};
        std::string out;
        for (int i = 0; i < 6; i++) {
            out += hex_digits[digest[i] >> 4];
            out += hex_digits[digest[i] & 0xf];
        }
        return out;
    }

    struct Parts {
        std::string head; // t13d1516h2
        std::string ciphers; // sorted, comma-separated
        std::string extensions_sigs; // sorted extensions without SNI/ALPN [_ sigalgs]
        std::string extensions; // the extension list alone (empty means "no values")
    };

    Parts parts_of(const HelloInfo& hello)
    {
        std::vector<std::uint16_t> ciphers = without_grease(hello.cipher_suites);
        std::vector<std::uint16_t> exts = without_grease(hello.extensions);
        const std::vector<std::uint16_t> sigs = without_grease(hello.signature_algorithms);
        Parts p;
        p.head = "t";
        p.head += version_code(tls_version(hello));
        p.head += contains(exts, ext_server_name) ? 'd' : 'i';
        p.head += two_digits(ciphers.size());
        p.head += two_digits(exts.size());
        p.head += alpn_code(hello);
        std::erase_if(exts, [](std::uint16_t v) { return v == ext_server_name || v == ext_alpn; });
        std::sort(ciphers.begin(), ciphers.end());
        std::sort(exts.begin(), exts.end());
        p.ciphers = hex_list(ciphers);
        p.extensions = hex_list(exts);
        p.extensions_sigs = p.extensions;
        if (!sigs.empty())
            p.extensions_sigs += "_" + hex_list(sigs);
        return p;
    }

} // namespace

bool prepare_ja4(std::string* err)
{
    if (sha256())
        return true;
    *err = "libcrypto offers no SHA-256 (needed for ja4= in the log); check its installation";
    return false;
}

std::string ja4_fingerprint(const HelloInfo& hello)
{
    const Parts p = parts_of(hello);
    const std::string a = hash12(p.ciphers);
    const std::string b = p.extensions.empty() ? hash12({}) : hash12(p.extensions_sigs);
    if (a.empty() || b.empty())
        return {};
    return p.head + "_" + a + "_" + b;
}

std::string ja4_raw(const HelloInfo& hello)
{
    const Parts p = parts_of(hello);
    return p.head + "_" + p.ciphers + "_" + p.extensions_sigs;
}

} // namespace sniproxy
