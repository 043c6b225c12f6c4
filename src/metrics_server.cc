// metrics_server.cc: one libevent loop serving scrapes. Each scrape is read (HttpRequest
// Parser), answered from a fresh read_all of the shared region, shut down for writing, and
// drained briefly before it is closed, so that the answer to an oversized request is not
// lost to the reset that closing on unread bytes would send.
#include "metrics_server.h"

#include "event_ptr.h"
#include "fd.h"
#include "http_request.h"
#include "log.h"
#include "openmetrics.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <unordered_map>

namespace sniproxy {

namespace {

    constexpr int accept_batch = 64;
    constexpr int linger_ms = 1000; // reading what the scraper still sends after the answer
    constexpr timeval accept_pause { 1, 0 }; // after EMFILE and the like

    timeval ms(int n)
    {
        return { n / 1000, (n % 1000) * 1000 };
    }

    class Server;

    struct Scrape {
        enum class Phase { reading, writing, lingering };
        Server* server = nullptr;
        UniqueFd fd;
        EventPtr read_event;
        EventPtr write_event;
        EventPtr timer;
        HttpRequestParser request;
        std::string answer;
        std::size_t sent = 0;
        Phase phase = Phase::reading;
    };

    std::string http_answer(int status, std::string_view content_type, std::string_view body)
    {
        std::string out = "HTTP/1.1 " + std::to_string(status) + " "
            + std::string(http_reason(status)) + "\r\nContent-Type: " + std::string(content_type)
            + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
        if (status == 405)
            out += "Allow: GET\r\n";
        out += "\r\n";
        out += body;
        return out;
    }

    class Server {
    public:
        Server(const MetricsStore& store, const MetricsServerOptions& options)
            : store_(store)
            , options_(options)
        {
        }
        int run(int listen_fd);

    private:
        static void on_accept(evutil_socket_t, short, void* arg);
        static void on_resume(evutil_socket_t, short, void* arg);
        static void on_parent(evutil_socket_t fd, short, void* arg);
        static void on_read(evutil_socket_t, short, void* arg);
        static void on_write(evutil_socket_t, short, void* arg);
        static void on_timeout(evutil_socket_t, short, void* arg);

        void accept_some();
        void start(UniqueFd fd);
        void read_request(Scrape& s);
        void respond(Scrape& s, int status);
        void write_answer(Scrape& s);
        void close(Scrape& s) { scrapes_.erase(&s); }

        const MetricsStore& store_;
        const MetricsServerOptions& options_;
        int listen_fd_ = -1;
        EventBasePtr base_;
        EventPtr accept_event_;
        EventPtr resume_event_;
        EventPtr parent_event_;
        std::unordered_map<Scrape*, std::unique_ptr<Scrape>> scrapes_;
        bool accept_error_logged_ = false;
    };

    int Server::run(int listen_fd)
    {
        listen_fd_ = listen_fd;
        const int flags = fcntl(listen_fd, F_GETFL);
        if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
            logf_errno(LogLevel::err, "metrics server: the listener (fd %d)", listen_fd);
            return 1;
        }
        base_.reset(event_base_new());
        if (!base_) {
            logf(LogLevel::err, "metrics server: cannot create the event loop");
            return 1;
        }
        accept_event_.reset(
            event_new(base_.get(), listen_fd, EV_READ | EV_PERSIST, on_accept, this));
        resume_event_.reset(evtimer_new(base_.get(), on_resume, this));
        if (options_.parent_fd >= 0)
            parent_event_.reset(
                event_new(base_.get(), options_.parent_fd, EV_READ | EV_PERSIST, on_parent, this));
        if (!accept_event_ || !resume_event_ || (options_.parent_fd >= 0 && !parent_event_)) {
            logf(LogLevel::err, "metrics server: cannot create its events");
            return 1;
        }
        event_add(accept_event_.get(), nullptr);
        if (parent_event_)
            event_add(parent_event_.get(), nullptr);
        if (options_.enter_sandbox && !options_.enter_sandbox())
            return 1;
        event_base_dispatch(base_.get());
        scrapes_.clear();
        return 0;
    }

    void Server::on_accept(evutil_socket_t, short, void* arg)
    {
        static_cast<Server*>(arg)->accept_some();
    }

    void Server::on_resume(evutil_socket_t, short, void* arg)
    {
        auto* self = static_cast<Server*>(arg);
        event_add(self->accept_event_.get(), nullptr);
    }

