#include "load.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <thread>

namespace lonc::test {

namespace {

using Clock = std::chrono::steady_clock;

// Every token of this process starts with this; a reply holding one that
// is not the request's own is a crossed reply.
const std::string& token_mark() {
    static const std::string mark = "LT" + std::to_string(::getpid()) + "x";
    return mark;
}

std::string payload(std::mt19937_64& rng, std::size_t max) {
    if (max == 0) {
        return {};
    }
    // Log-uniform: as many small requests as big ones per decade.
    std::uniform_real_distribution<double> exp(0.0, std::log(static_cast<double>(max) + 1));
    const auto n = static_cast<std::size_t>(std::exp(exp(rng))) - 1;
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789-_=+/ ";
    std::string s(n, 'a');
    std::uniform_int_distribution<std::size_t> pick(0, sizeof alphabet - 2);
    for (auto& ch : s) {
        ch = alphabet[pick(rng)];
    }
    return s;
}

struct Worker {
    const Cluster& c;
    const LoadOptions& o;
    LoadResult& r;
    std::atomic<std::uint64_t>& tickets;
    std::atomic<unsigned>& active;
    std::atomic<bool>& stop;
    unsigned index;
    std::mt19937_64 rng;
    struct Kept {
        LineClient conn;
        bool served = false; // has had a reply: lonc accepted it
    };
    std::map<int, Kept> conns; // persistent connections, by host
    std::uniform_real_distribution<double> unit{0.0, 1.0};
    bool last_eof = false; // the last exchange ended with the connection closed

    bool take_ticket() {
        if (stop) {
            return false;
        }
        if (o.duration.count() > 0) {
            return true;
        }
        auto t = tickets.load();
        while (t > 0) {
            if (tickets.compare_exchange_weak(t, t - 1)) {
                return true;
            }
        }
        return false;
    }

    // Sends one line and reads its reply: lonnet's pattern or a kept connection.
    std::optional<std::string> exchange(int host, const std::string& line, bool lonnet,
                                        bool& connected) {
        connected = false;
        last_eof = false;
        std::optional<LineClient> fresh;
        LineClient* conn = nullptr;
        bool served = false;
        if (lonnet) {
            fresh = c.client(host);
            conn = fresh ? &*fresh : nullptr;
        } else {
            auto it = conns.find(host);
            if (it == conns.end()) {
                if (auto made = c.client(host)) {
                    it = conns.emplace(host, Kept{std::move(*made)}).first;
                }
            }
            conn = it != conns.end() ? &it->second.conn : nullptr;
            served = it != conns.end() && it->second.served;
        }
        if (conn == nullptr) {
            return std::nullopt;
        }
        connected = true;
        ++r.sent;
        const auto t0 = Clock::now();
        auto reply = conn->request(line, o.reply_timeout);
        // No line: the connection was closed (or reset, or never accepted
        // before the listener went), unless the whole timeout passed.
        last_eof = !reply && (conn->eof() || Clock::now() - t0 < o.reply_timeout);
        if (last_eof && served) {
            // lonc had accepted and served this connection: it owes a reply.
            ++r.dropped;
            r.note("DROPPED: a served connection closed without a reply to " + line.substr(0, 60));
        }
        if (reply && !lonnet) {
            conns.at(host).served = true;
        }
        // A kept connection that failed is dropped; now and then a good one
        // goes away too (a client closing between requests).
        if (!lonnet && (!reply || unit(rng) < 0.02)) {
            conns.erase(host);
        }
        return reply;
    }

    void record_latency(Clock::time_point t0) {
        const auto us =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
        auto max = r.max_latency_us.load();
        while (us > max && !r.max_latency_us.compare_exchange_weak(max, us)) {
        }
        if (o.late_after.count() > 0 && us > o.late_after.count() * 1000) {
            ++r.late;
            r.note("late: " + std::to_string(us / 1000) + " ms");
        }
    }

    // Classifies a reply that should have been `want`.
    void check(const std::optional<std::string>& reply, bool connected, const std::string& want,
               const std::string& what) {
        if (!connected) {
            ++r.no_socket;
            return;
        }
        if (!reply) {
            // The connection ended without a line, or nothing came in time.
            ++(last_eof ? r.closed : r.lost);
            r.note((last_eof ? "closed without reply: " : "no reply: ") + what);
            return;
        }
        if (*reply == want) {
            ++r.ok;
        } else if (*reply == "con_lost") {
            ++r.con_lost;
        } else if (reply->find(token_mark()) != std::string::npos) {
            ++r.crossed;
            r.note("CROSSED: " + what + " got " + reply->substr(0, 80));
        } else {
            ++r.wrong;
            r.note("wrong: " + what + " got " + reply->substr(0, 80));
        }
    }

    void one(int host) {
        const bool lonnet = unit(rng) < o.lonnet_share;
        const double kind = unit(rng);
        const auto t0 = Clock::now();
        bool connected = false;
        if (kind < o.fault_share && !o.faults.empty()) {
            std::uniform_int_distribution<std::size_t> pick(0, o.faults.size() - 1);
            const auto& cmd = o.faults[pick(rng)];
            ++r.faults;
            auto reply = exchange(host, cmd, lonnet, connected);
            if (connected && reply && reply->find(token_mark()) != std::string::npos) {
                ++r.crossed;
                r.note("CROSSED: fault " + cmd + " got " + reply->substr(0, 80));
            }
            if (connected) {
                record_latency(t0);
            }
            return;
        }
        const auto token = unique_token(token_mark());
        if (kind < o.fault_share + o.eget_share) {
            const auto key = "k" + std::to_string(index);
            const auto value = token + payload(rng, std::min<std::size_t>(o.max_payload, 4096));
            auto put = exchange(host, "put:dom:load:ns:" + key + "=" + value, lonnet, connected);
            check(put, connected, "ok", "put " + token);
            if (!connected || put != "ok") {
                return;
            }
            auto got = exchange(host, "eget:dom:load:ns:" + key, lonnet, connected);
            check(got, connected, value, "eget " + token);
            record_latency(t0);
            return;
        }
        const auto want = token + ":" + payload(rng, o.max_payload);
        const bool enc = kind < o.fault_share + o.eget_share + o.encrypted_share;
        const auto line = (enc ? "encrypt:echo:" : "echo:") + want;
        auto reply = exchange(host, line, lonnet, connected);
        check(reply, connected, want, (enc ? "encrypt:echo " : "echo ") + token);
        if (connected) {
            record_latency(t0);
        }
    }

