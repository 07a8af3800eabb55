// The control socket's transport. Runs on the program's single io_context thread, so no state is
// guarded by strands or locks. Each connection is one Session that carries exactly one request
// line and one response, with a deadline on the read and another on the write.
#include "io/local_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>

#include "io/posix_io.hpp"

namespace patchswarm::io {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using local = asio::local::stream_protocol;
namespace fs = std::filesystem;

// sun_path holds 108 bytes on Linux, its terminating NUL included.
constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;

Result<void> check_socket_path(const fs::path& path) {
    if (path.empty() || path.native().size() > kMaxSocketPath) {
        return fail(Errc::invalid_argument, "socket path " + path.string() + " is longer than " +
                                                std::to_string(kMaxSocketPath) + " bytes");
    }
    return {};
}

enum class Probe { absent, stale, alive, not_a_socket };

// What is at `path`: nothing, a socket file nobody answers on, a live socket, or something else.
// lstat, so a symlink counts as "something else" and is never followed or replaced.
Result<Probe> probe(const fs::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return Probe::absent;
        return std::unexpected(posix::errno_error("cannot stat", path, errno));
    }
    if (!S_ISSOCK(st.st_mode)) return Probe::not_a_socket;
    const posix::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return std::unexpected(posix::errno_error("cannot probe", path, errno));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.native().size());
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
        return Probe::alive;
    }
    // EAGAIN: a full backlog, someone is listening but busy. EACCES and the like: we cannot tell,
    // so the file is not ours to replace.
    if (errno == ECONNREFUSED) return Probe::stale;
    if (errno == ENOENT) return Probe::absent;  // removed meanwhile
    return Probe::alive;
}

struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
};

std::optional<FileId> file_id(const fs::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return std::nullopt;
    return FileId{st.st_dev, st.st_ino};
}

// Root, or the user this process runs as. SO_PEERCRED records who called connect(), so a
// descriptor passed on to another process still counts as its opener.
bool peer_allowed(local::socket& socket) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        return false;
    }
    return cred.uid == 0 || cred.uid == ::geteuid();
}

class Session;

// The server's state, shared by the acceptor's handler and the sessions.
struct ServerState : std::enable_shared_from_this<ServerState> {
    ServerState(asio::io_context& io_, LocalHandler handler_, LocalSocketLimits limits_)
        : io(io_), handler(std::move(handler_)), limits(limits_), acceptor(io_), retry(io_) {}

    void do_accept();
    void on_accept(error_code ec, local::socket socket);
    void close_sessions();

    asio::io_context& io;
    LocalHandler handler;
    LocalSocketLimits limits;
    local::acceptor acceptor;
    asio::steady_timer retry;  // after an accept error
    fs::path path;
    std::optional<FileId> created;  // the socket file listen() made, for stop()
    bool stopped = false;
    std::map<const Session*, std::weak_ptr<Session>> sessions;
};

