// options.cc: getopt-based parsing with range checks and one-line errors.
#include "options.h"

#include "config.h"
#include "log.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

namespace sniproxy {

namespace {
    bool parse_int(const char* text, long min, long max, int& out)
    {
        errno = 0;
        char* end = nullptr;
        const long v = std::strtol(text, &end, 10);
        if (errno || end == text || *end || v < min || v > max)
            return false;
        out = static_cast<int>(v);
        return true;
    }

    std::string range_error(char opt, const char* arg, long min, long max)
    {
        return std::string("-") + opt + ": '" + arg + "' is not a whole number from "
            + std::to_string(min) + " to " + std::to_string(max);
    }

    bool parse_worker_spec(const char* spec, Options::Worker& w)
    {
        unsigned long fd, gen, uid, gid, jail;
        long dir;
        char tail;
        if (std::sscanf(spec, "%lu:%lu:%lu:%lu:%lu:%ld%c", &fd, &gen, &uid, &gid, &jail, &dir,
                &tail)
            != 6)
            return false;
        if (fd > INT_MAX || jail > 1 || dir < -1 || dir > INT_MAX)
            return false;
        w.uid = static_cast<uid_t>(uid);
        w.gid = static_cast<gid_t>(gid);
        w.jail = jail == 1;
        w.channel_fd = static_cast<int>(fd);
        w.generation = static_cast<unsigned>(gen);
        w.hosts_fd = static_cast<int>(dir);
        return true;
    }

    // -M fd:slot (a worker's metrics slot) and -S listen-fd:region-fd (the metrics server).
    bool parse_fd_pair(const char* spec, long max_second, int& first, int& second)
    {
        unsigned long a, b;
        char tail;
        if (std::sscanf(spec, "%lu:%lu%c", &a, &b, &tail) != 2 || a > INT_MAX
            || b > static_cast<unsigned long>(max_second))
            return false;
        first = static_cast<int>(a);
        second = static_cast<int>(b);
        return true;
    }
} // namespace

std::string usage_text()
{
    return "usage: sniproxyd [-adhnVv] [-c max-connections] [-f settings-file] [-g grace]\n"
           "                 [-H hosts-dir] [-l address:port]... [-o name=value]...\n"
           "                 [-p pidfile] [-T hello-timeout] [-u user] [-w workers]\n"
           "defaults: -H " DEFAULT_HOSTS_DIR " -u " DEFAULT_USER
           " -T 10 -g 10 -w <CPUs> -l *:443\n"
           "settings (-o or -f lines): allow deny source-max source-rate source-hellos\n"
           "  source-prefix4 source-prefix6 idle-timeout proxy-from metrics log-format\n";
}

bool parse_options(int argc, char* const argv[], Options* options, std::string* err)
{
    Options& o = *options;
    o = Options {};
    o.hosts_dir = DEFAULT_HOSTS_DIR;
    o.user = DEFAULT_USER;
    optind = 0; // GNU: a full re-initialisation, so tests can parse repeatedly
    opterr = 0;
    int c;
    while ((c = getopt(argc, argv, ":adhnVvc:f:g:H:l:M:o:p:S:T:u:w:W:")) != -1) {
        switch (c) {
        case 'a':
            o.all_hashed = true;
            break;
        case 'd':
            o.foreground = true;
            break;
        case 'h':
            o.help = true;
            break;
        case 'n':
            o.check_only = true;
            break;
        case 'V':
            o.version = true;
            break;
        case 'v':
            o.verbosity++;
            break;
        case 'H':
            o.hosts_dir = optarg;
            break;
        case 'l':
            o.listen.emplace_back(optarg);
            break;
        case 'f':
            o.settings_file = optarg;
            break;
        case 'o':
            o.settings.emplace_back(optarg);
            break;
        case 'p':
            o.pidfile = optarg;
            break;
        case 'u':
            o.user = optarg;
            break;
        case 'c':
            if (!parse_int(optarg, 1, 1000000, o.max_connections))
                return set_error(err, range_error('c', optarg, 1, 1000000));
            break;
        case 'g':
            if (!parse_int(optarg, 0, 86400, o.grace))
                return set_error(err, range_error('g', optarg, 0, 86400));
            break;
        case 'T':
            if (!parse_int(optarg, 1, 3600, o.hello_timeout))
                return set_error(err, range_error('T', optarg, 1, 3600));
            break;
        case 'w':
            if (!parse_int(optarg, 1, 256, o.workers))
                return set_error(err, range_error('w', optarg, 1, 256));
            break;
        case 'W':
            if (!parse_worker_spec(optarg, o.worker)) // keeps -M/-S fields parsed before it
                return set_error(err, "-W is internal to sniproxyd");
            o.is_worker = true;
            break;
        case 'M':
            if (!parse_fd_pair(optarg, 255, o.worker.metrics_fd, o.worker.metrics_slot))
                return set_error(err, "-M is internal to sniproxyd");
            break;
        case 'S':
            if (!parse_fd_pair(optarg, INT_MAX, o.worker.metrics_listen_fd, o.worker.metrics_fd))
                return set_error(err, "-S is internal to sniproxyd");
            o.is_metrics_server = true;
            break;
        case ':':
            return set_error(err, std::string("-") + static_cast<char>(optopt) + " needs a value");
        default:
            return set_error(err, std::string("unknown option -") + static_cast<char>(optopt));
        }
    }
    if (optind < argc)
        return set_error(err, std::string("unexpected argument '") + argv[optind] + "'");
    if (o.is_metrics_server && !o.is_worker)
        return set_error(err, "-S is internal to sniproxyd");
    if (o.hosts_dir.empty())
        return set_error(err, "-H: the hosts directory must not be empty");
    if (o.user.empty())
        return set_error(err, "-u: the user must not be empty");
    return true;
}

namespace {
    std::string worker_spec(const Options::Worker& w)
    {
        return "-W" + std::to_string(w.channel_fd) + ":" + std::to_string(w.generation) + ":"
            + std::to_string(w.uid) + ":" + std::to_string(w.gid) + ":" + (w.jail ? "1" : "0") + ":"
            + std::to_string(w.hosts_fd);
    }
} // namespace

std::vector<std::string> metrics_server_arguments(const Options& o, const Options::Worker& w)
{
    std::vector<std::string> args { "sniproxyd: metrics", worker_spec(w),
        "-S" + std::to_string(w.metrics_listen_fd) + ":" + std::to_string(w.metrics_fd),
        "-H" + o.hosts_dir };
    for (int i = 0; i < o.verbosity; i++)
        args.push_back("-v");
    return args;
}

std::vector<std::string> worker_arguments(
    const Options& o, const Options::Worker& w, const Settings& settings)
{
    std::vector<std::string> args { "sniproxyd: worker" };
    args.push_back(worker_spec(w));
    if (w.metrics_slot >= 0)
        args.push_back("-M" + std::to_string(w.metrics_fd) + ":" + std::to_string(w.metrics_slot));
    args.push_back("-H" + o.hosts_dir);
    args.push_back("-T" + std::to_string(o.hello_timeout));
    for (int i = 0; i < o.verbosity; i++)
        args.push_back("-v");
    if (o.all_hashed)
        args.push_back("-a");
    for (const std::string& item : settings_items(settings))
        args.push_back("-o" + item);
    return args;
}

} // namespace sniproxy
