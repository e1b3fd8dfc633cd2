#include "lonc/supervisor/upgrade.hpp"

#include "lonc/core/fd.hpp"
#include "lonc/supervisor/startup.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace lonc {

namespace {

template <typename T> bool number(std::string_view s, T& out) {
    const auto* end = s.data() + s.size();
    const auto r = std::from_chars(s.data(), end, out);
    return !s.empty() && r.ec == std::errc() && r.ptr == end;
}

bool valid_id(std::string_view id) {
    return !id.empty() && std::all_of(id.begin(), id.end(),
                                      [](char c) { return c > ' ' && c != '/' && c != 0x7f; });
}

} // namespace

std::string Handover::encode() const {
    std::string s = "v1 pidfile=" + std::to_string(pid_file_fd) +
                    " waiter=" + std::to_string(waiter_fd) +
                    " config=" + std::to_string(config_fd) + " from=" + from_version +
                    " started=" + std::to_string(started_ms);
    for (const auto& c : children) {
        s += " child=" + c.id + "/" + std::to_string(c.pid) + "/" + std::to_string(c.fd) + "/" +
             (c.link_up ? "1" : "0");
    }
    return s;
}

std::optional<Handover> Handover::decode(std::string_view text, std::string& error) {
    Handover h;
    bool version = false;
    while (!text.empty()) {
        const auto sp = text.find(' ');
        const auto word = text.substr(0, sp);
        text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
        if (word.empty()) {
            continue;
        }
        if (!version) {
            if (word != "v1") {
                error = "unknown format " + std::string(word.substr(0, 20));
                return std::nullopt;
            }
            version = true;
            continue;
        }
        const auto eq = word.find('=');
        const auto key = word.substr(0, eq);
        const auto value = eq == std::string_view::npos ? std::string_view{} : word.substr(eq + 1);
        bool ok = eq != std::string_view::npos;
        if (key == "pidfile") {
            ok = ok && number(value, h.pid_file_fd) && h.pid_file_fd > 2;
        } else if (key == "waiter") {
            ok = ok && number(value, h.waiter_fd) && (h.waiter_fd == -1 || h.waiter_fd > 2);
        } else if (key == "config") {
            ok = ok && number(value, h.config_fd) && (h.config_fd == -1 || h.config_fd > 2);
        } else if (key == "from") {
            h.from_version = std::string(value);
        } else if (key == "started") {
            ok = ok && number(value, h.started_ms);
        } else if (key == "child") {
            // ID/PID/FD/UP, split from the right: the id is checked apart.
            HandoverChild c;
            std::string_view rest = value;
            std::string_view parts[3];
            for (int i = 2; i >= 0 && ok; --i) {
                const auto slash = rest.rfind('/');
                ok = slash != std::string_view::npos;
                if (ok) {
                    parts[i] = rest.substr(slash + 1);
                    rest = rest.substr(0, slash);
                }
            }
            ok = ok && valid_id(rest) && number(parts[0], c.pid) && c.pid > 0 &&
                 number(parts[1], c.fd) && c.fd > 2 && (parts[2] == "0" || parts[2] == "1");
            if (ok) {
                c.id = std::string(rest);
                c.link_up = parts[2] == "1";
                h.children.push_back(std::move(c));
            }
        } else {
            ok = false;
        }
        if (!ok) {
            error = "bad field " + std::string(word.substr(0, 60));
            return std::nullopt;
        }
    }
    if (!version || h.pid_file_fd < 0) {
        error = "no pid file descriptor";
        return std::nullopt;
    }
    auto fds = h.fds();
    if (std::adjacent_find(fds.begin(), fds.end()) != fds.end()) {
        error = "a descriptor is named twice";
        return std::nullopt;
    }
    return h;
}

std::vector<int> Handover::fds() const {
    std::vector<int> out{pid_file_fd};
    if (waiter_fd >= 0) {
        out.push_back(waiter_fd);
    }
    if (config_fd >= 0) {
        out.push_back(config_fd);
    }
    for (const auto& c : children) {
        out.push_back(c.fd);
    }
    std::sort(out.begin(), out.end());
    return out;
}

BinaryCheck::BinaryCheck(EventLoop& loop, std::string exe, const std::vector<std::string>& args,
                         double timeout_s, Done done)
    : loop_(loop), exe_(std::move(exe)), timeout_s_(timeout_s), done_(std::move(done)),
      timeout_(loop,
               [this] {
                   timed_out_ = true;
                   if (pid_ > 0) {
                       ::kill(pid_, SIGKILL);
                   }
                   eof_ = true; // whatever it printed is all we wait for
                   try_reap();
               }),
      poll_(loop, [this] { try_reap(); }) {
    auto fail_now = [this](const std::string& why) {
        output_ = why;
        status_ = 127 << 8;
        eof_ = true;
        poll_.arm_in(EventLoop::Clock::duration::zero()); // done_ from the loop, not from here
    };
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        fail_now(std::string("pipe: ") + std::strerror(errno));
        return;
    }
    UniqueFd read_end(p[0]);
    UniqueFd write_end(p[1]);
    std::vector<std::string> argv{exe_, "-t"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (auto& a : argv) {
        cargv.push_back(a.data());
    }
    cargv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        fail_now(std::string("fork: ") + std::strerror(errno));
        return;
    }
    if (pid == 0) {
        ::dup2(write_end.get(), 1);
        ::dup2(write_end.get(), 2);
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execv(exe_.c_str(), cargv.data());
        const std::string msg = "cannot execute " + exe_ + ": " + std::strerror(errno) + "\n";
        (void)!::write(2, msg.data(), msg.size());
        ::_exit(127);
    }
    pid_ = pid;
    write_end.reset();
    ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    out_ = std::move(read_end);
    loop_.add(out_.get(), EPOLLIN, *this);
    timeout_.arm_in(seconds(timeout_s_));
}

