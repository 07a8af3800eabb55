// The static-file baseline (static_hold.hpp).
#include "static_hold.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "proc_sample.hpp"
#include "stats.hpp"

namespace patchswarm::fleetsim {

std::string source_address_for(const std::string& base, int i);  // simulator.cpp

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Steady = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr std::size_t kMaxAnswer = 1 << 20;

struct Conn {
    explicit Conn(net::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::string buffer;
    bool held = false;
    bool answered = false;
    double latency_ms = 0;
    std::string error;
};

class StaticRun {
  public:
    explicit StaticRun(const StaticOptions& o) : o_(o) {
        static const std::regex re(R"(^http://([0-9.]+):([0-9]+)(/.*)$)");
        std::smatch m;
        if (!std::regex_match(o.url, m, re))
            throw std::runtime_error("--static-url must be http://IPv4:PORT/PATH");
        server_ = tcp::endpoint(net::ip::make_address_v4(m[1].str()),
                                static_cast<unsigned short>(std::stoi(m[2].str())));
        request_ = "GET " + m[3].str() + " HTTP/1.1\r\nHost: " + m[1].str() + ":" + m[2].str() +
                   "\r\nUser-Agent: patchswarm-fleetsim\r\n\r\n";
    }

    int run() {
        for (int i = 0; i < o_.connections; ++i) conns_.push_back(std::make_unique<Conn>(io_));
        started_ = Steady::now();
        connect_next();
        io_.run();
        return exit_code_;
    }

  private:
    void connect_next() {
        const auto batch = static_cast<std::size_t>(std::max(1.0, o_.ramp_per_s / 20));
        for (std::size_t k = 0; k < batch && next_ < conns_.size(); ++k, ++next_) {
            Conn& c = *conns_[next_];
            boost::system::error_code ec;
            c.socket.open(tcp::v4(), ec);
            if (!ec)
                c.socket.bind(tcp::endpoint(net::ip::make_address_v4(source_address_for(
                                                o_.source_base, static_cast<int>(next_))),
                                            0),
                              ec);
            if (ec) {
                c.error = ec.message();
                ++settled_;
                continue;
            }
            c.socket.async_connect(server_, [this, &c](boost::system::error_code ec) {
                if (ec) return fail(c, "connect: " + ec.message());
                // A first exchange, so the connection is a kept-alive one, as a poller's is.
                exchange(c, [this, &c] {
                    c.held = true;
                    ++settled_;
                    check_all_held();
                });
            });
        }
        if (next_ < conns_.size()) {
            timer_.expires_after(std::chrono::milliseconds(50));
            timer_.async_wait([this](boost::system::error_code ec) {
                if (!ec) connect_next();
            });
        } else {
            check_all_held();
        }
    }

    void fail(Conn& c, std::string why) {
        if (c.error.empty()) c.error = std::move(why);
        ++settled_;
        if (fanout_started_) {
            ++fanout_done_;
            check_fanout_done();
        } else {
            check_all_held();
        }
    }

    void exchange(Conn& c, std::function<void()> done) {
        net::async_write(c.socket, net::buffer(request_),
                         [this, &c, done](boost::system::error_code ec, std::size_t) {
                             if (ec) return fail(c, "write: " + ec.message());
                             read_answer(c, done);
                         });
    }

    void read_answer(Conn& c, std::function<void()> done) {
        net::async_read_until(
            c.socket, net::dynamic_buffer(c.buffer, kMaxAnswer), "\r\n\r\n",
            [this, &c, done](boost::system::error_code ec, std::size_t header_bytes) {
                if (ec) return fail(c, "read: " + ec.message());
                static const std::regex len(R"(\r\n[Cc]ontent-[Ll]ength:\s*([0-9]+))");
                std::smatch m;
                const std::string head = c.buffer.substr(0, header_bytes);
                if (!head.starts_with("HTTP/1.1 200") || !std::regex_search(head, m, len))
                    return fail(c, "answer: " + head.substr(0, 40));
                const std::size_t body = std::stoul(m[1].str());
                const std::size_t have = c.buffer.size() - header_bytes;
                const std::size_t need = body > have ? body - have : 0;
                auto finish = [&c, header_bytes, body, done] {
                    c.buffer.erase(0, header_bytes + body);
                    done();
                };
                if (need == 0) return finish();
                c.buffer.resize(c.buffer.size() + need);
                net::async_read(c.socket,
                                net::buffer(c.buffer.data() + c.buffer.size() - need, need),
                                [this, &c, finish](boost::system::error_code ec, std::size_t) {
                                    if (ec) return fail(c, "read body: " + ec.message());
                                    finish();
                                });
            });
    }