class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(std::shared_ptr<ServerState> server, local::socket socket)
        : server_(std::move(server)), socket_(std::move(socket)), timer_(server_->io) {}

    void start() {
        if (!peer_allowed(socket_)) {
            return answer(fail(Errc::permission,
                               "only root and the daemon's user may use the control socket"));
        }
        do_read();
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        error_code ignored;
        timer_.cancel();
        socket_.shutdown(local::socket::shutdown_both, ignored);
        socket_.close(ignored);
        server_->sessions.erase(this);
    }

  private:
    // Arms the deadline of the current step; a late expiry of an earlier step is ignored.
    template <typename OnExpiry>
    void arm(std::chrono::milliseconds after, OnExpiry on_expiry) {
        const auto step = ++step_;
        timer_.expires_after(after);
        timer_.async_wait([self = shared_from_this(), step, on_expiry](error_code ec) {
            if (!ec && step == self->step_ && !self->closed_) on_expiry(*self);
        });
    }

    void do_read() {
        arm(server_->limits.read_timeout, [](Session& s) {
            s.timed_out_ = true;
            error_code ignored;
            s.socket_.cancel(ignored);
        });
        asio::async_read_until(
            socket_, asio::dynamic_buffer(buffer_, server_->limits.max_request_bytes), '\n',
            [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
    }

    void on_read(error_code ec, std::size_t n) {
        if (closed_) return;
        if (!ec) return answer(buffer_.substr(0, n - 1));
        if (timed_out_) {
            return answer(fail(Errc::network,
                               "no complete request within " +
                                   std::to_string(server_->limits.read_timeout.count()) + " ms"));
        }
        if (ec == asio::error::not_found) {
            return answer(fail(Errc::too_large,
                               "request longer than " +
                                   std::to_string(server_->limits.max_request_bytes) + " bytes"));
        }
        if (ec == asio::error::eof) {
            return answer(fail(Errc::malformed, "connection closed before the request's newline"));
        }
        close();  // reset, or stopped: nobody to answer
    }

    void answer(Result<std::string> request) {
        if (server_->stopped) return close();
        try {
            response_ = server_->handler(std::move(request));
        } catch (const std::exception&) {
            return close();  // a handler bug must not escape io_context::run
        }
        if (response_.empty() || response_.back() != '\n') response_.push_back('\n');
        arm(server_->limits.write_timeout, [](Session& s) { s.close(); });
        asio::async_write(socket_, asio::buffer(response_),
                          [self = shared_from_this()](error_code, std::size_t) { self->close(); });
    }

    std::shared_ptr<ServerState> server_;
    local::socket socket_;
    asio::steady_timer timer_;
    std::string buffer_;
    std::string response_;
    std::uint64_t step_ = 0;
    bool timed_out_ = false;
    bool closed_ = false;
};

void ServerState::do_accept() {
    acceptor.async_accept([self = shared_from_this()](error_code ec, local::socket socket) {
        self->on_accept(ec, std::move(socket));
    });
}

void ServerState::on_accept(error_code ec, local::socket socket) {
    if (stopped || ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
        if (sessions.size() >= limits.max_connections) {
            error_code ignored;
            socket.close(ignored);
        } else {
            auto session = std::make_shared<Session>(shared_from_this(), std::move(socket));
            sessions.emplace(session.get(), session);
            session->start();
        }
    }
    if (!ec) return do_accept();
    // An accept error (EMFILE, ...) is transient, but the connection that caused it is still
    // queued: accepting again at once would fail at once and spin the io_context thread.
    retry.expires_after(std::chrono::milliseconds(100));
    retry.async_wait([self = shared_from_this()](error_code wait_ec) {
        if (wait_ec || self->stopped || !self->acceptor.is_open()) return;
        self->do_accept();
    });
}

void ServerState::close_sessions() {
    auto open = std::move(sessions);
    sessions.clear();
    for (auto& [_, weak] : open) {
        if (auto s = weak.lock()) s->close();
    }
}

}  // namespace

struct LocalSocketServer::Impl : ServerState {
    using ServerState::ServerState;
};

LocalSocketServer::LocalSocketServer(asio::io_context& io, LocalHandler handler,
                                     LocalSocketLimits limits)
    : impl_(std::make_shared<Impl>(io, std::move(handler), limits)) {}

LocalSocketServer::~LocalSocketServer() {
    stop();
}

Result<void> LocalSocketServer::listen(const fs::path& path) {
    if (impl_->acceptor.is_open()) return fail(Errc::invalid_argument, "already listening");
    if (auto ok = check_socket_path(path); !ok) return ok;
    // Bound under a temporary name first, so the file never sits at `path` with the umask's
    // permissions, and so replacing a stale socket is one atomic rename.
    const fs::path temp = path.string() + "." + std::to_string(::getpid());
    if (auto ok = check_socket_path(temp); !ok) return ok;

    auto at_path = probe(path);
    if (!at_path) return std::unexpected(at_path.error());
    if (*at_path == Probe::alive) {
        return fail(Errc::already_exists,
                    "another process is listening on " + path.string() + "; not replacing it");
    }
    if (*at_path == Probe::not_a_socket) {
        return fail(Errc::already_exists, path.string() + " exists and is not a socket");
    }
    auto at_temp = probe(temp);
    if (!at_temp) return std::unexpected(at_temp.error());
    if (*at_temp == Probe::stale) {
        ::unlink(temp.c_str());  // left by an earlier process with our pid
    } else if (*at_temp != Probe::absent) {
        return fail(Errc::already_exists, temp.string() + " is in the way");
    }

    error_code ec;
    local::acceptor acceptor(impl_->io);
    const auto cleanup = [&](std::string_view what) {
        const std::string why = ec ? ec.message() : std::string(std::strerror(errno));
        error_code ignored;
        acceptor.close(ignored);
        ::unlink(temp.c_str());
        return fail(Errc::io, std::string(what) + " " + path.string() + ": " + why);
    };
    acceptor.open(local(), ec);
    if (ec) return fail(Errc::io, "cannot create socket " + path.string() + ": " + ec.message());
    acceptor.bind(local::endpoint(temp.string()), ec);
    if (ec) return cleanup("cannot bind");
    if (::chmod(temp.c_str(), S_IRUSR | S_IWUSR) != 0) return cleanup("cannot restrict");
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return cleanup("cannot listen on");
    if (::rename(temp.c_str(), path.c_str()) != 0) return cleanup("cannot move into place");

    impl_->acceptor = std::move(acceptor);
    impl_->path = path;
    impl_->created = file_id(path);
    impl_->stopped = false;
    impl_->do_accept();
    return {};
}