BinaryCheck::~BinaryCheck() {
    if (out_) {
        loop_.remove(out_.get(), *this);
    }
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
    }
}

void BinaryCheck::on_events(std::uint32_t /*events*/) {
    char buf[4096];
    for (;;) {
        const auto n = ::read(out_.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            break; // EOF: it has exited (or closed its output)
        }
        if (output_.size() < 16384) {
            output_.append(buf, static_cast<std::size_t>(n));
        }
    }
    loop_.remove(out_.get(), *this);
    out_.reset();
    eof_ = true;
    try_reap();
}

void BinaryCheck::exited(int status) {
    pid_ = 0;
    status_ = status;
    try_reap();
}

void BinaryCheck::try_reap() {
    if (finished_) {
        return;
    }
    if (!status_ && pid_ > 0) {
        int st = 0;
        // Killed at the timeout: it is gone at once, so wait for it.
        const pid_t r = ::waitpid(pid_, &st, timed_out_ ? 0 : WNOHANG);
        if (r == pid_) {
            pid_ = 0;
            status_ = st;
        } else if (r < 0 && errno == ECHILD) {
            pid_ = 0; // the owner's reaper has it: exited() comes
        }
    }
    if (status_ && eof_) {
        finish();
    } else if (eof_ && !poll_.armed()) {
        poll_.arm_in(seconds(0.02));
    }
}

void BinaryCheck::finish() {
    finished_ = true;
    timeout_.cancel();
    poll_.cancel();
    if (out_) {
        loop_.remove(out_.get(), *this);
        out_.reset();
    }
    const int status = *status_;
    auto sep = [this] { return output_.empty() || output_.back() == '\n' ? "" : "\n"; };
    auto verdict = CheckVerdict::failed;
    if (timed_out_) {
        output_ += sep() + exe_ + " -t did not finish within " + std::to_string(timeout_s_) + " s";
    } else if (!WIFEXITED(status)) {
        output_ += sep() + exe_ + " -t was killed by signal " + std::to_string(WTERMSIG(status));
    } else if (WEXITSTATUS(status) == exit_ok) {
        verdict = CheckVerdict::passed;
    } else if (WEXITSTATUS(status) == exit_config_problems) {
        verdict = CheckVerdict::passed_with_problems;
    } else {
        output_ += sep() + exe_ + " -t exited " + std::to_string(WEXITSTATUS(status));
    }
    auto done = std::move(done_);
    done(verdict, std::move(output_)); // may destroy this
}

ConfigSnapshot ConfigSnapshot::of(const Options& opts, const Config& cfg) {
    ConfigSnapshot s;
    for (const auto& v : option_values(opts)) {
        // Quoted as the settings file's INI reader takes it back.
        const char q = v.value.find('"') == std::string::npos ? '"' : '\'';
        s.options += v.name + " = " + q + v.value + q + "\n";
    }
    s.access_conf = cfg.access_text;
    s.hosts_tab = cfg.hosts_text;
    return s;
}

// Three parts, each its length in decimal, a newline, then its bytes.
std::string ConfigSnapshot::encode() const {
    std::string out = "lonc-config v1\n";
    for (const auto* part : {&options, &access_conf, &hosts_tab}) {
        out += std::to_string(part->size()) + "\n" + *part;
    }
    return out;
}

std::optional<ConfigSnapshot> ConfigSnapshot::decode(std::string_view text) {
    constexpr std::string_view magic = "lonc-config v1\n";
    if (text.substr(0, magic.size()) != magic) {
        return std::nullopt;
    }
    text.remove_prefix(magic.size());
    ConfigSnapshot s;
    for (auto* part : {&s.options, &s.access_conf, &s.hosts_tab}) {
        const auto nl = text.find('\n');
        std::size_t n = 0;
        if (nl == std::string_view::npos || !number(text.substr(0, nl), n) ||
            n > text.size() - nl - 1) {
            return std::nullopt;
        }
        *part = std::string(text.substr(nl + 1, n));
        text.remove_prefix(nl + 1 + n);
    }
    if (!text.empty()) {
        return std::nullopt;
    }
    return s;
}