    void check_all_held() {
        if (holding_started_ || next_ < conns_.size() || settled_ < conns_.size()) return;
        holding_started_ = true;
        ready_s_ = std::chrono::duration<double>(Steady::now() - started_).count();
        before_hold_ = sample_process(o_.server_pid_file);
        rss_max_ = before_hold_.value("rss_kib", 0LL);
        sample_during_hold(o_.hold_s);
    }

    void sample_during_hold(int left) {
        timer_.expires_after(std::chrono::seconds(left > 0 ? 1 : 0));
        timer_.async_wait([this, left](boost::system::error_code) {
            const auto s = sample_process(o_.server_pid_file);
            rss_max_ = std::max(rss_max_, s.value("rss_kib", 0LL));
            if (left > 1) return sample_during_hold(left - 1);
            after_hold_ = s;
            start_fanout();
        });
    }

    void start_fanout() {
        fanout_started_ = true;
        fanout_t0_ = Steady::now();
        int held = 0;
        for (auto& c : conns_) {
            if (!c->held) continue;
            ++held;
            exchange(*c, [this, c = c.get()] {
                c->answered = true;
                c->latency_ms =
                    std::chrono::duration<double, std::milli>(Steady::now() - fanout_t0_).count();
                ++fanout_done_;
                check_fanout_done();
            });
        }
        fanout_members_ = held;
        deadline_.expires_after(std::chrono::seconds(o_.timeout_s));
        deadline_.async_wait([this](boost::system::error_code ec) {
            if (!ec) finish();
        });
        check_fanout_done();
    }

    void check_fanout_done() {
        if (fanout_started_ && fanout_done_ >= fanout_members_) finish();
    }

    void finish() {
        if (finished_) return;
        finished_ = true;
        const auto after = sample_process(o_.server_pid_file);
        std::vector<double> lat;
        int held = 0, answered = 0;
        std::map<std::string, int> errors;
        for (const auto& c : conns_) {
            held += c->held ? 1 : 0;
            if (c->answered) {
                ++answered;
                lat.push_back(c->latency_ms);
            }
            if (!c->error.empty()) ++errors[c->error.substr(0, 60)];
        }
        json doc = {{"mode", "static"},
                    {"label", o_.label},
                    {"url", o_.url},
                    {"connections", o_.connections},
                    {"held", held},
                    {"answered", answered},
                    {"errors", errors},
                    {"ready_s", ready_s_},
                    {"hold_s", o_.hold_s},
                    {"fanout_ms", summarize(lat)},
                    {"server_before_hold", before_hold_},
                    {"server_after_hold", after_hold_},
                    {"server_after_fanout", after},
                    {"server_rss_max_kib", rss_max_}};
        if (before_hold_.contains("cpu_s") && after_hold_.contains("cpu_s") && held > 0) {
            const double cpu =
                after_hold_["cpu_s"].get<double>() - before_hold_["cpu_s"].get<double>();
            doc["hold_cpu_s"] = cpu;
            doc["cpu_s_per_1000_per_min"] = cpu / (held / 1000.0) / (o_.hold_s / 60.0);
        }
        if (o_.out.empty()) {
            std::cout << doc.dump(2) << "\n";
        } else {
            std::ofstream(o_.out) << doc.dump(2) << "\n";
        }
        exit_code_ = (held == o_.connections && answered == held) ? 0 : 1;
        io_.stop();
    }

    const StaticOptions& o_;
    net::io_context io_;
    net::steady_timer timer_{io_};
    net::steady_timer deadline_{io_};
    tcp::endpoint server_;
    std::string request_;
    std::vector<std::unique_ptr<Conn>> conns_;
    std::size_t next_ = 0;
    std::size_t settled_ = 0;
    bool holding_started_ = false;
    bool fanout_started_ = false;
    bool finished_ = false;
    int fanout_members_ = 0;
    int fanout_done_ = 0;
    Steady::time_point started_, fanout_t0_;
    double ready_s_ = 0;
    json before_hold_ = json::object(), after_hold_ = json::object();
    long long rss_max_ = 0;
    int exit_code_ = 1;
};

}  // namespace

int run_static(const StaticOptions& options) {
    StaticRun r(options);
    return r.run();
}

}  // namespace patchswarm::fleetsim
