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

    // "002f,0035,...": appended to *out, which callers reuse so that nothing is allocated
    // once it has grown to a hello's size.
    void append_hex_list(std::string* out, const std::vector<std::uint16_t>& list)
    {
        const std::size_t at = out->size();
        out->resize(at + (list.empty() ? 0 : list.size() * 5 - 1));
        char* p = out->data() + at;
        for (std::size_t i = 0; i < list.size(); i++) {
            const std::uint16_t v = list[i];
            if (i > 0)
                *p++ = ',';
            *p++ = hex_digits[v >> 12];
            *p++ = hex_digits[(v >> 8) & 0xf];
            *p++ = hex_digits[(v >> 4) & 0xf];
            *p++ = hex_digits[v & 0xf];
        }
    }

    // The digest is fetched once and one context reused: EVP_Digest would make and free a
    // context (and look the algorithm up) per call.
    struct Sha256 {
        const EVP_MD* md = nullptr;
        EVP_MD_CTX* ctx = nullptr;
    };
    const Sha256& sha256()
    {
        static const Sha256 s = [] {
            OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
            Sha256 r;
            r.md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
            r.ctx = r.md ? EVP_MD_CTX_new() : nullptr;
            return r;
        }();
        return s;
    }

    // The first 12 hex digits of SHA-256 into out, or twelve zeros for an empty list (the
    // spec's marker for "no values", rather than the hash of nothing).
    bool hash12(std::string_view text, char* out)
    {
        if (text.empty()) {
            std::fill(out, out + 12, '0');
            return true;
        }
        const Sha256& h = sha256();
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (!h.ctx || !EVP_DigestInit_ex(h.ctx, h.md, nullptr)
            || !EVP_DigestUpdate(h.ctx, text.data(), text.size())
            || !EVP_DigestFinal_ex(h.ctx, digest, &len))
            return false;
        for (int i = 0; i < 6; i++) {
            out[2 * i] = hex_digits[digest[i] >> 4];
            out[2 * i + 1] = hex_digits[digest[i] & 0xf];
        }
        return true;
    }

    struct Parts {
        std::string head; // t13d1516h2
        std::vector<std::uint16_t> ciphers; // sorted
        std::vector<std::uint16_t> extensions; // sorted, without SNI and ALPN
        std::vector<std::uint16_t> sigs; // in their order
    };

    Parts parts_of(const HelloInfo& hello)
    {
        Parts p;
        p.ciphers = without_grease(hello.cipher_suites);
        p.extensions = without_grease(hello.extensions);
        p.sigs = without_grease(hello.signature_algorithms);
        p.head = "t";
        p.head += version_code(tls_version(hello));
        p.head += contains(p.extensions, ext_server_name) ? 'd' : 'i';
        p.head += two_digits(p.ciphers.size());
        p.head += two_digits(p.extensions.size());
        p.head += alpn_code(hello);
        std::erase_if(
            p.extensions, [](std::uint16_t v) { return v == ext_server_name || v == ext_alpn; });
        std::sort(p.ciphers.begin(), p.ciphers.end());
        std::sort(p.extensions.begin(), p.extensions.end());
        return p;
    }

    // The extensions, then "_" and the signature algorithms when there are any.
    void append_extensions_sigs(std::string* out, const Parts& p)
    {
        append_hex_list(out, p.extensions);
        if (!p.sigs.empty()) {
            *out += '_';
            append_hex_list(out, p.sigs);
        }
    }

} // namespace

bool prepare_ja4(std::string* err)
{
    if (sha256().ctx)
        return true;
    *err = "libcrypto offers no SHA-256 (needed for ja4= in the log); check its installation";
    return false;
}

std::string ja4_fingerprint(const HelloInfo& hello)
{
    const Parts p = parts_of(hello);
    thread_local std::string text; // reused: its capacity stays
    char a[12];
    char b[12];
    text.clear();
    append_hex_list(&text, p.ciphers);
    if (!hash12(text, a))
        return {};
    text.clear();
    if (!p.extensions.empty()) // no extensions: zeros, whatever the signature algorithms
        append_extensions_sigs(&text, p);
    if (!hash12(text, b))
        return {};
    std::string out;
    out.reserve(p.head.size() + 26);
    out += p.head;
    out += '_';
    out.append(a, 12);
    out += '_';
    out.append(b, 12);
    return out;
}

std::string ja4_raw(const HelloInfo& hello)
{
    const Parts p = parts_of(hello);
    std::string out = p.head + "_";
    append_hex_list(&out, p.ciphers);
    out += '_';
    append_extensions_sigs(&out, p);
    return out;
}

} // namespace sniproxy