bool ConfigSnapshot::apply(Loaded& loaded, std::string& error) const {
    Options opts = loaded.opts;
    if (!apply_options_text(opts, options, error)) {
        return false;
    }
    auto cfg = config_from(opts.config, access_conf, hosts_tab);
    if (!cfg.ok()) {
        error = cfg.problems.empty() ? "unusable" : cfg.problems.back().to_string();
        return false;
    }
    loaded.opts = std::move(opts);
    loaded.config = std::move(cfg);
    return true;
}

int snapshot_fd(const ConfigSnapshot& snapshot) {
    UniqueFd fd(::memfd_create("lonc-config", MFD_CLOEXEC));
    if (!fd) {
        return -1;
    }
    const auto text = snapshot.encode();
    for (std::size_t off = 0; off < text.size();) {
        const auto n = ::write(fd.get(), text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        off += static_cast<std::size_t>(n);
    }
    return fd.release();
}

std::optional<ConfigSnapshot> read_snapshot(int fd) {
    UniqueFd owned(fd);
    if (::lseek(fd, 0, SEEK_SET) != 0) {
        return std::nullopt;
    }
    std::string text;
    char buf[16384];
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return std::nullopt;
        }
        if (n == 0) {
            break;
        }
        text.append(buf, static_cast<std::size_t>(n));
    }
    return ConfigSnapshot::decode(text);
}

Arrival Arrival::from_environment() {
    Arrival a;
    const char* text = std::getenv(handover_env);
    if (text == nullptr) {
        return a;
    }
    a.upgrading = true;
    std::string error;
    a.handover = Handover::decode(text, error);
    ::unsetenv(handover_env);
    if (!a.handover) {
        // Never expected: our own predecessor wrote it. Its children lost
        // their parent and drain; this process starts afresh in its place.
        a.problems.push_back(std::string("lonctl upgrade: cannot read ") + handover_env + ": " +
                             error + "; starting afresh");
        return a;
    }
    for (const int fd : a.handover->fds()) {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    return a;
}

void Arrival::close_the_rest() const {
    unsigned from = 3;
    for (const int fd : handover ? handover->fds() : std::vector<int>{}) {
        if (static_cast<unsigned>(fd) > from) {
            ::close_range(from, static_cast<unsigned>(fd) - 1, 0);
        }
        from = static_cast<unsigned>(fd) + 1;
    }
    ::close_range(from, ~0U, 0);
}

void Arrival::take_configuration(Loaded& loaded) {
    if (!handover || handover->config_fd < 0) {
        return;
    }
    std::string error;
    const auto snapshot = read_snapshot(std::exchange(handover->config_fd, -1));
    if (!snapshot) {
        error = "unreadable";
    } else {
        (void)snapshot->apply(loaded, error);
    }
    if (!error.empty()) {
        problems.push_back("lonctl upgrade: cannot take the old supervisor's configuration (" +
                           error + "); running with the files as they are now");
    }
}

std::string exec_handover(const std::string& exe, std::vector<std::string> argv,
                          const Handover& h) {
    const auto fds = h.fds();
    for (const int fd : fds) {
        ::fcntl(fd, F_SETFD, 0); // kept across the exec
    }
    ::setenv(handover_env, h.encode().c_str(), 1);
    if (argv.empty()) {
        argv.push_back(exe);
    }
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (auto& a : argv) {
        cargv.push_back(a.data());
    }
    cargv.push_back(nullptr);
    ::execv(exe.c_str(), cargv.data());
    const int e = errno;
    for (const int fd : fds) {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    ::unsetenv(handover_env);
    return std::strerror(e);
}

HandoverQueue::HandoverQueue(std::vector<std::string> peers, std::size_t window)
    : peers_(std::move(peers)), window_(window) {}

std::optional<std::string> HandoverQueue::next() {
    if (!failed_.empty() || active_ >= window_ || taken_ >= peers_.size()) {
        return std::nullopt;
    }
    ++active_;
    return peers_[taken_++];
}

void HandoverQueue::nothing_to_do() {
    --active_;
    ++handed_;
}

void HandoverQueue::handed() {
    --active_;
    ++handed_;
}

void HandoverQueue::failed(std::string what) {
    --active_;
    failed_.push_back(std::move(what));
}

bool HandoverQueue::finished() const noexcept {
    return active_ == 0 && (taken_ >= peers_.size() || !failed_.empty());
}

std::string HandoverQueue::outcome(std::string_view from, std::string_view to,
                                   double seconds) const {
    std::string text = fmt::format("lonc {} -> {}: {} of {} peers handed over in {:.1f} s", from,
                                   to, handed_, peers_.size(), seconds);
    if (!failed_.empty()) {
        const auto kept = peers_.size() - handed_;
        std::string list;
        for (const auto& f : failed_) {
            list += (list.empty() ? "" : "; ") + f;
        }
        text += fmt::format("; {} peer{} kept the old child: {}", kept, kept == 1 ? "" : "s", list);
    }
    return text;
}

std::string own_executable() {
    char buf[4096];
    const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        return {};
    }
    return {buf, static_cast<std::size_t>(n)};
}

} // namespace lonc
