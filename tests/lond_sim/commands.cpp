#include "commands.hpp"

#include "lonc/core/keys.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <unistd.h>
#include <vector>

namespace lond_sim {
namespace {

constexpr std::string_view refused = "refused";

// Splits s at the first n-1 ':' (Perl's split(/:/, $s, n)): the last field
// keeps any further colons.
std::vector<std::string_view> split_colon(std::string_view s, std::size_t n) {
    std::vector<std::string_view> fields;
    while (fields.size() + 1 < n) {
        const auto colon = s.find(':');
        if (colon == std::string_view::npos) {
            break;
        }
        fields.push_back(s.substr(0, colon));
        s.remove_prefix(colon + 1);
    }
    fields.push_back(s);
    return fields;
}

// Calls f for each '&'-separated item of s ("" gives none, as Perl's split).
template <typename F> void for_each_item(std::string_view s, F&& f) {
    while (!s.empty()) {
        const auto amp = s.find('&');
        f(s.substr(0, amp));
        if (amp == std::string_view::npos) {
            break;
        }
        s.remove_prefix(amp + 1);
    }
}

template <typename T> std::optional<T> parse_number(std::string_view s) {
    T value{};
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size()) {
        return std::nullopt;
    }
    return value;
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

// Appends n bytes of bytes_pattern repeated.
void append_pattern(std::string& out, std::size_t n) {
    const auto start = out.size();
    out.resize(start + n);
    char* dst = out.data() + start;
    const auto first = std::min(n, bytes_pattern.size());
    std::memcpy(dst, bytes_pattern.data(), first);
    // Doubling copies: every copied prefix is whole periods long.
    for (std::size_t done = first; done < n;) {
        const auto k = std::min(done, n - done);
        std::memcpy(dst + done, dst, k);
        done += k;
    }
}

void reply(std::string& out, std::string_view text) {
    out += text;
    out += '\n';
}

} // namespace

void Store::put(std::string key, std::string value) {
    const std::lock_guard lock(mutex_);
    map_.insert_or_assign(std::move(key), std::move(value));
}

void Store::get(const std::string& key, std::string& out) const {
    const std::lock_guard lock(mutex_);
    if (const auto it = map_.find(key); it != map_.end()) {
        out += it->second;
    }
}

void RequestLog::write(std::string_view client_id, std::string_view raw, std::string_view plain) {
    std::string line;
    line.reserve(client_id.size() + raw.size() + plain.size() + 24);
    if (times_) {
        timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now);
        line += std::to_string(static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000);
        line += '\t';
    }
    line.append(client_id).append(1, '\t').append(raw).append(1, '\t').append(plain);
    line += '\n';
    const std::lock_guard lock(mutex_);
    std::string_view rest = line;
    while (!rest.empty()) {
        const auto n = ::write(fd_, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return; // a full disk must not take the simulated lond down
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

Session::Session(Identity& self, std::string client_id, const SessionConfig& config)
    : self_(self), client_id_(std::move(client_id)), config_(config),
      rng_(static_cast<std::minstd_rand::result_type>(std::random_device{}())) {}

std::string Session::make_buildkey() {
    if (config_.buildkey) {
        return *config_.buildkey;
    }
    // As a real lond: 10-30 characters of 0-9A-F, new for every ekey.
    constexpr std::string_view digits = "0123456789ABCDEF";
    std::uniform_int_distribution<std::size_t> length(10, 30);
    std::uniform_int_distribution<std::size_t> digit(0, digits.size() - 1);
    std::string key(length(rng_), '0');
    for (auto& c : key) {
        c = digits[digit(rng_)];
    }
    return key;
}

Step Session::on_line(std::string_view line, std::string& out) {
    switch (state_) {
    case State::want_init:
        if (config_.log != nullptr) {
            config_.log->write(client_id_, line, line);
        }
        if (line != "init") {
            reply(out, refused);
            return {.next = Step::Next::close};
        }
        // lond's challenge: its pid followed by the epoch time.
        challenge_ = std::to_string(::getpid()) + std::to_string(std::time(nullptr));
        reply(out, challenge_);
        state_ = State::want_echo;
        return {};
    case State::want_echo: {
        if (config_.log != nullptr) {
            config_.log->write(client_id_, line, line);
        }
        std::string echo; // lond strips non-word characters from the echo
        for (const char c : line) {
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '_') {
                echo += c;
            }
        }
        if (config_.refuse_handshake || echo != challenge_) {
            reply(out, refused);
            return {.next = Step::Next::close};
        }
        reply(out, "ok");
        state_ = State::ready;
        return {};
    }
    case State::ready:
        break;
    }

    if (!starts_with(line, "enc:")) {
        if (config_.log != nullptr) {
            config_.log->write(client_id_, line, line);
        }
        return dispatch(line, false, out);
    }
    plain_.clear();
    const auto err = cipher_ ? cipher_->decode(line, plain_) : lonc::DecodeError::none;
    if (config_.log != nullptr) {
        config_.log->write(client_id_, line,
                           cipher_ && err == lonc::DecodeError::none ? plain_ : line);
    }
    if (!cipher_) {
        reply(out, "error:no_key");
        return {.answered = true};
    }
    if (err != lonc::DecodeError::none) {
        reply(out, "error:bad_enc");
        return {.answered = true};
    }
    return dispatch(plain_, true, out);
}

Step Session::dispatch(std::string_view cmd, bool encrypted, std::string& out) {
    const Step answered{.answered = true};
    const auto colon = cmd.find(':');
    const auto name = cmd.substr(0, colon);
    const auto arg = colon == std::string_view::npos ? std::string_view{} : cmd.substr(colon + 1);

    if (config_.drop_requests && cmd != "ekey") {
        return {.next = Step::Next::close}; // a lond whose every handler dies
    }
    // --- lond's commands ---
    if (cmd == "ping") {
        reply(out, self_.id);
        return answered;
    }
    if (cmd == "pong") {
        out.append(self_.id).append(1, ':').append(client_id_);
        out += '\n';
        return answered;
    }
    if (cmd == "ekey") {
        const auto buildkey = make_buildkey();
        // lond's own id first: both ends use remote = lond, local = lonc.
        cipher_.emplace(lonc::derive_link_key(self_.id, client_id_, buildkey));
        reply(out, buildkey);
        return answered;
    }
    if (cmd == "load") {
        reply(out, "0.05");
        return answered;
    }
    if (name == "put" || name == "get" || name == "eget") {
        const auto f = split_colon(cmd, 5); // cmd, domain, user, namespace, items
        if (f.size() < 5) {
            reply(out, "error:bad_request");
            return answered;
        }
        std::string prefix;
        prefix.append(f[1]).append(1, ':').append(f[2]).append(1, ':').append(f[3]);
        prefix += ':';
        if (name == "put") {
            for_each_item(f[4], [&](std::string_view item) {
                const auto eq = item.find('=');
                const auto value =
                    eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
                self_.store.put(prefix + std::string(item.substr(0, eq)), std::string(value));
            });
            reply(out, "ok");
            return answered;
        }
        std::string values;
        bool first = true;
        for_each_item(f[4], [&](std::string_view key) {
            if (!first) {
                values += '&';
            }
            first = false;
            self_.store.get(prefix + std::string(key), values);
        });
        if (name == "get") {
            reply(out, values);
        } else if (cipher_) {
            cipher_->encode(values, out);
            out += '\n';
        } else {
            reply(out, "error:no_key");
        }
        return answered;
    }
    if (name == "auth") {
        const auto f = split_colon(cmd, 4); // auth, domain, user, password
        if (!encrypted) {
            reply(out, refused);
        } else {
            reply(out, f.size() == 4 && !f[3].empty() ? "authorized" : "non_authorized");
        }
        return answered;
    }

    // --- fault and load commands for tests (README.md) ---
    if (name == "echo" && colon != std::string_view::npos) {
        reply(out, arg);
        return answered;
    }
    if (name == "sleep") {
        const auto f = split_colon(arg, 2); // MS, optional token
        const auto ms = parse_number<std::uint32_t>(f[0]);
        if (!ms) {
            reply(out, "error:bad_request");
            return answered;
        }
        reply(out, f.size() == 2 ? f[1] : "ok");
        return {.answered = true, .delay = std::chrono::milliseconds(*ms)};
    }
    if (cmd == "close") {
        return {.next = Step::Next::close};
    }
    if (cmd == "reset") {
        return {.next = Step::Next::reset};
    }
    if (name == "bytes") {
        const auto f = split_colon(arg, 2); // N, optional token
        const auto n = parse_number<std::size_t>(f[0]);
        const auto token = f.size() == 2 ? f[1] : std::string_view{};
        if (!n || *n > max_bytes_reply || token.size() > *n) {
            reply(out, "error:bad_request");
            return answered;
        }
        const auto start = out.size();
        append_pattern(out, *n);
        if (!token.empty()) {
            std::memcpy(out.data() + start, token.data(), token.size()); // bytes:N:TOKEN
        }
        out += '\n';
        return answered;
    }
    if (name == "half") {
        // The first N bytes of a reply, no newline, then the connection
        // closes: a lond dying in the middle of an answer.
        const auto n = parse_number<std::size_t>(arg);
        if (!n || *n > max_bytes_reply) {
            reply(out, "error:bad_request");
            return answered;
        }
        append_pattern(out, *n);
        return {.next = Step::Next::close};
    }
    if (cmd == "garbage") {
        // Random bytes 0..255 except '\n', 16 to 256 of them.
        std::uniform_int_distribution<std::size_t> length(16, 256);
        std::uniform_int_distribution<int> byte(0, 254);
        const auto n = length(rng_);
        for (std::size_t i = 0; i < n; ++i) {
            const int b = byte(rng_);
            out += static_cast<char>(b >= '\n' ? b + 1 : b);
        }
        out += '\n';
        return answered;
    }
    if (cmd == "badenc") {
        reply(out, "enc:20:zz"); // LEN 20 needs 3 blocks, this has a stub
        return answered;
    }
    if (cmd == "badenc2") {
        reply(out, "enc:5:zzzzzzzzzzzzzzzz"); // right block count, not hex
        return answered;
    }
    if (cmd == "stopread") {
        reply(out, "ok");
        return {.next = Step::Next::stop_reading, .answered = true};
    }
    reply(out, "unknown_cmd");
    return answered;
}

} // namespace lond_sim
