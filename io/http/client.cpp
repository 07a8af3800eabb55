// The HTTP/1.1 client on Boost.Beast. The contract is in client.hpp; URL parsing is in
// parse.cpp. Each exchange is one ClientOp on the caller's io_context, kept alive by the handlers
// it has in flight.
#include "io/http/client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "io/http/beast_glue.hpp"

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

constexpr std::uint32_t kClientHeaderLimit = 64 * 1024;

class ClientOp : public std::enable_shared_from_this<ClientOp> {
  public:
    ClientOp(net::io_context& io, ClientRequest req, ParsedUrl url,
             std::optional<net::ip::address> local,
             std::function<void(Result<ClientResponse>)> done)
        : req_(std::move(req)),
          url_(std::move(url)),
          local_address_(local),
          done_(std::move(done)),
          resolver_(io),
          resolve_timer_(io),
          stream_(io) {}

    void start() {
        deadline_ = Clock::now() + req_.timeout;
        const auto verb = bhttp::string_to_verb(req_.method);
        if (verb == bhttp::verb::unknown) {
            request_.method_string(to_bsv(req_.method));
        } else {
            request_.method(verb);
        }
        request_.target(to_bsv(url_.target));
        request_.version(11);
        request_.set(bhttp::field::host, to_bsv(url_.host_header));
        request_.set(bhttp::field::user_agent, to_bsv(kAgent));
        request_.keep_alive(false);  // one exchange per connection keeps the deadline simple
        for (const auto& [name, value] : req_.headers) request_.set(to_bsv(name), to_bsv(value));
        if (!req_.body.empty() || verb == bhttp::verb::post || verb == bhttp::verb::put ||
            verb == bhttp::verb::patch) {
            request_.set(bhttp::field::content_type, to_bsv(req_.content_type));
            request_.content_length(req_.body.size());
            request_.body() = std::move(req_.body);
        }
        do_resolve();
    }

  private:
    std::string describe() const { return req_.method + " " + req_.url; }

    Error network_error(std::string_view step, error_code ec) const {
        if (ec == beast::error::timeout) {
            return Error{Errc::network, describe() + ": timed out after " +
                                            std::to_string(req_.timeout.count()) + " ms during " +
                                            std::string(step)};
        }
        return Error{Errc::network,
                     describe() + ": " + std::string(step) + " failed: " + ec.message()};
    }

