// sniproxyctl.cc: the operator's tool. `hostname` says which directory the daemon looks up for
// a name (IDN to A-label, hashed name); `check` validates a hosts directory as `sniproxyd -n`.
//
// Output contract (stable, for scripts):
//
//   sniproxyctl hostname [-a] NAME...
//     stdout: one line per valid NAME, in argument order, four fields separated by one TAB:
//       NAME  A-LABEL  HASHED  dir=DIRECTORY
//     NAME is the argument as given; A-LABEL its canonical form (lowercase ASCII, no trailing
//     dot, a leading "*." kept for wildcards); HASHED is hashed_name(A-LABEL), always 43
//     characters; DIRECTORY is the one of the two the daemon looks up (the A-label unless
//     A-LABEL/tls-socket does not fit in sun_path, or -a: every name hashed, as sniproxyd's
//     option of the same meaning). Example (TABs shown as spaces):
//       Bücher.Example.  xn--bcher-kva.example  UMT1HWzZazUGJ0PmRnPoDIKYZKY9rlxxL46BXHG_pks
//       dir=xn--bcher-kva.example
//     (one line in reality).
//     stderr: "sniproxyctl: NAME: reason" for each invalid NAME; exit 1 if any, else 0.
//
//   sniproxyctl check [-a] [-u USER] [DIR]
//     stdout: one line per finding, "error: ENTRY: message" or "warning: ENTRY: message",
//     then "N errors, M warnings" (singular for 1). Exit 1 if any error, else 0.
//     DIR defaults to the configured hosts directory, USER to the configured worker user; if
//     that user does not exist, permissions are not checked and stderr says so.
//
//   sniproxyctl alpn PROTOCOL...
//     stdout: one line per valid PROTOCOL (an ALPN ID, 1 to 255 bytes), in argument order: the
//     directory name of HOST/alpn/NAME/tls-socket ("acme-tls/1" -> "acme-tls%2f1").
//     stderr: "sniproxyctl: PROTOCOL: reason" for each invalid one; exit 1 if any, else 0.
//
//   Exit 2: usage error (unknown command or option, missing argument, unknown -u user).
#include "config.h"

#include "escape.h"
#include "alpn_name.h"
#include "hashed_name.h"
#include "hosts_check.h"
#include "idn.h"
#include "log.h"
#include "status.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr int exit_usage = 2;

void usage(std::FILE* out)
{
    std::fprintf(out,
        "usage: sniproxyctl hostname [-a] NAME...\n"
        "       sniproxyctl alpn PROTOCOL...\n"
        "       sniproxyctl check [-a] [-u user] [hosts-dir]\n"
        "       sniproxyctl status [--json] address:port|unix:path\n"
        "       sniproxyctl -h\n"
        "\n"
        "hostname  print NAME, its A-label, its hashed name and the directory sniproxyd\n"
        "          looks up, TAB-separated (-a: as with every name hashed)\n"
        "alpn      print the directory name of HOST/alpn/NAME/tls-socket for each\n"
        "          ALPN PROTOCOL\n"
        "check     validate a hosts directory (default %s) as the workers see it;\n"
        "          -a: every name hashed; -u: worker user for permission checks\n"
        "          (default %s)\n",
        DEFAULT_HOSTS_DIR, DEFAULT_USER);
}

// Arguments are echoed in messages: keep control characters from reaching the terminal.
// Well-formed UTF-8 passes, as a UTF-8 name is what the operator typed.
std::string printable(std::string_view s)
{
    return sniproxy::escape(s, sniproxy::EscapeSet::terminal);
}

int cmd_hostname(int argc, char* argv[])
{
    bool all_hashed = false;
    int opt;
    while ((opt = getopt(argc, argv, "+ah")) != -1) {
        switch (opt) {
        case 'a':
            all_hashed = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return exit_usage;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return exit_usage;
    }
    int status = 0;
    for (int i = optind; i < argc; ++i) {
        std::string a_label, error;
        if (!sniproxy::to_a_label(argv[i], &a_label, &error)) {
            std::fprintf(
                stderr, "sniproxyctl: %s: %s\n", printable(argv[i]).c_str(), error.c_str());
            status = 1;
            continue;
        }
        // A valid name never holds a TAB or newline (they cannot survive to_a_label), so the
        // first field cannot break the line format.
        std::printf("%s\t%s\t%s\tdir=%s\n", argv[i], a_label.c_str(),
            sniproxy::hashed_name(a_label).c_str(),
            sniproxy::host_directory(a_label, all_hashed).c_str());
    }
    return status;
}

int cmd_alpn(int argc, char* argv[])
{
    if (argc < 2 || std::string_view(argv[1]) == "-h") {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? exit_usage : 0;
    }
    int status = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string_view protocol = argv[i];
        if (protocol.empty() || protocol.size() > 255) {
            std::fprintf(stderr, "sniproxyctl: %s: an ALPN protocol is 1 to 255 bytes long\n",
                printable(protocol).c_str());
            status = 1;
            continue;
        }
        std::printf("%s\n", sniproxy::encode_alpn_name(protocol).c_str());
    }
    return status;
}

int cmd_check(int argc, char* argv[])
{
    sniproxy::CheckOptions options;
    const char* user = nullptr;
    int opt;
    while ((opt = getopt(argc, argv, "+ahu:")) != -1) {
        switch (opt) {
        case 'a':
            options.all_hashed = true;
            break;
        case 'u':
            user = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return exit_usage;
        }
    }
    if (argc - optind > 1) {
        usage(stderr);
        return exit_usage;
    }
    const std::string dir = optind < argc ? argv[optind] : DEFAULT_HOSTS_DIR;

    // Only uid and primary gid are used: the checker reads mode bits, not group lists.
    if (const passwd* pw = getpwnam(user ? user : DEFAULT_USER)) {
        options.worker_uid = pw->pw_uid;
        options.worker_gid = pw->pw_gid;
    } else if (user) {
        std::fprintf(stderr, "sniproxyctl: %s: no such user\n", printable(user).c_str());
        return exit_usage;
    } else {
        std::fprintf(stderr,
            "sniproxyctl: user %s does not exist: permissions not checked (use -u user)\n",
            DEFAULT_USER);
    }

    return sniproxy::print_findings(sniproxy::check_hosts_dir(dir, options)) ? 1 : 0;
}

} // namespace

int main(int argc, char* argv[])
{
    if (argc < 2) {
        usage(stderr);
        return exit_usage;
    }
    const std::string_view cmd = argv[1];
    if (cmd == "-h" || cmd == "--help") {
        usage(stdout);
        return 0;
    }
    // Each command parses its own options, with argv[1] as its argv[0].
    int status;
    if (cmd == "hostname")
        status = cmd_hostname(argc - 1, argv + 1);
    else if (cmd == "alpn")
        status = cmd_alpn(argc - 1, argv + 1);
    else if (cmd == "check")
        status = cmd_check(argc - 1, argv + 1);
    else if (cmd == "status")
        status = sniproxy::cmd_status(argc - 1, argv + 1);
    else {
        std::fprintf(stderr, "sniproxyctl: unknown command %s\n", printable(cmd).c_str());
        usage(stderr);
        return exit_usage;
    }
    // A full disk or closed pipe must not look like success to a script.
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
        std::fprintf(
            stderr, "sniproxyctl: %s\n", sniproxy::errno_message("write error", errno).c_str());
        return exit_usage;
    }
    return status;
}
