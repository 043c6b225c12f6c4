// Load generator for bench/run: connects through a proxy (TCP) or straight to a
// Unix socket (the no-proxy baseline), sends a real ClientHello and measures.
// Prints one "key=value ..." line for the runner. See bench/README.
#include "loadgen.h"
#include "clienthello.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

std::vector<std::vector<uint8_t>> g_hellos;

uint64_t now_ns()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void print_percentiles(std::vector<uint32_t>& us)
{
    if (us.empty())
        return;
    std::sort(us.begin(), us.end());
    auto at = [&](double q) {
        return us[std::min(us.size() - 1, static_cast<std::size_t>(q * static_cast<double>(us.size())))];
    };
    std::printf(" p50_us=%u p99_us=%u p999_us=%u max_us=%u", at(0.5), at(0.99), at(0.999), us.back());
}

int start_connect(const Options& o, uint64_t idx)
{
    if (!o.unix_paths.empty()) {
        sockaddr_un sa {};
        sa.sun_family = AF_UNIX;
        const std::string& p = o.unix_paths[idx % o.unix_paths.size()];
        std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p.c_str());
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 && errno != EINPROGRESS) {
            const int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        return fd;
    }
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o.source_addrs > 1) {
        // Each 127.0.0.x source has its own ephemeral port range, so 100k connections
        // (or many TIME_WAITs) to one proxy port fit. The port is chosen at connect().
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in src {};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + static_cast<uint32_t>(idx % o.source_addrs));
        if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) < 0) {
            const int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    sockaddr_in sa {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(o.port));
    inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 && errno != EINPROGRESS) {
        const int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

namespace {

bool write_all(int fd, const uint8_t* p, std::size_t n)
{
    while (n > 0) {
        const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            pollfd pf {fd, POLLOUT, 0};
            poll(&pf, 1, 5000);
            continue;
        }
        if (w <= 0)
            return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bool read_exact(int fd, uint8_t* p, std::size_t n)
{
    while (n > 0) {
        const ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EAGAIN) {
            pollfd pf {fd, POLLIN, 0};
            if (poll(&pf, 1, 5000) <= 0)
                return false;
            continue;
        }
        if (r <= 0)
            return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

} // namespace

// Ping-pong on one connection: the hello first (its echo proves the path), then
// `count` round trips of `payload` bytes, each timed on its own.
int run_latency(const Options& o)
{
    const int fd = start_connect(o, 0);
    pollfd pf {fd, POLLOUT, 0};
    if (fd < 0 || poll(&pf, 1, 5000) != 1) {
        std::printf("mode=latency errors=1 error=connect\n");
        return 1;
    }
    const auto& hello = g_hellos[0];
    std::vector<uint8_t> back(std::max(hello.size(), o.payload));
    if (!write_all(fd, hello.data(), hello.size()) || !read_exact(fd, back.data(), hello.size())
        || !std::equal(hello.begin(), hello.end(), back.begin())) {
        std::printf("mode=latency errors=1 error=hello\n");
        return 1;
    }
    std::vector<uint8_t> ping(o.payload);
    std::vector<uint32_t> us;
    us.reserve(static_cast<std::size_t>(o.count));
    const long warmup = std::min<long>(1000, o.count / 10);
    for (long i = 0; i < o.count + warmup; ++i) {
        for (std::size_t k = 0; k < ping.size(); ++k)
            ping[k] = static_cast<uint8_t>(i + static_cast<long>(k));
        const uint64_t t0 = now_ns();
        if (!write_all(fd, ping.data(), ping.size()) || !read_exact(fd, back.data(), ping.size())
            || !std::equal(ping.begin(), ping.end(), back.begin())) {
            std::printf("mode=latency errors=1 error=pingpong done=%ld\n", i);
            return 1;
        }
        if (i >= warmup)
            us.push_back(static_cast<uint32_t>((now_ns() - t0) / 1000));
    }
    close(fd);
    std::printf("mode=latency pings=%zu errors=0", us.size());
    print_percentiles(us);
    std::printf("\n");
    return 0;
}

namespace {

void usage()
{
    std::fprintf(stderr,
        "usage: loadgen MODE (-t HOST:PORT | -u PATH[,PATH...]) [-s SNI[,SNI...]]\n"
        "         [-c concurrency] [-d seconds] [-r conns/s] [-n count] [-p payload]\n"
        "         [-a source-addresses] [-b bulk-chunk]\n"
        "MODE: rate | open | bulk | latency | idle (see bench/README)\n");
    std::exit(2);
}

std::vector<std::string> split(const std::string& s)
{
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i)
        if (i == s.size() || s[i] == ',') {
            if (i > start)
                out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2)
        usage();
    Options o;
    o.mode = argv[1];
    int c;
    optind = 2;
    while ((c = getopt(argc, argv, "t:u:s:c:d:r:n:p:a:b:")) != -1) {
        switch (c) {
        case 't': {
            const std::string t = optarg;
            const auto colon = t.rfind(':');
            if (colon == std::string::npos)
                usage();
            o.host = t.substr(0, colon);
            o.port = std::atoi(t.c_str() + colon + 1);
            break;
        }
        case 'u': o.unix_paths = split(optarg); break;
        case 's': o.snis = split(optarg); break;
        case 'c': o.concurrency = std::max(1, std::atoi(optarg)); break;
        case 'd': o.duration = std::atof(optarg); break;
        case 'r': o.rate = std::atof(optarg); break;
        case 'n': o.count = std::atol(optarg); break;
        case 'p': o.payload = static_cast<std::size_t>(std::atol(optarg)); break;
        case 'a': o.source_addrs = std::max(1, std::atoi(optarg)); break;
        case 'b': o.bulk_chunk = static_cast<std::size_t>(std::max(1L, std::atol(optarg))); break;
        default: usage();
        }
    }
    if ((o.port == 0) == o.unix_paths.empty() || o.snis.empty())
        usage();
    std::signal(SIGPIPE, SIG_IGN);
    rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    std::srand(static_cast<unsigned>(now_ns()));
    for (const auto& s : o.snis)
        g_hellos.push_back(build_client_hello(s));
    if (o.mode == "latency")
        return run_latency(o);
    if (o.mode == "rate" || o.mode == "open" || o.mode == "bulk" || o.mode == "idle")
        return run_flows(o);
    usage();
}