    void do_resolve() {
        // The resolver has no deadline of its own; a timer cancels it at the overall deadline.
        resolve_timer_.expires_at(deadline_);
        resolve_timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (!ec) {
                self->resolve_timed_out_ = true;
                self->resolver_.cancel();
            }
        });
        resolver_.async_resolve(
            url_.host, url_.port,
            beast::bind_front_handler(&ClientOp::on_resolve, shared_from_this()));
    }

    void on_resolve(error_code ec, tcp::resolver::results_type results) {
        resolve_timer_.cancel();
        if (resolve_timed_out_)
            return finish(std::unexpected(network_error("resolve", beast::error::timeout)));
        if (ec) return finish(std::unexpected(network_error("resolve", ec)));
        for (const auto& entry : results) {
            const auto endpoint = entry.endpoint();
            if (local_address_ && endpoint.address().is_v4() != local_address_->is_v4()) continue;
            endpoints_.push_back(endpoint);
        }
        if (endpoints_.empty()) {
            return finish(
                fail(Errc::network, describe() + ": resolve found no address" +
                                        (local_address_ ? " of the local address's family" : "")));
        }
        do_connect();
    }

    // Endpoints are tried one by one on a fresh socket each, because binding the local address
    // has to happen between open and connect.
    void do_connect() {
        const auto endpoint = endpoints_[next_endpoint_++];
        auto& socket = stream_.socket();
        error_code ec;
        if (socket.is_open()) socket.close(ec);
        socket.open(endpoint.protocol(), ec);
        if (ec) return finish(std::unexpected(network_error("socket open", ec)));
        if (local_address_) {
            socket.bind(tcp::endpoint(*local_address_, 0), ec);
            if (ec) {
                return finish(fail(Errc::network, describe() + ": binding local address " +
                                                      local_address_->to_string() +
                                                      " failed: " + ec.message()));
            }
        }
        stream_.expires_at(deadline_);
        stream_.async_connect(endpoint,
                              beast::bind_front_handler(&ClientOp::on_connect, shared_from_this()));
    }

    void on_connect(error_code ec) {
        if (ec) {
            if (ec != beast::error::timeout && next_endpoint_ < endpoints_.size())
                return do_connect();
            return finish(std::unexpected(network_error("connect", ec)));
        }
        do_write();
    }

    void do_write() {
        stream_.expires_at(deadline_);
        bhttp::async_write(stream_, request_,
                           beast::bind_front_handler(&ClientOp::on_write, shared_from_this()));
    }

    void on_write(error_code ec, std::size_t) {
        if (ec == beast::error::timeout) return finish(std::unexpected(network_error("write", ec)));
        // A server may answer and close before taking the whole body (413); the answer can still
        // be waiting in our receive buffer, so read it and report the write error only if that
        // fails.
        if (ec) write_error_ = ec;
        do_read();
    }

    void do_read() {
        parser_.emplace();
        parser_->header_limit(kClientHeaderLimit);
        parser_->body_limit(static_cast<std::uint64_t>(req_.max_response_bytes));
        if (request_.method() == bhttp::verb::head) parser_->skip(true);
        stream_.expires_at(deadline_);
        // Header first, then body: Beast 1.74 checks Content-Length against body_limit only when
        // the header is parsed on its own; in one eager pass it overwrites the error and reads
        // any length (boostorg/beast#2183).
        bhttp::async_read_header(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&ClientOp::on_read_header, shared_from_this()));
    }

    void on_read_header(error_code ec, std::size_t bytes) {
        if (ec || parser_->is_done()) return on_read(ec, bytes);
        stream_.expires_at(deadline_);
        bhttp::async_read(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&ClientOp::on_read, shared_from_this()));
    }

    void on_read(error_code ec, std::size_t) {
        if (ec == bhttp::error::body_limit) {
            return finish(fail(Errc::too_large, describe() + ": response body exceeds " +
                                                    std::to_string(req_.max_response_bytes) +
                                                    " bytes"));
        }
        if (ec == bhttp::error::header_limit) {
            return finish(fail(Errc::too_large, describe() + ": response header too large"));
        }
        if (ec && write_error_)
            return finish(std::unexpected(network_error("write", write_error_)));
        if (ec) return finish(std::unexpected(network_error("read", ec)));
        auto& message = parser_->get();
        ClientResponse response;
        response.status = static_cast<int>(message.result_int());
        response.headers = header_map(glue::header_fields(message));
        response.body = std::move(message.body());
        finish(std::move(response));
    }

    void finish(Result<ClientResponse> result) {
        if (finished_) return;
        finished_ = true;
        resolve_timer_.cancel();
        error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.close();
        auto done = std::move(done_);
        done(std::move(result));
    }

    ClientRequest req_;
    ParsedUrl url_;
    std::optional<net::ip::address> local_address_;
    std::function<void(Result<ClientResponse>)> done_;
    tcp::resolver resolver_;
    net::steady_timer resolve_timer_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    bhttp::request<bhttp::string_body> request_;
    std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
    std::vector<tcp::endpoint> endpoints_;
    std::size_t next_endpoint_ = 0;
    Clock::time_point deadline_{};
    error_code write_error_;
    bool resolve_timed_out_ = false;
    bool finished_ = false;
};

}  // namespace

void request(boost::asio::io_context& io, ClientRequest req,
             std::function<void(Result<ClientResponse>)> done) {
    const auto reject = [&](Error error) {
        net::post(io, [done = std::move(done), error = std::move(error)]() mutable {
            done(std::unexpected(std::move(error)));
        });
    };
    auto url = parse_url(req.url);
    if (!url) return reject(url.error());
    if (!is_token(req.method)) {
        return reject(Error{Errc::invalid_argument, "invalid HTTP method '" + req.method + "'"});
    }
    std::optional<net::ip::address> local;
    if (!req.local_address.empty()) {
        error_code ec;
        local = net::ip::make_address(req.local_address, ec);
        if (ec)
            return reject(
                Error{Errc::invalid_argument, "invalid local address '" + req.local_address + "'"});
    }
    auto op =
        std::make_shared<ClientOp>(io, std::move(req), std::move(*url), local, std::move(done));
    // Started on the io_context so that request() may be called from any thread.
    net::post(io, [op] { op->start(); });
}

Result<ClientResponse> request_sync(ClientRequest req) {
    net::io_context io;
    std::optional<Result<ClientResponse>> result;
    request(io, std::move(req), [&result](Result<ClientResponse> r) { result = std::move(r); });
    io.run();
    if (!result) return fail(Errc::internal, "HTTP request finished without a result");
    return std::move(*result);
}

}  // namespace patchswarm::io::http
