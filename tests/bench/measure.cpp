#include "measure.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace lonc::bench {

using test::sample;
using test::self_cpu_us;

namespace {

struct Client {
    std::uint64_t seq = 0;
    std::size_t token_len = 0;
    unsigned done = 0; // correct replies
};

class Measured final : public test::Workload {
public:
    explicit Measured(const LoadSpec& spec) : spec_(spec), clients_(spec.clients) {
        const auto at = spec.request.find("{token}");
        check_ = at != std::string::npos;
        prefix_ = spec.request.substr(0, check_ ? at : std::string::npos);
        suffix_ = check_ ? spec.request.substr(at + 7) : std::string();
        crowd_ = spec.requests_per_client > 0;
        const auto start = test::now_ns();
        warm_end_ = start + static_cast<std::uint64_t>(spec.warmup * 1e9);
        stop_at_ =
            warm_end_ + static_cast<std::uint64_t>((crowd_ ? spec.deadline : spec.seconds) * 1e9);
        latencies_.reserve(std::size_t{1} << 20U);
        if (crowd_ || spec.warmup <= 0) {
            open_window();
        }
    }

    bool next(unsigned c, test::Request& r) override {
        auto& cl = clients_[c];
        if (crowd_ && cl.done >= spec_.requests_per_client) {
            return false;
        }
        r.pattern = spec_.pattern;
        r.line.assign(prefix_);
        if (check_) {
            char token[40];
            char* p = token;
            *p++ = 'c';
            p = std::to_chars(p, p + 12, c).ptr;
            *p++ = 'n';
            p = std::to_chars(p, p + 20, cl.seq++).ptr;
            cl.token_len = static_cast<std::size_t>(p - token);
            r.line.append(token, cl.token_len);
        }
        r.line.append(suffix_);
        return true;
    }

    void done(unsigned c, const test::Request& r, const test::Outcome& o) override {
        if (o.event == test::Event::no_socket) {
            ++r_.connect_errors;
        }
        if (o.event != test::Event::reply) {
            if (counting()) {
                ++r_.errors;
            }
            return;
        }
        auto& cl = clients_[c];
        const std::string_view token(r.line.data() + prefix_.size(), cl.token_len);
        const auto reply = o.reply;
        bool ok = true;
        if (reply == "con_lost" || reply.substr(0, 6) == "error:" || reply.empty()) {
            ok = false;
            if (counting()) {
                ++r_.errors;
            }
        } else if (check_ &&
                   (reply.substr(0, token.size()) != token ||
                    reply.size() != (spec_.reply_size == 0 ? token.size() : spec_.reply_size) ||
                    o.trailing)) {
            ok = false;
            ++r_.crossed; // counted whenever it happens: it must never happen
        }
        if (!ok && r_.first_bad.empty()) {
            r_.first_bad = std::string(reply.substr(0, 80));
        }
        ++r_.total;
        if (ok && counting()) {
            ++r_.requests;
            latencies_.push_back(static_cast<std::uint32_t>(o.latency_us));
        }
        if (ok && ++cl.done == spec_.requests_per_client && crowd_) {
            ++finished_clients_;
        }
    }

    [[nodiscard]] bool finished() const override {
        return test::now_ns() >= stop_at_ || (crowd_ && finished_clients_ == spec_.clients);
    }

    void tick() override {
        if (!begun_ && test::now_ns() >= warm_end_) {
            open_window();
        }
    }

    LoadResult result() {
        close_window();
        for (const auto& cl : clients_) {
            if (crowd_ && cl.done >= spec_.requests_per_client) {
                ++r_.served_clients;
            }
        }
        r_.seconds = static_cast<double>(t_end_ - t_begin_) / 1e9;
        r_.rps = r_.seconds > 0 ? static_cast<double>(r_.requests) / r_.seconds : 0;
        if (!latencies_.empty()) {
            auto pct = [&](double q) {
                const auto k = static_cast<std::size_t>(
                    std::min<double>(static_cast<double>(latencies_.size() - 1),
                                     std::ceil(q * static_cast<double>(latencies_.size())) - 1));
                std::nth_element(latencies_.begin(), latencies_.begin() + static_cast<long>(k),
                                 latencies_.end());
                return static_cast<double>(latencies_[k]);
            };
            r_.p50_us = pct(0.50);
            r_.p99_us = pct(0.99);
            r_.max_us =
                static_cast<double>(*std::max_element(latencies_.begin(), latencies_.end()));
        }
        return r_;
    }

private:
    [[nodiscard]] bool counting() const noexcept { return begun_; }

    void open_window() {
        begun_ = true;
        r_.server_before = sample(spec_.server);
        r_.sim_before = sample(spec_.sim);
        cpu_begin_ = self_cpu_us();
        t_begin_ = test::now_ns();
    }

    void close_window() {
        if (!begun_) {
            open_window();
        }
        t_end_ = test::now_ns();
        r_.client_cpu_us = self_cpu_us() - cpu_begin_;
        r_.server_after = sample(spec_.server);
        r_.sim_after = sample(spec_.sim);
    }

    const LoadSpec& spec_;
    std::vector<Client> clients_;
    bool check_ = false, crowd_ = false, begun_ = false;
    std::string prefix_, suffix_;
    std::uint64_t warm_end_ = 0, stop_at_ = 0;
    std::uint64_t t_begin_ = 0, t_end_ = 0, cpu_begin_ = 0;
    unsigned finished_clients_ = 0;
    std::vector<std::uint32_t> latencies_;
    LoadResult r_;
};

} // namespace

LoadResult run_load(const LoadSpec& spec) {
    Measured m(spec);
    test::LoadLimits limits;
    limits.clients = spec.clients;
    limits.require_target = !(spec.requests_per_client > 0);
    test::run_clients({spec.target}, limits, m);
    return m.result();
}

} // namespace lonc::bench