    void run() {
        std::uniform_int_distribution<std::size_t> pick(0, o.hosts.size() - 1);
        while (!stop) {
            if (index >= active.load()) {
                conns.clear();
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
                continue;
            }
            if (!take_ticket()) {
                return;
            }
            one(o.hosts[pick(rng)]);
        }
    }
};

} // namespace

void LoadResult::note(const std::string& what) {
    const std::lock_guard lock(mutex);
    if (samples.size() < 20) {
        samples.push_back(what);
    }
}

std::string LoadResult::summary() const {
    std::string s = "sent " + std::to_string(sent) + ", ok " + std::to_string(ok) + ", con_lost " +
                    std::to_string(con_lost) + ", no socket " + std::to_string(no_socket) +
                    ", closed " + std::to_string(closed) + ", lost " + std::to_string(lost) +
                    ", crossed " + std::to_string(crossed) + ", wrong " + std::to_string(wrong) +
                    ", late " + std::to_string(late) + ", faults " + std::to_string(faults) +
                    ", max latency " + std::to_string(max_latency_us / 1000) + " ms";
    for (const auto& x : samples) {
        s += "\n  " + x;
    }
    return s;
}

LatencyProbe::LatencyProbe(const Cluster& c, int host, bool persistent)
    : c_(c), host_(host), persistent_(persistent) {
    thread_ = std::thread([this] {
        std::uint64_t n = 0;
        std::optional<LineClient> conn;
        while (!stop_ || latencies_ms_.size() < min_probes) {
            const auto token = "probe" + std::to_string(n++);
            const auto t0 = Clock::now();
            std::optional<std::string> reply;
            if (persistent_) {
                if (!conn) {
                    conn = c_.client(host_);
                }
                reply =
                    conn ? conn->request("echo:" + token, std::chrono::seconds(10)) : std::nullopt;
                if (!reply) {
                    conn.reset();
                }
            } else {
                reply = c_.request(host_, "echo:" + token, std::chrono::seconds(10));
            }
            latencies_ms_.push_back(
                std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
            if (reply != token) {
                if (failures_++ == 0) {
                    first_failure_ = reply.value_or("(no reply)");
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    });
}

LatencyProbe::~LatencyProbe() {
    stop();
}

void LatencyProbe::stop() {
    stop_ = true;
    if (thread_.joinable()) {
        thread_.join();
    }
}

double LatencyProbe::max_ms() const {
    return latencies_ms_.empty() ? 0
                                 : *std::max_element(latencies_ms_.begin(), latencies_ms_.end());
}

double LatencyProbe::median_ms() const {
    if (latencies_ms_.empty()) {
        return 0;
    }
    auto v = latencies_ms_;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

std::string LatencyProbe::summary() const {
    return std::to_string(count()) + " probe requests, " + std::to_string(failures_) + " failed" +
           (failures_ > 0 ? " (first: " + first_failure_ + ")" : "") + ", median " +
           std::to_string(median_ms()) + " ms, max " + std::to_string(max_ms()) + " ms";
}

bool full_size() {
    const char* v = std::getenv("LONC_TEST_FULL");
    return v != nullptr && *v != '\0' && std::string(v) != "0";
}

void run_load(const Cluster& c, const LoadOptions& opts, LoadResult& result,
              const std::function<void(std::uint64_t)>& on_progress) {
    std::random_device rd;
    const auto seed = opts.seed != 0 ? opts.seed : (std::uint64_t{rd()} << 32U) ^ rd();
    std::atomic<std::uint64_t> tickets{opts.requests};
    std::atomic<unsigned> active{opts.max_concurrency};
    std::atomic<bool> stop{false};
    std::vector<std::unique_ptr<Worker>> workers;
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < opts.max_concurrency; ++i) {
        workers.push_back(std::make_unique<Worker>(
            Worker{c, opts, result, tickets, active, stop, i, std::mt19937_64(seed + i), {}}));
    }
    threads.reserve(workers.size());
    for (auto& w : workers) {
        threads.emplace_back([&w] { w->run(); });
    }
    // The controller: a new concurrency level every 50-300 ms.
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<unsigned> level(1, opts.max_concurrency);
    std::uniform_int_distribution<int> hold_ms(50, 300);
    const auto t0 = Clock::now();
    auto next_change = t0;
    for (;;) {
        const auto answered = result.sent.load();
        if (opts.duration.count() > 0 ? Clock::now() - t0 >= opts.duration : tickets.load() == 0) {
            break;
        }
        if (opts.stop != nullptr && *opts.stop) {
            break;
        }
        if (Clock::now() >= next_change) {
            active = level(rng);
            next_change = Clock::now() + std::chrono::milliseconds(hold_ms(rng));
        }
        if (on_progress) {
            on_progress(answered);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    active = opts.max_concurrency; // let the last tickets go quickly
    if (opts.duration.count() > 0) {
        stop = true;
    }
    for (auto& t : threads) {
        t.join();
    }
}

} // namespace lonc::test
