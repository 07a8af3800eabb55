// The HTTP/1.1 server on Boost.Beast. The contract is in server.hpp; what is a function of the
// bytes alone (targets, Range, error answers, the parse-error mapping) is in parse.cpp. Everything
// here runs on the caller's io_context, which is driven by a single thread, so no state is guarded
// by strands or locks; Respond is the one entry point that may be called from elsewhere, and it
// dispatches onto the io_context before touching anything.
#include "io/http/server.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/rate_limit.hpp"
#include "io/http/beast_glue.hpp"
#include "io/posix_io.hpp"

namespace patchswarm::io::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using glue::kAgent;
using glue::to_bsv;
using glue::to_sv;

// Files are copied through this buffer; big enough to keep syscalls rare, small enough that a
// per-chunk write deadline still catches a reader that has stalled.
constexpr std::size_t kFileChunk = 64 * 1024;
// After an error answer we drain what the client is still sending for at most this long, so that
// closing does not turn into a TCP reset that destroys the answer before the client reads it.
constexpr std::chrono::seconds kLingerTime{2};
// A failing accept (EMFILE) would fail again at once; wait a little instead of spinning.
constexpr std::chrono::milliseconds kAcceptRetry{100};
constexpr std::size_t kIdleReadBytes = 4096;

std::string address_text(const net::ip::address& address) {
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        return net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6()).to_string();
    }
    return address.to_string();
}

// ---- server ----------------------------------------------------------------------------------

class Session;
class Listener;

// State shared by the Server, its listeners and its sessions. Sessions hold it by shared_ptr so
// the handler and limits outlive a Server destroyed while a long-poll still holds a Respond.
struct ServerState {
    ServerState(net::io_context& io_context, Handler h, ServerLimits l)
        : io(io_context), handler(std::move(h)), limits(l) {}
    net::io_context& io;
    Handler handler;
    ServerLimits limits;
    std::vector<std::shared_ptr<Listener>> listeners;
    // Open connections, for stop() and max_connections. A session leaves when it closes, even
    // if a pending Respond keeps the object itself alive for longer.
    std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
    // Open connections per client key (core::rate_limit_client), for max_connections_per_client.
    std::unordered_map<std::string, std::size_t> per_client;
    bool stopped = false;

    // Registers or drops a session; false when the client already has its maximum.
    bool admit(Session* s, const std::weak_ptr<Session>& w, const std::string& client) {
        std::size_t& n = per_client[client];
        if (n >= limits.max_connections_per_client) {
            if (n == 0) per_client.erase(client);
            return false;
        }
        ++n;
        sessions.emplace(s, w);
        return true;
    }
    void leave(Session* s, const std::string& client) {
        if (sessions.erase(s) == 0) return;
        const auto it = per_client.find(client);
        if (it != per_client.end() && --it->second == 0) per_client.erase(it);
    }
};

