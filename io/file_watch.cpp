#include "io/file_watch.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstring>
#include <map>

namespace patchswarm::io {

namespace asio = boost::asio;

struct FileWatch::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, int fd, Handler h) : stream(io, fd), handler(std::move(h)) {}

    asio::posix::stream_descriptor stream;  // owns the inotify descriptor
    Handler handler;
    std::map<int, std::filesystem::path> folders;  // watch descriptor -> folder
    // Room for many events per read; an event is 16 bytes plus its name (NAME_MAX + 1 at most).
    alignas(inotify_event) std::array<char, 64 * 1024> buffer{};
    bool stopped = false;

    void do_read() {
        stream.async_read_some(asio::buffer(buffer), [self = shared_from_this()](
                                                         const boost::system::error_code& ec,
                                                         std::size_t n) { self->on_read(ec, n); });
    }

    void on_read(const boost::system::error_code& ec, std::size_t n) {
        if (stopped || ec == asio::error::operation_aborted) return;
        if (ec) return;  // the descriptor is broken: the owner's coarse re-check takes over
        std::set<std::filesystem::path> changed;
        for (std::size_t at = 0; at + sizeof(inotify_event) <= n;) {
            inotify_event event{};
            std::memcpy(&event, buffer.data() + at, sizeof event);
            // The kernel returns whole events; a record running past what was read is not one.
            if (at + sizeof(inotify_event) + event.len > n) break;
            const char* name = buffer.data() + at + sizeof(inotify_event);
            at += sizeof(inotify_event) + event.len;
            if (event.mask & IN_Q_OVERFLOW) {
                for (const auto& [wd, folder] : folders) changed.insert(folder);
                continue;
            }
            const auto folder = folders.find(event.wd);
            if (folder == folders.end()) continue;
            if (event.len == 0 || (event.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))) {
                changed.insert(folder->second);
            } else {
                changed.insert(folder->second / std::string(name, ::strnlen(name, event.len)));
            }
        }
        // The handler may destroy the FileWatch (stopped is then set): read again only after it.
        if (!changed.empty()) handler(changed);
        if (!stopped) do_read();
    }
};

FileWatch::FileWatch(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

FileWatch::~FileWatch() {
    impl_->stopped = true;
    boost::system::error_code ignored;
    impl_->stream.cancel(ignored);
}

Result<std::unique_ptr<FileWatch>> FileWatch::create(asio::io_context& io, Handler handler) {
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return fail(Errc::io, std::string("inotify_init1: ") + std::strerror(errno));
    auto impl = std::make_shared<Impl>(io, fd, std::move(handler));
    impl->do_read();
    return std::unique_ptr<FileWatch>(new FileWatch(std::move(impl)));
}

Result<void> FileWatch::add(const std::filesystem::path& folder) {
    constexpr std::uint32_t kMask = IN_CREATE | IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO |
                                    IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF |
                                    IN_MOVE_SELF | IN_ONLYDIR;
    const int wd = ::inotify_add_watch(impl_->stream.native_handle(), folder.c_str(), kMask);
    if (wd < 0) {
        const int err = errno;
        return fail(err == ENOENT ? Errc::not_found : Errc::io,
                    "watch " + folder.string() + ": " + std::strerror(err));
    }
    impl_->folders[wd] = folder;
    return {};
}

}  // namespace patchswarm::io
