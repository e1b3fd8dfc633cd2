#include "mixed_load.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <thread>

#include "load.hpp"

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

// What a client is doing.
struct ClientState {
    enum class Op { echo, fault, put, eget } op = Op::echo;
    std::mt19937_64 rng;
    std::string want;  // the reply that is right (echo, put, eget)
    std::string what;  // for messages
    std::string value; // put: the value eget must return
};

class Mixed final : public Workload {
public:
    Mixed(const LoadOptions& o, LoadResult& r, std::uint64_t seed,
          const std::function<void(std::uint64_t)>& on_progress)
        : o_(o), r_(r), on_progress_(on_progress), rng_(seed),
          level_(1, std::max(1U, o.max_concurrency)), tickets_(o.requests),
          active_(o.max_concurrency) {
        for (unsigned i = 0; i < o.max_concurrency; ++i) {
            clients_.push_back(ClientState{{}, std::mt19937_64(seed + i), {}, {}, {}});
        }
    }

    bool next(unsigned c, Request& req) override {
        auto& cl = clients_[c];
        const bool continuing = cl.op == ClientState::Op::put && !cl.value.empty();
        if (!continuing && (c >= active_ || !take_ticket())) {
            return false;
        }
        req.pattern = unit(cl.rng) < o_.lonnet_share ? Pattern::lonnet : Pattern::persistent;
        req.close_after = unit(cl.rng) < 0.02; // a client closing between requests
        if (continuing) {                      // the eget that reads back the put
            cl.op = ClientState::Op::eget;
            cl.want = cl.value;
            cl.value.clear();
            cl.what = "eget " + cl.what.substr(4);
            req.line = "eget:dom:load:ns:k" + std::to_string(c);
            return true;
        }
        ++in_progress_;
        std::uniform_int_distribution<std::size_t> host(0, o_.hosts.size() - 1);
        req.target = host(cl.rng);
        const double kind = unit(cl.rng);
        if (kind < o_.fault_share && !o_.faults.empty()) {
            std::uniform_int_distribution<std::size_t> pick(0, o_.faults.size() - 1);
            cl.op = ClientState::Op::fault;
            req.line = o_.faults[pick(cl.rng)];
            cl.what = "fault " + req.line;
            ++r_.faults;
            return true;
        }
        const auto token = unique_token(token_mark());
        if (kind < o_.fault_share + o_.eget_share) {
            cl.op = ClientState::Op::put;
            cl.value = token + payload(cl.rng, std::min<std::size_t>(o_.max_payload, 4096));
            cl.want = "ok";
            cl.what = "put " + token;
            req.line = "put:dom:load:ns:k" + std::to_string(c) + "=" + cl.value;
            return true;
        }
        const bool enc = kind < o_.fault_share + o_.eget_share + o_.encrypted_share;
        cl.op = ClientState::Op::echo;
        cl.want = token + ":" + payload(cl.rng, o_.max_payload);
        cl.what = (enc ? "encrypt:echo " : "echo ") + token;
        req.line = (enc ? "encrypt:echo:" : "echo:") + cl.want;
        return true;
    }

    void done(unsigned c, const Request& req, const Outcome& out) override {
        auto& cl = clients_[c];
        judge(cl, req, out);
        // A put that failed ends its pair; anything else ends its op.
        const bool pair_goes_on =
            cl.op == ClientState::Op::put && out.event == Event::reply && out.reply == "ok";
        if (!pair_goes_on) {
            cl.value.clear();
            --in_progress_;
        }
    }

    [[nodiscard]] bool finished() const override {
        return o_.duration.count() == 0 && tickets_ == 0 && in_progress_ == 0;
    }

    void tick() override {
        const auto now = Clock::now();
        if (o_.vary_concurrency && now >= next_change_) { // a new level every 50-300 ms
            std::uniform_int_distribution<int> hold_ms(50, 300);
            active_ = tickets_ == 0 && o_.duration.count() == 0 ? o_.max_concurrency : level_(rng_);
            next_change_ = now + std::chrono::milliseconds(hold_ms(rng_));
        }
        if (on_progress_ && now >= next_progress_) {
            on_progress_(r_.sent.load());
            next_progress_ = now + std::chrono::milliseconds(100);
        }
    }

private:
    static double unit(std::mt19937_64& rng) {
        return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    }