class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(std::shared_ptr<ServerState> server, tcp::socket socket, std::string remote_address)
        : server_(std::move(server)),
          stream_(std::move(socket)),
          remote_address_(std::move(remote_address)),
          client_(core::rate_limit_client(remote_address_).value_or(remote_address_)),
          handler_timer_(server_->io) {}

    ~Session() { server_->leave(this, client_); }

    // False (and the socket is closed) when the client already has its maximum of connections.
    bool start() {
        if (!server_->admit(this, weak_from_this(), client_)) {
            error_code ignored;
            stream_.socket().close(ignored);
            return false;
        }
        do_read();
        return true;
    }

    // Idempotent. Pending operations complete with operation_aborted and find closed_ set.
    void close() {
        if (closed_) return;
        closed_ = true;
        server_->leave(this, client_);
        handler_timer_.cancel();
        file_.reset();
        stream_.close();
    }

  private:
    const ServerLimits& limits() const { return server_->limits; }

    // ---- reading a request ----

    void do_wait_idle() {
        // Between keep-alive requests the client may think for idle_timeout; the read_timeout
        // for the request itself starts with its first byte.
        stream_.expires_after(limits().idle_timeout);
        stream_.async_read_some(
            buffer_.prepare(kIdleReadBytes),
            beast::bind_front_handler(&Session::on_wait_idle, shared_from_this()));
    }

    void on_wait_idle(error_code ec, std::size_t bytes) {
        if (ec || closed_) return close();
        buffer_.commit(bytes);
        do_read();
    }

    void do_read() {
        if (closed_) return;
        head_request_ = false;
        parser_.emplace();
        glue::apply_limits(*parser_, limits().message_limits());
        // One deadline for the whole request, header and body, so a client cannot trickle
        // bytes to keep a connection forever.
        read_deadline_ = Clock::now() + limits().read_timeout;
        // The header is read on its own: for Expect: 100-continue, and because Beast 1.74 only
        // enforces body_limit against Content-Length that way (see ClientOp::do_read).
        stream_.expires_at(read_deadline_);
        bhttp::async_read_header(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&Session::on_read_header, shared_from_this()));
    }

    void on_read_header(error_code ec, std::size_t) {
        if (closed_) return;
        if (ec) return on_read_error(ec);
        if (parser_->is_done()) return on_request();
        // curl and others wait a second for "100 Continue" before sending a body.
        if (iequals(to_sv(parser_->get()[bhttp::field::expect]), "100-continue")) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            stream_.expires_at(read_deadline_);
            net::async_write(
                stream_, net::buffer(kContinue.data(), kContinue.size()),
                beast::bind_front_handler(&Session::on_write_continue, shared_from_this()));
            return;
        }
        do_read_body();
    }

    void on_write_continue(error_code ec, std::size_t) {
        if (ec || closed_) return close();
        do_read_body();
    }

    void do_read_body() {
        stream_.expires_at(read_deadline_);
        bhttp::async_read(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&Session::on_read_body, shared_from_this()));
    }

    void on_read_body(error_code ec, std::size_t) {
        if (closed_) return;
        if (ec) return on_read_error(ec);
        on_request();
    }

    void on_read_error(error_code ec) {
        if (auto refusal = glue::refusal_for(ec, limits().message_limits())) {
            return do_fail(std::move(*refusal));
        }
        close();
    }

    // ---- handing the request to the handler ----

    void on_request() {
        auto message = parser_->release();
        parser_.reset();
        head_request_ = message.method() == bhttp::verb::head;
        keep_alive_ = message.keep_alive();

        const auto fields = glue::header_fields(message);
        auto parsed = make_request(to_sv(message.method_string()), to_sv(message.target()), fields,
                                   std::move(message.body()));
        if (!parsed) return do_write(std::move(parsed.error()));
        Request req = std::move(*parsed);
        req.remote_address = remote_address_;
        req.client = client_;

        const std::uint64_t generation = ++generation_;
        awaiting_response_ = true;
        handler_timer_.expires_after(limits().handler_timeout);
        handler_timer_.async_wait(beast::bind_front_handler(&Session::on_handler_timeout,
                                                            shared_from_this(), generation));

        // The Respond owns the session: a long-poll keeps it alive however long it holds on.
        Respond respond = [self = shared_from_this(), generation](Response res) {
            net::dispatch(self->server_->io, [self, generation, res = std::move(res)]() mutable {
                self->on_respond(generation, std::move(res));
            });
        };
        try {
            server_->handler(std::move(req), std::move(respond));
        } catch (const std::exception& e) {
            // Nothing may escape io_context::run; a throwing handler is a bug, answered with 500.
            spdlog::error("http: handler for {} threw: {}", std::string(to_sv(message.target())),
                          e.what());
            on_respond(generation, error_response(500, "internal", "request handler failed"));
        } catch (...) {
            spdlog::error("http: handler threw a non-standard exception");
            on_respond(generation, error_response(500, "internal", "request handler failed"));
        }
        if (awaiting_response_ && !closed_) do_watch();
    }

    void on_respond(std::uint64_t generation, Response res) {
        // A second call, a call after the 503, or a call for an earlier request: all no-ops.
        if (generation != generation_ || !awaiting_response_) return;
        awaiting_response_ = false;
        handler_timer_.cancel();
        if (closed_) return;  // client gone or server stopped: nobody to answer
        answer(std::move(res));
    }

    void on_handler_timeout(std::uint64_t generation, error_code ec) {
        if (ec || generation != generation_ || !awaiting_response_) return;
        awaiting_response_ = false;
        if (closed_) return;
        answer(error_response(503, "timeout", "the request was not answered in time"));
    }

    // ---- while the handler holds the request ----

    // A long-poll can be held for minutes: a read stays outstanding meanwhile, so a client that
    // goes away (an endpoint restarting, a seeder's 20,000 endpoints after a network blip)
    // frees its connection slot at once instead of when the wait ends. Bytes that arrive are a
    // pipelined next request, kept in buffer_ (up to one header's worth).
    void do_watch() {
        if (buffer_.size() >= limits().max_header_bytes) return;
        watching_ = true;
        stream_.expires_never();  // the handler timer bounds this wait
        stream_.async_read_some(buffer_.prepare(kIdleReadBytes),
                                beast::bind_front_handler(&Session::on_watch, shared_from_this()));
    }

    void on_watch(error_code ec, std::size_t bytes) {
        watching_ = false;
        if (closed_) return;
        if (!ec) buffer_.commit(bytes);
        if (pending_) {
            // The answer came while reading: the read was cancelled (or had just finished).
            Response res = std::move(*pending_);
            pending_.reset();
            if (ec && ec != net::error::operation_aborted) return close();
            return do_write(std::move(res));
        }
        if (ec) return close();  // gone: the Respond it leaves behind becomes a no-op
        do_watch();
    }

    // Only one read may be outstanding on the stream: a watching read is cancelled first and
    // the answer written when it has completed.
    void answer(Response res) {
        if (!watching_) return do_write(std::move(res));
        pending_ = std::move(res);
        error_code ignored;
        stream_.socket().cancel(ignored);
    }

    // ---- writing the response ----

    template <class Body>
    void set_headers(bhttp::response<Body>& message, const Response& res) {
        message.version(11);
        message.result(static_cast<unsigned>(res.status));
        message.set(bhttp::field::server, to_bsv(kAgent));
        if (!res.content_type.empty() && safe_header_text(res.content_type)) {
            message.set(bhttp::field::content_type, to_bsv(res.content_type));
        }
        for (const auto& [name, value] : res.headers) {
            // Framing belongs to this file: a handler-set length or encoding would desynchronise
            // the connection.
            if (name.empty() || !safe_header_text(name) || !safe_header_text(value) ||
                name.find(':') != std::string::npos || iequals(name, "content-length") ||
                iequals(name, "transfer-encoding") || iequals(name, "connection")) {
                continue;
            }
            message.set(to_bsv(name), to_bsv(value));
        }
        message.keep_alive(keep_alive_);
    }

    void do_write(Response res) {
        if (res.status < 100 || res.status > 599) {
            res = error_response(500, "internal", "handler returned an invalid status");
        }
        if (res.file) return do_write_file(std::move(res));
        auto message = std::make_unique<bhttp::response<bhttp::string_body>>();
        set_headers(*message, res);
        const bool bodyless = res.status < 200 || res.status == 204 || res.status == 304;
        if (bodyless) {
            message->erase(bhttp::field::content_type);
        } else {
            // HEAD gets the length the body would have had, without the body.
            message->content_length(res.body.size());
            if (!head_request_) message->body() = std::move(res.body);
        }
        string_response_ = std::move(message);
        stream_.expires_after(limits().write_timeout);
        bhttp::async_write(stream_, *string_response_,
                           beast::bind_front_handler(&Session::on_write, shared_from_this()));
    }

    void on_write(error_code ec, std::size_t) {
        string_response_.reset();
        if (ec || closed_) return close();
        finish_response();
    }

    void do_write_file(Response res) {
        const FileRange range = *res.file;
        // O_NOFOLLOW and the regular-file check repeat file_response's checks on the descriptor
        // itself, so a swap between the two cannot make us serve something else; O_NONBLOCK keeps
        // a FIFO swapped in from blocking the thread in open().
        const int fd = ::open(range.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) return do_write(error_response(404, "not_found", "file not found"));
        file_.emplace(fd);
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            file_.reset();
            return do_write(error_response(404, "not_found", "file not found"));
        }
        const auto size = static_cast<std::uint64_t>(st.st_size);
        if (range.offset > size || range.length > size - range.offset) {
            file_.reset();
            return do_write(error_response(503, "file_changed", "file changed; retry"));
        }
        auto header = std::make_unique<bhttp::response<bhttp::empty_body>>();
        set_headers(*header, res);
        header->set(bhttp::field::accept_ranges, "bytes");
        header->content_length(range.length);
        file_offset_ = range.offset;
        file_remaining_ = head_request_ ? 0 : range.length;
        file_header_ = std::move(header);
        stream_.expires_after(limits().write_timeout);
        bhttp::async_write(
            stream_, *file_header_,
            beast::bind_front_handler(&Session::on_write_file_header, shared_from_this()));
    }

    void on_write_file_header(error_code ec, std::size_t) {
        file_header_.reset();
        if (ec || closed_) return close();
        do_write_file_chunk();
    }

    void do_write_file_chunk() {
        if (file_remaining_ == 0) {
            file_.reset();
            file_buffer_.clear();
            file_buffer_.shrink_to_fit();
            return finish_response();
        }
        file_buffer_.resize(kFileChunk);
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(file_remaining_, kFileChunk));
        ssize_t got = 0;
        do {
            got =
                ::pread(file_->get(), file_buffer_.data(), want, static_cast<off_t>(file_offset_));
        } while (got < 0 && errno == EINTR);
        if (got <= 0) {
            // The file shrank or failed after the header promised its length; dropping the
            // connection is the only way left to tell the client the body is incomplete.
            spdlog::warn("http: file read failed mid-response; closing connection to {}",
                         remote_address_);
            return close();
        }
        // The write deadline is per chunk: a slow reader that keeps making progress may fetch a
        // large range, one that stalls for write_timeout is dropped.
        stream_.expires_after(limits().write_timeout);
        net::async_write(
            stream_, net::buffer(file_buffer_.data(), static_cast<std::size_t>(got)),
            beast::bind_front_handler(&Session::on_write_file_chunk, shared_from_this()));
    }

    void on_write_file_chunk(error_code ec, std::size_t bytes) {
        if (ec || closed_) return close();
        file_offset_ += bytes;
        file_remaining_ -= bytes;
        do_write_file_chunk();
    }

    void finish_response() {
        if (linger_after_write_) return do_linger();
        if (!keep_alive_ || server_->stopped) {
            error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            return close();
        }
        // A pipelining client may already have sent the next request.
        if (buffer_.size() > 0) return do_read();
        do_wait_idle();
    }

    // ---- errors that end the connection ----

    void do_fail(Response refusal) {
        keep_alive_ = false;
        linger_after_write_ = true;
        parser_.reset();
        do_write(std::move(refusal));
    }

    void do_linger() {
        error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        buffer_.clear();
        file_buffer_.resize(kIdleReadBytes);
        linger_deadline_ =
            Clock::now() + std::min<Clock::duration>(kLingerTime, limits().read_timeout);
        do_linger_read();
    }

    void do_linger_read() {
        stream_.expires_at(linger_deadline_);
        stream_.async_read_some(
            net::buffer(file_buffer_),
            beast::bind_front_handler(&Session::on_linger_read, shared_from_this()));
    }

    void on_linger_read(error_code ec, std::size_t) {
        if (ec || closed_) return close();
        do_linger_read();
    }

    std::shared_ptr<ServerState> server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::string remote_address_;
    std::string client_;  // the key of max_connections_per_client
    net::steady_timer handler_timer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    Clock::time_point read_deadline_{};
    Clock::time_point linger_deadline_{};
    std::uint64_t generation_ = 0;  // numbers requests, so a late Respond cannot answer the next
    bool awaiting_response_ = false;
    bool head_request_ = false;
    bool keep_alive_ = false;
    bool linger_after_write_ = false;
    bool closed_ = false;
    bool watching_ = false;            // do_watch's read is outstanding
    std::optional<Response> pending_;  // the answer waiting for that read to end
    // The response in flight: Beast needs the message alive until the write completes.
    std::unique_ptr<bhttp::response<bhttp::string_body>> string_response_;
    std::unique_ptr<bhttp::response<bhttp::empty_body>> file_header_;
    std::optional<posix::Fd> file_;
    std::uint64_t file_offset_ = 0;
    std::uint64_t file_remaining_ = 0;
    std::vector<char> file_buffer_;
};