    void Server::on_parent(evutil_socket_t fd, short, void* arg)
    {
        char buf[256];
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            event_base_loopbreak(static_cast<Server*>(arg)->base_.get());
    }

    void Server::accept_some()
    {
        for (int i = 0; i < accept_batch; ++i) {
            UniqueFd fd(accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (!fd) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                // Out of descriptors or memory: stop asking for a second instead of spinning.
                if (!accept_error_logged_)
                    logf_errno(LogLevel::warning, "metrics server: accept (pausing for a second)");
                accept_error_logged_ = true;
                event_del(accept_event_.get());
                evtimer_add(resume_event_.get(), &accept_pause);
                return;
            }
            accept_error_logged_ = false;
            if (scrapes_.size() >= options_.max_clients)
                continue; // over the cap: closed at once, costing nobody else anything
            start(std::move(fd));
        }
    }

    void Server::start(UniqueFd fd)
    {
        auto s = std::make_unique<Scrape>();
        s->server = this;
        s->fd = std::move(fd);
        Scrape* p = s.get();
        p->read_event.reset(event_new(base_.get(), p->fd.get(), EV_READ | EV_PERSIST, on_read, p));
        p->write_event.reset(event_new(base_.get(), p->fd.get(), EV_WRITE, on_write, p));
        p->timer.reset(evtimer_new(base_.get(), on_timeout, p));
        if (!p->read_event || !p->write_event || !p->timer)
            return;
        const timeval deadline = ms(options_.request_timeout_ms);
        event_add(p->read_event.get(), nullptr);
        evtimer_add(p->timer.get(), &deadline);
        scrapes_.emplace(p, std::move(s));
    }

    void Server::on_read(evutil_socket_t, short, void* arg)
    {
        auto* s = static_cast<Scrape*>(arg);
        s->server->read_request(*s);
    }

    void Server::read_request(Scrape& s)
    {
        char buf[4096];
        const ssize_t n = read(s.fd.get(), buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0)
            return close(s); // the scraper went away, or the lingering read found the end
        if (s.phase == Scrape::Phase::lingering)
            return; // discarded
        s.request.feed(std::span<const char>(buf, static_cast<std::size_t>(n)));
        if (s.request.state() == HttpRequestParser::State::done)
            respond(s, 200);
        else if (s.request.state() == HttpRequestParser::State::failed)
            respond(s, s.request.status());
    }

    void Server::respond(Scrape& s, int status)
    {
        event_del(s.read_event.get());
        if (status == 200) {
            const MetricsFormat format = choose_metrics_format(s.request.accept());
            s.answer = http_answer(
                200, metrics_content_type(format), render_metrics(store_.read_all(), format));
        } else {
            s.answer = http_answer(
                status, "text/plain; charset=utf-8", std::string(http_reason(status)) + "\n");
        }
        s.phase = Scrape::Phase::writing;
        const timeval deadline = ms(options_.answer_timeout_ms);
        evtimer_add(s.timer.get(), &deadline);
        write_answer(s);
    }

    void Server::on_write(evutil_socket_t, short, void* arg)
    {
        auto* s = static_cast<Scrape*>(arg);
        s->server->write_answer(*s);
    }

    void Server::write_answer(Scrape& s)
    {
        while (s.sent < s.answer.size()) {
            const ssize_t n = send(
                s.fd.get(), s.answer.data() + s.sent, s.answer.size() - s.sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                event_add(s.write_event.get(), nullptr);
                return;
            }
            if (n <= 0)
                return close(s);
            s.sent += static_cast<std::size_t>(n);
        }
        shutdown(s.fd.get(), SHUT_WR);
        s.answer.clear();
        s.answer.shrink_to_fit();
        s.phase = Scrape::Phase::lingering;
        const timeval linger = ms(linger_ms);
        evtimer_add(s.timer.get(), &linger);
        event_add(s.read_event.get(), nullptr);
    }

    void Server::on_timeout(evutil_socket_t, short, void* arg)
    {
        auto* s = static_cast<Scrape*>(arg);
        if (s->phase == Scrape::Phase::reading)
            s->server->respond(*s, 408);
        else
            s->server->close(*s);
    }

} // namespace

int run_metrics_server(
    int listen_fd, const MetricsStore& store, const MetricsServerOptions& options)
{
    Server server(store, options);
    return server.run(listen_fd);
}

} // namespace sniproxy