    bool take_ticket() {
        if (o_.duration.count() > 0) {
            return true;
        }
        if (tickets_ == 0) {
            return false;
        }
        --tickets_;
        return true;
    }

    void judge(const ClientState& cl, const Request& req, const Outcome& out) {
        if (out.event == Event::no_socket) {
            ++r_.no_socket;
            return;
        }
        ++r_.sent;
        switch (out.event) {
        case Event::closed_served:
            ++r_.dropped; // lonc had served this connection: it owes a reply
            r_.note("DROPPED: a served connection closed without a reply to " +
                    req.line.substr(0, 60));
            [[fallthrough]];
        case Event::closed:
            ++r_.closed;
            r_.note("closed without reply: " + cl.what);
            return;
        case Event::timeout:
            ++r_.lost;
            r_.note("no reply: " + cl.what);
            return;
        default:
            break;
        }
        record_latency(out.latency_us);
        const auto reply = out.reply;
        if (cl.op == ClientState::Op::fault) {
            if (reply.find(token_mark()) != std::string_view::npos) {
                ++r_.crossed;
                r_.note("CROSSED: " + cl.what + " got " + std::string(reply.substr(0, 80)));
            }
            return;
        }
        if (reply == cl.want && !out.trailing) {
            ++r_.ok;
        } else if (reply == "con_lost") {
            ++r_.con_lost;
        } else if (reply.find(token_mark()) != std::string_view::npos) {
            ++r_.crossed;
            r_.note("CROSSED: " + cl.what + " got " + std::string(reply.substr(0, 80)));
        } else {
            ++r_.wrong;
            r_.note("wrong: " + cl.what + " got " + std::string(reply.substr(0, 80)));
        }
    }

    void record_latency(std::uint64_t us) {
        r_.latencies_us.push_back(
            static_cast<std::uint32_t>(std::min<std::uint64_t>(us, UINT32_MAX)));
        const auto v = static_cast<std::int64_t>(us);
        if (v > r_.max_latency_us) {
            r_.max_latency_us = v;
        }
        if (o_.late_after.count() > 0 && v > o_.late_after.count() * 1000) {
            ++r_.late;
            r_.note("late: " + std::to_string(v / 1000) + " ms");
        }
    }

    const LoadOptions& o_;
    LoadResult& r_;
    const std::function<void(std::uint64_t)>& on_progress_;
    std::mt19937_64 rng_;
    std::uniform_int_distribution<unsigned> level_;
    std::vector<ClientState> clients_;
    std::uint64_t tickets_;
    std::uint64_t in_progress_ = 0;
    unsigned active_;
    Clock::time_point next_change_{}, next_progress_{};
};

} // namespace

void LoadResult::note(const std::string& what) {
    const std::lock_guard lock(mutex);
    if (samples.size() < 20) {
        samples.push_back(what);
    }
}

void expect_no_failed_request(const LoadResult& r) {
    EXPECT_GT(r.ok.load(), 0U) << r.summary();
    EXPECT_EQ(r.con_lost.load(), 0U) << r.summary();
    EXPECT_EQ(r.no_socket.load(), 0U) << r.summary();
    EXPECT_EQ(r.closed.load(), 0U) << r.summary();
    EXPECT_EQ(r.lost.load(), 0U) << r.summary();
    EXPECT_EQ(r.crossed.load(), 0U) << r.summary();
    EXPECT_EQ(r.wrong.load(), 0U) << r.summary();
}

double LoadResult::percentile_ms(double q) const {
    if (latencies_us.empty()) {
        return 0;
    }
    auto v = latencies_us;
    const auto k =
        std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return static_cast<double>(v[k]) / 1000.0;
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
            ++done_;
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
    std::vector<Target> targets;
    for (const int h : opts.hosts) {
        Target t;
        t.unix_path = c.socket(h).string();
        targets.push_back(std::move(t));
    }
    Mixed m(opts, result, seed, on_progress);
    LoadLimits limits;
    limits.clients = opts.max_concurrency;
    limits.duration = opts.duration;
    limits.reply_timeout = opts.reply_timeout;
    limits.stop = opts.stop;
    run_clients(targets, limits, m);
}

} // namespace lonc::test