void LocalSocketServer::stop() {
    if (impl_->stopped) return;
    impl_->stopped = true;
    error_code ignored;
    impl_->retry.cancel();
    impl_->acceptor.close(ignored);
    impl_->close_sessions();
    if (impl_->created) {
        const auto now = file_id(impl_->path);
        if (now && now->dev == impl_->created->dev && now->ino == impl_->created->ino) {
            ::unlink(impl_->path.c_str());
        }
        impl_->created.reset();
    }
}

Result<std::string> local_request(const fs::path& path, std::string_view request,
                                  LocalRequestOptions options) {
    // No server can listen on a path that does not fit a socket address.
    if (auto ok = check_socket_path(path); !ok) {
        return fail(Errc::not_found,
                    "nobody can listen on " + path.string() + ": " + ok.error().message);
    }
    if (request.find('\n') != std::string_view::npos) {
        return fail(Errc::invalid_argument, "a request is one line");
    }
    asio::io_context io;
    local::socket socket(io);
    asio::steady_timer timer(io);
    const std::string out = std::string(request) + "\n";
    std::string in;
    std::optional<Result<std::string>> result;

    const auto finish = [&](Result<std::string> r) {
        if (result) return;
        result = std::move(r);
        error_code ignored;
        timer.cancel();
        socket.close(ignored);
    };
    timer.expires_after(options.timeout);
    timer.async_wait([&](error_code ec) {
        if (ec) return;
        finish(fail(Errc::network, "no answer on " + path.string() + " within " +
                                       std::to_string(options.timeout.count()) + " ms"));
    });
    socket.async_connect(local::endpoint(path.string()), [&](error_code ec) {
        if (result) return;
        if (ec == boost::system::errc::no_such_file_or_directory ||
            ec == boost::system::errc::connection_refused) {
            return finish(fail(Errc::not_found, "nobody is listening on " + path.string()));
        }
        if (ec == boost::system::errc::permission_denied) {
            return finish(
                fail(Errc::permission, "cannot connect to " + path.string() + ": " + ec.message()));
        }
        if (ec) {
            return finish(
                fail(Errc::network, "cannot connect to " + path.string() + ": " + ec.message()));
        }
        // Written and read at once: a server that refuses us answers without reading, and a
        // write error (EPIPE) must not hide the answer already waiting in the socket.
        asio::async_write(socket, asio::buffer(out), [](error_code, std::size_t) {});
        asio::async_read_until(
            socket, asio::dynamic_buffer(in, options.max_response_bytes + 1), '\n',
            [&](error_code read_ec, std::size_t n) {
                if (result) return;
                if (!read_ec) return finish(in.substr(0, n - 1));
                if (read_ec == asio::error::not_found) {
                    return finish(fail(Errc::too_large,
                                       "answer on " + path.string() + " longer than " +
                                           std::to_string(options.max_response_bytes) + " bytes"));
                }
                finish(fail(Errc::network, "connection to " + path.string() +
                                               " closed without an answer: " + read_ec.message()));
            });
    });
    io.run();
    return result ? std::move(*result) : fail(Errc::internal, "local_request: no result");
}

}  // namespace patchswarm::io
