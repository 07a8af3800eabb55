// The local control socket on real Unix sockets in a temporary folder: one line in, one line out;
// oversized, unterminated and slow requests are answered with the handler's error and never
// reach it as requests; the socket file is 0600; a stale file is replaced, a live one is not; a
// client of another user is refused by its credentials even when file permissions let it in.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>

#include "io/local_socket.hpp"
#include "support/process.hpp"

using namespace patchswarm;
namespace fs = std::filesystem;

namespace {

// A server on its own io_context thread. Its handler echoes a request as "got:<line>" and an
// error as "error:<code>", and counts the requests that reached it.
class Served {
  public:
    explicit Served(io::LocalSocketLimits limits = {})
        : server_(
              io_, [this](Result<std::string> r) { return answer(std::move(r)); }, limits) {}
    ~Served() { halt(); }

    [[nodiscard]] Result<void> listen(const fs::path& path) { return server_.listen(path); }
    void start() {
        thread_ = std::thread([this] { io_.run(); });
    }
    // Stops the server on its own thread, then waits for the thread to finish.
    void halt() {
        if (thread_.joinable()) {
            boost::asio::post(io_, [this] { server_.stop(); });
            thread_.join();
        } else {
            server_.stop();
        }
    }
    int requests() const { return requests_; }

  private:
    std::string answer(Result<std::string> r) {
        if (!r) return "error:" + std::string(to_string(r.error().code));
        ++requests_;
        return "got:" + *r;
    }

    boost::asio::io_context io_;
    io::LocalSocketServer server_;
    std::thread thread_;
    std::atomic<int> requests_{0};
};

// A raw client, for what local_request never does: a partial line, a half-close. Returns the
// descriptor, or -errno.
int raw_connect(const fs::path& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    // Bounds every read in these tests, should the server never answer.
    const timeval limit{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        ::close(fd);
        return -err;
    }
    return fd;
}

// Everything the server sends until it closes (or the 10 s receive limit).
std::string read_to_end(int fd) {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, n);
    return out;
}

// A socket file that nobody listens on: what a crashed daemon leaves behind.
void make_stale_socket(const fs::path& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    ::close(fd);
    REQUIRE(fs::is_socket(fs::symlink_status(path)));
}

}  // namespace

TEST_CASE("a request line gets the handler's answer on a socket file of mode 0600", "[io]") {
    test::TempDir dir("ps-sock");
    const fs::path path = dir / "control.sock";
    Served served;
    REQUIRE(served.listen(path));
    served.start();

    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    // Nothing is left under the temporary name it was bound to.
    CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);

    auto answer = io::local_request(path, R"({"op":"status"})");
    REQUIRE(answer);
    CHECK(*answer == R"(got:{"op":"status"})");
    // One request per connection, any number of connections.
    CHECK(io::local_request(path, "second").value_or("") == "got:second");
    CHECK(served.requests() == 2);

    // A request is one line; the client refuses to send two.
    CHECK(io::local_request(path, "a\nb").error().code == Errc::invalid_argument);
    served.halt();
    CHECK_FALSE(fs::exists(fs::symlink_status(path)));  // stop() removes its socket file
}

TEST_CASE("oversized, unterminated and slow requests get an error and never reach the handler",
          "[io]") {
    test::TempDir dir("ps-sock-bad");
    const fs::path path = dir / "control.sock";
    io::LocalSocketLimits limits;
    limits.max_request_bytes = 1024;
    limits.read_timeout = std::chrono::milliseconds(300);
    Served served(limits);
    REQUIRE(served.listen(path));
    served.start();

    SECTION("a line over the bound") {
        auto answer = io::local_request(path, std::string(100'000, 'x'));
        REQUIRE(answer);
        CHECK(*answer == "error:too_large");
        // Exactly at the bound (the newline counts) is still a request.
        CHECK(io::local_request(path, std::string(1023, 'y')).value_or("").size() == 1027);
        CHECK(served.requests() == 1);
    }
    SECTION("a client that closes before its newline") {
        const int fd = raw_connect(path);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, "{\"op\":", 6) == 6);
        ::shutdown(fd, SHUT_WR);
        CHECK(read_to_end(fd) == "error:malformed\n");
        ::close(fd);
        CHECK(served.requests() == 0);
    }
    SECTION("a client that stops sending mid-line hits the read timeout") {
        const int fd = raw_connect(path);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, "{\"op\":", 6) == 6);
        // The connection stays open on our side: only the server's deadline ends it.
        CHECK(read_to_end(fd) == "error:network\n");
        ::close(fd);
        CHECK(served.requests() == 0);
    }
    SECTION("a client that sends nothing at all hits the read timeout") {
        const int fd = raw_connect(path);
        REQUIRE(fd >= 0);
        CHECK(read_to_end(fd) == "error:network\n");
        ::close(fd);
    }
    // The server is still serving.
    CHECK(io::local_request(path, "after").value_or("") == "got:after");
}