class Listener : public std::enable_shared_from_this<Listener> {
  public:
    // Weak: the state owns its listeners, a strong pointer back would be a cycle.
    Listener(std::weak_ptr<ServerState> server, tcp::acceptor acceptor)
        : server_(std::move(server)),
          acceptor_(std::move(acceptor)),
          retry_timer_(acceptor_.get_executor()) {}

    void start() { do_accept(); }

    void close() {
        error_code ignored;
        acceptor_.close(ignored);
        retry_timer_.cancel();
    }

  private:
    void do_accept() {
        acceptor_.async_accept(beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
    }

    void on_accept(error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
        const auto server = server_.lock();
        if (!server || server->stopped) return;
        if (ec) {
            spdlog::warn("http: accept failed: {}", ec.message());
            retry_timer_.expires_after(kAcceptRetry);
            retry_timer_.async_wait([self = shared_from_this()](error_code timer_ec) {
                if (!timer_ec) self->do_accept();
            });
            return;
        }
        error_code endpoint_ec;
        const auto remote = socket.remote_endpoint(endpoint_ec);
        if (endpoint_ec || server->sessions.size() >= server->limits.max_connections) {
            error_code ignored;
            socket.close(ignored);  // refused: over the limit, or the peer is already gone
        } else {
            std::make_shared<Session>(server, std::move(socket), address_text(remote.address()))
                ->start();
        }
        do_accept();
    }

    std::weak_ptr<ServerState> server_;
    tcp::acceptor acceptor_;
    net::steady_timer retry_timer_;
};

// "host:port", "[v6]:port", ":port" (all IPv4 interfaces). Names are resolved, which may block:
// listen() runs at start-up.
Result<tcp::endpoint> parse_listen_address(net::io_context& io, const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    if (colon == std::string::npos) {
        return fail(Errc::invalid_argument, "listen address '" + host_port + "' is not host:port");
    }
    std::string host = host_port.substr(0, colon);
    const std::string port_text = host_port.substr(colon + 1);
    const auto port = parse_decimal(port_text);
    if (!port || *port > 65535) {
        return fail(Errc::invalid_argument, "listen address '" + host_port + "' has a bad port");
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "0.0.0.0";
    error_code ec;
    const auto address = net::ip::make_address(host, ec);
    if (!ec) return tcp::endpoint(address, static_cast<std::uint16_t>(*port));
    tcp::resolver resolver(io);
    const auto results = resolver.resolve(host, port_text, ec);
    if (ec || results.empty()) {
        return fail(Errc::network, "cannot resolve listen address " + host_port + ": " +
                                       (ec ? ec.message() : std::string("no addresses")));
    }
    return results.begin()->endpoint();
}

}  // namespace

struct Server::Impl : ServerState {
    using ServerState::ServerState;
};

Server::Server(boost::asio::io_context& io, Handler handler, ServerLimits limits)
    : impl_(std::make_shared<Impl>(io, std::move(handler), limits)) {}

Server::~Server() {
    stop();
}

Result<std::uint16_t> Server::listen(const std::string& host_port) {
    auto endpoint = parse_listen_address(impl_->io, host_port);
    if (!endpoint) return std::unexpected(endpoint.error());
    // Built in a local first and handed over only once listening, so a failed bind leaves
    // nothing behind.
    tcp::acceptor acceptor(impl_->io);
    const auto failed = [&](std::string_view step, error_code ec) {
        return fail(Errc::network, "cannot listen on " + host_port + ": " + std::string(step) +
                                       ": " + ec.message());
    };
    error_code ec;
    acceptor.open(endpoint->protocol(), ec);
    if (ec) return failed("open", ec);
    // Lets a restarted server bind while old connections sit in TIME_WAIT; Linux still refuses
    // a port that another socket is listening on.
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (ec) return failed("setsockopt", ec);
    acceptor.bind(*endpoint, ec);
    if (ec) return failed("bind", ec);
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return failed("listen", ec);
    const auto local = acceptor.local_endpoint(ec);
    if (ec) return failed("local_endpoint", ec);

    impl_->stopped = false;
    auto listener =
        std::make_shared<Listener>(std::weak_ptr<ServerState>(impl_), std::move(acceptor));
    impl_->listeners.push_back(listener);
    listener->start();
    return local.port();
}

void Server::stop() {
    impl_->stopped = true;
    for (const auto& listener : impl_->listeners) listener->close();
    impl_->listeners.clear();
    // Copy first: close() removes the session from the map being walked.
    std::vector<std::shared_ptr<Session>> open;
    for (const auto& [raw, weak] : impl_->sessions) {
        if (auto session = weak.lock()) open.push_back(std::move(session));
    }
    for (const auto& session : open) session->close();
}

}  // namespace patchswarm::io::http