TEST_CASE("a stale socket file is replaced, a live one and other files are left alone", "[io]") {
    test::TempDir dir("ps-sock-stale");
    const fs::path path = dir / "control.sock";

    SECTION("a socket file nobody answers on") {
        make_stale_socket(path);
        // The client takes it for "no daemon" (the CLI then reads state.db itself).
        CHECK(io::local_request(path, "x").error().code == Errc::not_found);
        Served served;
        REQUIRE(served.listen(path));
        served.start();
        CHECK(io::local_request(path, "x").value_or("") == "got:x");
    }
    SECTION("a socket a live server answers on") {
        Served first;
        REQUIRE(first.listen(path));
        first.start();
        Served second;
        auto stolen = second.listen(path);
        REQUIRE_FALSE(stolen);
        CHECK(stolen.error().code == Errc::already_exists);
        second.halt();  // must not remove the first server's file
        CHECK(io::local_request(path, "x").value_or("") == "got:x");
        CHECK(first.requests() == 1);
    }
    SECTION("a regular file, a symlink") {
        test::write_text(path, "not a socket");
        Served served;
        CHECK(served.listen(path).error().code == Errc::already_exists);
        CHECK(test::read_text(path) == "not a socket");

        const fs::path link = dir / "link.sock";
        fs::create_symlink(path, link);
        CHECK(served.listen(link).error().code == Errc::already_exists);
        CHECK(fs::is_symlink(fs::symlink_status(link)));
    }
    SECTION("a successor's socket file survives the predecessor's stop") {
        Served old_server;
        REQUIRE(old_server.listen(path));
        fs::remove(path);
        Served successor;
        REQUIRE(successor.listen(path));
        successor.start();
        old_server.halt();
        CHECK(io::local_request(path, "x").value_or("") == "got:x");
    }
}

TEST_CASE("the client tells 'nobody listens' from other failures", "[io]") {
    test::TempDir dir("ps-sock-client");
    CHECK(io::local_request(dir / "absent.sock", "x").error().code == Errc::not_found);
    // A path too long for a socket address: no server can be there (the CLI reads state.db).
    CHECK(io::local_request(dir / std::string(200, 'p'), "x").error().code == Errc::not_found);
    CHECK(Served().listen(dir / std::string(200, 'p')).error().code == Errc::invalid_argument);

    Served served;
    REQUIRE(served.listen(dir / "control.sock"));
    served.start();
    io::LocalRequestOptions small;
    small.max_response_bytes = 8;
    CHECK(io::local_request(dir / "control.sock", "0123456789", small).error().code ==
          Errc::too_large);
}

TEST_CASE("a client of another user is refused, by file mode and by its credentials", "[io]") {
    if (::geteuid() != 0) {
        WARN("not root: cannot run a client as another user");
        return;
    }
    test::TempDir dir("ps-sock-uid");
    const fs::path path = dir / "control.sock";
    Served served;
    REQUIRE(served.listen(path));
    served.start();

    // The child connects as nobody and exits with what happened: 0 answered "error:permission",
    // 1 any other answer, 2 connect refused by the file system (EACCES), 3 another failure.
    const auto as_nobody = [&] {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
            const int fd = raw_connect(path);
            if (fd == -EACCES) ::_exit(2);
            if (fd < 0) ::_exit(3);
            // The server may have answered and closed already: no SIGPIPE.
            (void)!::send(fd, "{\"op\":\"status\"}\n", 16, MSG_NOSIGNAL);
            char buf[64] = {};
            std::size_t got = 0;
            for (ssize_t n;
                 got < sizeof buf - 1 && (n = ::read(fd, buf + got, sizeof buf - 1 - got)) > 0;) {
                got += static_cast<std::size_t>(n);
            }
            ::_exit(std::strcmp(buf, "error:permission\n") == 0 ? 0 : 1);
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };

    // Mode 0600 in a 0700 folder: the file system keeps nobody out.
    CHECK(as_nobody() == 2);
    // With both opened up, the peer credentials still do.
    fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::others_exec);
    fs::permissions(path, fs::perms::all);
    CHECK(as_nobody() == 0);
    CHECK(served.requests() == 0);
    // Root (this process) is served.
    CHECK(io::local_request(path, "x").value_or("") == "got:x");
}
