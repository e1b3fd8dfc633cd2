#include "lonc/relay/spooler.hpp"

#include "lonc/core/control_words.hpp"
#include "lonc/runtime/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <iterator>
#include <memory>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("spool");
}

// How far back in lonnet.perm.log to look for a record a crash may have
// written already.
constexpr off_t perm_log_window = off_t{8} * 1024 * 1024;
// Waits shorter than this are no wait (the loop's timers round up to 1 ms).
constexpr double no_wait = 0.001;
// A file that changed while it was read is read again no sooner than this.
constexpr double changing_wait = 1.0;
// A message lond did not answer in time waits this many request timeouts
// at most before it goes out again.
constexpr double max_timeout_backoff = 10.0;

// Failures that say nothing about the file: this process is out of
// descriptors or memory for a moment. Such a file is never set aside.
bool transient_error(int e) {
    return e == EMFILE || e == ENFILE || e == ENOMEM || e == EINTR;
}

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

timespec wall_now() {
    timespec t{};
    ::clock_gettime(CLOCK_REALTIME, &t);
    return t;
}

std::string name_text(std::string_view name) {
    return log::printable(name);
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Perl's scalar localtime, as lonnet and lonc end a perm-log line with:
// "Thu Jan  1 00:00:00 1970" (the day padded with a space).
bool is_perl_localtime(std::string_view t) {
    constexpr std::string_view shape = "Aaa Aaa _9 99:99:99 9999";
    if (t.size() != shape.size()) {
        return false;
    }
    for (std::size_t i = 0; i < shape.size(); ++i) {
        const char c = t[i];
        bool ok = false;
        switch (shape[i]) {
        case 'A':
            ok = c >= 'A' && c <= 'Z';
            break;
        case 'a':
            ok = c >= 'a' && c <= 'z';
            break;
        case '_':
            ok = c == ' ' || is_digit(c);
            break;
        case '9':
            ok = is_digit(c);
            break;
        default:
            ok = c == shape[i];
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

// True when lonnet.perm.log has an S line for host:cmd written at or after
// `since` (epoch seconds): the record of a delivery a crash interrupted.
bool perm_log_has(const std::filesystem::path& file, const std::string& host,
                  const std::string& cmd, std::time_t since) {
    std::string data;
    {
        const UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) {
            return false;
        }
        struct stat st {};
        if (::fstat(fd.get(), &st) == 0) {
            const off_t from = st.st_size > perm_log_window ? st.st_size - perm_log_window : 0;
            data.resize(static_cast<std::size_t>(st.st_size - from));
            const auto n = ::pread(fd.get(), data.data(), data.size(), from);
            data.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        }
    }
    const std::string needle = ":S:" + host + ":" + cmd + ":";
    for (auto pos = data.find(needle); pos != std::string::npos; pos = data.find(needle, pos + 1)) {
        // Only "<epoch>:S:host:cmd:<localtime>" is this record: not the
        // record of a longer command that starts with cmd (put:a:b:c for
        // put:a:b), nor a line that merely holds the needle.
        const auto bol = data.rfind('\n', pos);
        const auto start = bol == std::string::npos ? 0 : bol + 1;
        const auto epoch = std::string_view(data).substr(start, pos - start);
        const auto tail_from = pos + needle.size();
        const auto eol = data.find('\n', tail_from);
        if (epoch.empty() || !std::all_of(epoch.begin(), epoch.end(), is_digit) ||
            eol == std::string::npos ||
            !is_perl_localtime(std::string_view(data).substr(tail_from, eol - tail_from))) {
            continue;
        }
        const auto when = std::strtoll(data.c_str() + start, nullptr, 10);
        if (when >= since - 1) {
            return true;
        }
    }
    return false;
}

// The retries of a set-aside file, kept on the file (bad_retries_attr);
// 0 when it has none, or the filesystem keeps no user attributes (then
// the count is this child's alone).
unsigned retries_on_file(const std::string& file) {
    char buf[16] = {};
    const auto n = ::getxattr(file.c_str(), bad_retries_attr, buf, sizeof buf - 1);
    unsigned out = 0;
    if (n > 0) {
        (void)std::from_chars(buf, buf + n, out);
    }
    return out;
}

void note_retries(const std::string& file, unsigned n) {
    const auto text = std::to_string(n);
    (void)::setxattr(file.c_str(), bad_retries_attr, text.data(), text.size(), 0);
}

} // namespace

std::size_t finish_departed_records(const Settings& settings, const std::set<std::string>& peers,
                                    std::size_t max_line) {
    std::map<std::string, std::vector<std::string>> markers; // host -> marker names
    const auto entries = list_spool(settings.spool_dir());
    if (!entries) {
        return 0;
    }
    for (const auto& e : *entries) {
        if (e.kind == SpoolKind::sent && peers.count(e.host) == 0) {
            markers[e.host].push_back(e.name);
        }
    }
    std::size_t done = 0;
    for (const auto& [host, names] : markers) {
        const auto lock_file = settings.sock_dir / ".lonc-spool" / (host + ".lock");
        const UniqueFd lock(::open(lock_file.c_str(), O_RDWR | O_CLOEXEC)); // none: no child
        if (lock && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
            continue; // its draining child still settles them
        }
        for (const auto& name : names) {
            const auto p = settings.spool_dir() / name;
            struct stat st {};
            if (::stat(p.c_str(), &st) != 0) {
                continue;
            }
            const auto file = read_spool_file(p, max_line);
            if (file.result == SpoolRead::ok &&
                !perm_log_has(settings.perm_log_file(), host, file.line, st.st_ctime) &&
                !log::perm(settings.perm_log_file(), "S:" + host + ":" + file.line)) {
                continue; // no room in the perm log yet: the next call
            }
            if (::unlink(p.c_str()) == 0) {
                ++done;
                lg().info("INFO: completed the delivery record of {} ({} is no longer in "
                          "hosts.tab)",
                          name_text(name), host);
            }
        }
    }
    return done;
}

Spooler::Spooler(EventLoop& loop, const Settings& settings, std::string host, const Options& opts,
                 Enqueue enqueue)
    : loop_(loop), settings_(settings), host_(std::move(host)), opts_(opts),
      enqueue_(std::move(enqueue)), later_timer_(loop, [this] { on_later(); }),
      rescan_(loop, [this] {
          if (active_) {
              scan();
          } else if (!answered_.empty()) {
              settle_all(); // bookkeeping goes on while the link is down
              rescan_.arm_in(seconds(opts_.spool_rescan));
          }
      }) {}

std::uint64_t Spooler::oldest() const noexcept {
    std::uint64_t oldest = files_.empty() ? 0 : files_.begin()->epoch;
    auto consider = [&](std::uint64_t epoch) {
        if (oldest == 0 || epoch < oldest) {
            oldest = epoch;
        }
    };
    for (const auto& [entry, due] : later_) {
        consider(entry.epoch);
    }
    if (const auto n = parse_spool_name(inflight_)) {
        consider(n->epoch);
    }
    return oldest;
}

void Spooler::start() {
    active_ = true;
    scan();
}

void Spooler::stop() {
    active_ = false;
    healthy_since_ = {};
    files_.clear();
    later_.clear();
    later_timer_.cancel();
    seen_.clear();
    if (answered_.empty()) {
        rescan_.cancel();
    }
}

void Spooler::hint(std::string_view name) {
    if (!active_) {
        return;
    }
    if (name == "*") {
        scan();
        return;
    }
    auto entry = spool_entry(name);
    if (!entry || entry->kind != SpoolKind::pending || entry->host != host_ || name == inflight_) {
        return;
    }
    if (later_.count(*entry) != 0) {
        return; // looked at again when it is due
    }
    files_.insert(std::move(*entry));
    next();
}

// One process per host delivers: the lock is held for the child's life.
// No lock, no delivery (another process may hold it): a lock file that
// cannot be opened (EMFILE, say) is tried again at the next scan.
bool Spooler::take_lock() {
    if (lock_) {
        return true;
    }
    const auto dir = settings_.sock_dir / ".lonc-spool";
    ::mkdir(dir.c_str(), 0700);
    const auto file = dir / (host_ + ".lock");
    UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) {
        if (!lock_warned_) {
            lg().warn("Cannot open {}: {}; {}'s delayed messages wait until it can be opened",
                      file.string(), std::strerror(errno), host_);
            lock_warned_ = true;
        }
        return false;
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (!lock_warned_ && predecessor_) {
            lg().info("INFO: the child this one replaces delivers {}'s delayed messages until it "
                      "exits",
                      host_);
        } else if (!lock_warned_) {
            lg().warn("Another lonc process is delivering {}'s delayed messages; waiting for it",
                      host_);
        }
        lock_warned_ = true;
        return false;
    }
    if (lock_warned_) {
        lg().info("INFO: delivering {}'s delayed messages now", host_);
    }
    lock_ = std::move(fd);
    return true;
}

void Spooler::scan() {
    rescan_.arm_in(seconds(opts_.spool_rescan));
    settle_all();
    if (!take_lock()) {
        return;
    }
    files_.clear();
    const auto entries = list_spool(settings_.spool_dir());
    if (!entries) {
        return;
    }
    std::vector<std::string> markers;
    std::vector<std::string> bad;
    for (const auto& e : *entries) {
        if (e.host != host_) {
            continue;
        }
        switch (e.kind) {
        case SpoolKind::bad:
            bad.emplace_back(e.base());
            break;
        case SpoolKind::sent:
            // A marker of a delivery this process still settles is its own.
            if (answered_.count(std::string(e.base())) == 0) {
                markers.push_back(e.name);
            }
            break;
        case SpoolKind::pending:
            if (e.name != inflight_ && later_.count(e) == 0) {
                files_.insert(e);
            }
            break;
        }
    }
    for (const auto& m : markers) {
        finish_record(m);
    }
    retry_set_aside(bad);
    next();
}

// Set-aside messages come back by themselves once the peer has been
// healthy for a while: each at most once per --spool-bad-hold (counted
// from when it was set aside), bad_retries times in all.
void Spooler::retry_set_aside(const std::vector<std::string>& bad) {
    const double hold = opts_.spool_bad_hold;
    if (bad.empty() || healthy_since_ == EventLoop::TimePoint{} ||
        loop_.now() - healthy_since_ < seconds(hold / 10)) {
        return;
    }
    for (const auto& name : bad) {
        // Only a put-back message gets an entry: count_death() reads one as
        // "retried" (an operator's put-back gets every attempt).
        const auto it = retried_.find(name);
        const auto from = path(name).string() + std::string(bad_suffix);
        const unsigned tries =
            std::max(it == retried_.end() ? 0U : it->second, retries_on_file(from));
        struct stat st {};
        if (tries >= bad_retries || ::lstat(from.c_str(), &st) != 0) {
            continue;
        }
        const timespec now = wall_now();
        const double age = static_cast<double>(now.tv_sec - st.st_ctim.tv_sec) +
                           static_cast<double>(now.tv_nsec - st.st_ctim.tv_nsec) * 1e-9;
        if (age < hold) {
            continue; // set aside (or put back and set aside again) too recently
        }
        if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, path(name).c_str(), RENAME_NOREPLACE) !=
            0) {
            continue; // a new message of that name waits: the .bad one after it
        }
        retried_[name] = tries + 1;
        note_retries(path(name).string(), tries + 1);
        strikes_.erase(name);
        lg().info("INFO: Delayed message {} set aside {:.0f} s ago is tried again (retry {} of "
                  "{}); one more death with it on the wire sets it aside again",
                  name_text(name), age, tries + 1, bad_retries);
        if (auto e = spool_entry(name)) {
            files_.insert(std::move(*e));
        }
    }
}

void Spooler::next() {
    if (!active_ || !req_ || !lock_) { // one message out at a time
        return;
    }
    if (suspect_) {
        send_probe();
        return;
    }
    while (!files_.empty()) {
        const auto entry = *files_.begin();
        files_.erase(files_.begin());
        if (held(entry.name)) {
            continue; // lond answered it: never sent again
        }
        if (const double wait = wait_for(entry.name, nullptr); wait > no_wait) {
            later(entry, wait);
            continue;
        }
        auto file = read_spool_file(path(entry.name), opts_.spool_max_line);
        if (file.result == SpoolRead::ok && file.changed) {
            // Rewritten as it was read: the line may not be the stamp's.
            later(entry, std::max(changing_wait, wait_for(entry.name, nullptr)));
            continue;
        }
        if (file.result == SpoolRead::ok) {
            if (const double wait = wait_for(entry.name, &file.stamp); wait > no_wait) {
                later(entry, wait); // changed as it was opened
                continue;
            }
            seen_.erase(entry.name);
            inflight_ = entry.name;
            inflight_stamp_ = file.stamp;
            req_->kind = Request::Kind::spool;
            req_->line = std::move(file.line);
            req_->arrived = loop_.now();
            req_->deadline = req_->arrived + seconds(opts_.request_timeout);
            req_->client = nullptr;
            enqueue_(std::move(req_));
            return;
        }
        if (file.result == SpoolRead::missing) {
            seen_.erase(entry.name);
            strikes_.erase(entry.name);
            continue; // gone meanwhile
        }
        if (file.result == SpoolRead::unreadable && transient_error(file.error)) {
            continue; // our trouble, not the file's: the next scan tries again
        }
        // Possibly still being written: judge it only once it stopped changing.
        const auto age = std::difftime(std::time(nullptr), file.mtime);
        if (file.mtime != 0 && age < opts_.spool_bad_age) {
            continue; // a hint or the next scan brings it back
        }
        const std::string why =
            std::string("is ") + to_string(file.result) +
            (file.error != 0 ? std::string(" (") + std::strerror(file.error) + ")" : "");
        (void)set_aside(entry.name, why, false);
    }
}

// Seconds until name may be opened (0: now): --spool-min-age after its
// last change (by its times, or by our own clock since we first saw this
// version), and the backoff of a message the link died on. opened: the
// version just opened (else the file is looked up).
double Spooler::wait_for(const std::string& name, const SpoolStamp* opened) {
    const auto now = loop_.now();
    double wait = 0;
    if (const auto it = strikes_.find(name); it != strikes_.end() && it->second.not_before > now) {
        wait = std::chrono::duration<double>(it->second.not_before - now).count();
    }
    if (opts_.spool_min_age <= 0) {
        return wait;
    }
    SpoolStamp stamp;
    if (opened != nullptr) {
        stamp = *opened;
    } else {
        struct stat st {};
        if (::lstat(path(name).c_str(), &st) != 0) {
            return wait; // reading it says what is wrong
        }
        stamp = stamp_of(st);
    }
    double age = spool_age(stamp, wall_now());
    auto& [seen, since] = seen_[name];
    if (seen == stamp && since != EventLoop::TimePoint{}) {
        age = std::max(age, std::chrono::duration<double>(now - since).count());
    } else {
        seen = stamp;
        since = now;
    }
    return std::max(wait, opts_.spool_min_age - age);
}

void Spooler::later(const SpoolEntry& entry, double wait) {
    if (!active_) {
        return; // the next start() scans everything
    }
    const auto due = loop_.now() + seconds(wait);
    later_[entry] = due;
    if (!later_timer_.armed() || due < later_timer_.deadline()) {
        later_timer_.arm_at(due);
    }
}

// Runs next() at the loop's next turn: never from inside a link's teardown,
// which has yet to tell the worker that the link is down.
void Spooler::kick() {
    if (active_ && (!later_timer_.armed() || later_timer_.deadline() > loop_.now())) {
        later_timer_.arm_at(loop_.now());
    }
}

void Spooler::on_later() {
    const auto now = loop_.now();
    auto next_due = EventLoop::TimePoint::max();
    for (auto it = later_.begin(); it != later_.end();) {
        if (it->second <= now) {
            files_.insert(it->first);
            it = later_.erase(it);
        } else {
            next_due = std::min(next_due, it->second);
            ++it;
        }
    }
    if (next_due != EventLoop::TimePoint::max()) {
        later_timer_.arm_at(next_due);
    }
    next();
}

bool Spooler::held(const std::string& name) const {
    const auto [from, to] = answered_.equal_range(name);
    return std::any_of(from, to, [](const auto& kv) { return !kv.second.file_done; });
}

bool Spooler::set_aside(const std::string& name, const std::string& why, bool critical) {
    const auto from = path(name);
    const auto to = from.string() + std::string(bad_suffix);
    seen_.erase(name);
    if (::rename(from.c_str(), to.c_str()) != 0) {
        if (warned_.insert(name).second) {
            lg().error("Delayed message {} {} and cannot be set aside: {}", name_text(name), why,
                       std::strerror(errno));
        }
        return false;
    }
    warned_.erase(name);
    strikes_.erase(name);
    ++stats_.bad;
    if (critical) {
        lg().error("Delayed message {} {}: set aside as {}{}", name_text(name), why,
                   name_text(name), bad_suffix);
    } else {
        lg().warn("Delayed message {} {}: set aside as {}{}", name_text(name), why, name_text(name),
                  bad_suffix);
    }
    return true;
}

void Spooler::done(RequestPtr req, std::optional<std::string_view> reply) {
    req_ = std::move(req);
    if (std::exchange(probing_, false)) {
        if (reply) {
            // Answered: the worker's peer_answered() has judged the death by
            // the connection; not proven by it, nothing is blamed.
            suspect_.reset();
        }
        kick();
        return;
    }
    const auto name = std::exchange(inflight_, std::string());
    if (!reply) {
        // con_lost: the file stays and goes out again first, once the loop
        // has seen the link down (this may run inside its teardown).
        if (const auto e = spool_entry(name)) {
            later(*e, 0);
        }
        kick();
        return;
    }
    if (reply->empty()) {
        // Not delivered either; the next scan tries it again (no hot loop).
        if (warned_.insert(name).second) {
            lg().warn("Delayed message {} got an empty answer; it stays", name_text(name));
        }
        kick();
        return;
    }
    ++stats_.delivered;
    strikes_.erase(name);
    warned_.erase(name);
    const auto text = *reply;
    const bool refused = starts_with(text, "refused") || starts_with(text, "rejected") ||
                         starts_with(text, "error") || starts_with(text, "unknown_cmd");
    if (refused) {
        ++stats_.refused;
        lg().warn("Delayed message {} was answered >{}< (counted as delivered)", name_text(name),
                  log::printable(text));
    } else {
        lg().info("Delayed {}: >{}<", log::redact(req_->line), log::printable(text));
    }
    Answered a{name, req_->line, inflight_stamp_};
    if (!settle(a)) {
        answered_.emplace(name, std::move(a));
        if (!rescan_.armed()) {
            rescan_.arm_in(seconds(opts_.spool_rescan));
        }
    }
    next();
}

void Spooler::died(RequestPtr req, std::string_view why, std::uint64_t conn) {
    req_ = std::move(req);
    healthy_since_ = {};
    if (std::exchange(probing_, false)) {
        // The probe's link died too: lond fails whatever it gets (a sick
        // peer), and the message the earlier link died on is not blamed.
        suspect_.reset();
        kick();
        return;
    }
    const auto name = std::exchange(inflight_, std::string());
    suspect_ = Suspect{name, std::string(why), conn};
    if (const auto e = spool_entry(name)) {
        later(*e, 0); // held back by the probe in next()
    }
    kick();
}

void Spooler::peer_answered(std::uint64_t conn) {
    if (healthy_since_ == EventLoop::TimePoint{}) {
        healthy_since_ = loop_.now();
    }
    if (!suspect_ || conn <= suspect_->conn) {
        return;
    }
    const auto s = std::move(*suspect_);
    suspect_.reset();
    count_death(s.name, s.why);
}

void Spooler::count_death(const std::string& name, const std::string& why) {
    auto& s = strikes_[name];
    ++s.deaths;
    const unsigned limit = retried_.count(name) != 0 ? 1 : opts_.spool_max_attempts;
    if (s.deaths >= limit) {
        const auto reason = "was on the wire each time the link to " + host_ + " died (" +
                            std::to_string(s.deaths) + " times; last: " + log::printable(why) + ")";
        if (!set_aside(name, reason, true)) {
            s.not_before = loop_.now() + seconds(opts_.retry_max);
        }
    } else {
        const double wait = std::min(
            opts_.retry_max, opts_.retry_min * std::pow(2.0, static_cast<double>(s.deaths)));
        s.not_before = loop_.now() + seconds(wait);
        if (s.deaths == 1) {
            lg().warn("The link to {} died with delayed message {} on it ({}), and lond answered "
                      "without it: it waits; after {} such deaths it is set aside",
                      host_, name_text(name), log::printable(why), limit);
        }
        if (const auto e = spool_entry(name)) {
            later(*e, wait);
        }
    }
    kick();
}

// Before anything else goes out after a link died on a message: is lond
// healthy without it?
void Spooler::send_probe() {
    probing_ = true;
    req_->kind = Request::Kind::spool;
    req_->line = "ping";
    req_->arrived = loop_.now();
    req_->deadline = req_->arrived + seconds(opts_.request_timeout);
    req_->client = nullptr;
    enqueue_(std::move(req_));
}

void Spooler::timed_out(RequestPtr req) {
    req_ = std::move(req);
    if (std::exchange(probing_, false)) {
        kick(); // lond hangs on ping: the probe goes out again on the next link
        return;
    }
    const auto name = std::exchange(inflight_, std::string());
    auto& s = strikes_[name];
    ++s.timeouts;
    const double factor =
        std::min(max_timeout_backoff, std::pow(2.0, static_cast<double>(s.timeouts - 1)));
    const double wait = std::max(opts_.retry_min, factor * opts_.request_timeout);
    s.not_before = loop_.now() + seconds(wait);
    if (s.timeouts == 1) {
        lg().warn("lond on {} did not answer delayed message {} within {} s: it waits {:.0f} s, "
                  "longer after each timeout, and is not set aside for it",
                  host_, name_text(name), opts_.request_timeout, wait);
    }
    if (const auto e = spool_entry(name)) {
        later(*e, wait);
    }
    kick();
}

void Spooler::settle_all() {
    for (auto it = answered_.begin(); it != answered_.end();) {
        it = settle(it->second) ? answered_.erase(it) : std::next(it);
    }
}

// The bookkeeping of a delivered message, as far as it goes now; false:
// more is to be done later (the record stays in answered_).
// The marker carries the record for the next process only: while a stays
// here, scan() leaves <name>.sent alone, so the S line is written once.
bool Spooler::settle(Answered& a) {
    if (!a.file_done) {
        const auto c = claim(a);
        if (c == Claim::failed) {
            return false;
        }
        a.file_done = true;
        a.marked = c == Claim::marked;
    }
    if (!a.recorded) {
        if (!record(a.line)) {
            if (!a.marked) {
                a.marked = leave_marker(a); // for the next process, should this one exit
            }
            return false;
        }
        a.recorded = true;
    }
    if (a.marked) {
        const auto marker = path(a.name).string() + std::string(sent_suffix);
        if (::unlink(marker.c_str()) != 0 && errno != ENOENT) {
            trouble(Step::unlink, "Cannot remove " + name_text(a.name) + ".sent: " +
                                      std::strerror(errno) + "; retried at the next scan");
            return false;
        }
        untrouble(Step::unlink);
    }
    return true;
}

// A delivery whose file was gone or rewritten has no marker: if its S line
// must wait, <name>.sent holding the line sent lets the next process write
// it, should this one exit first. Never over another delivery's marker.
bool Spooler::leave_marker(const Answered& a) {
    const auto marker = path(a.name).string() + std::string(sent_suffix);
    const UniqueFd fd(
        ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
        return false;
    }
    const std::string text = a.line + "\n";
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        ::unlink(marker.c_str());
        return false;
    }
    return true;
}

// Moves a delivered file out of the way (to <name>.sent), unless it no
// longer holds what was sent: then it stays for its own delivery.
Spooler::Claim Spooler::claim(const Answered& a) {
    const auto file = path(a.name);
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return Claim::left; // removed by someone else
        }
        trouble(Step::rename, "Cannot look at delivered message " + name_text(a.name) + ": " +
                                  std::strerror(errno) + "; it is not sent again");
        return Claim::failed;
    }
    const auto marker = file.string() + std::string(sent_suffix);
    if (!(stamp_of(st) == a.stamp) || !holds(file, a.line)) {
        lg().info("INFO: Delayed message {} was rewritten while it was delivered; the new "
                  "content is delivered in its turn",
                  name_text(a.name));
        if (auto e = spool_entry(a.name); e && active_) {
            files_.insert(std::move(*e));
        }
        return Claim::left;
    }
    // Never over an earlier delivery's marker (its record is not written
    // yet): this one waits, not sent again, until that one is settled.
    int renamed = ::renameat2(AT_FDCWD, file.c_str(), AT_FDCWD, marker.c_str(), RENAME_NOREPLACE);
    if (renamed != 0 && errno == EINVAL) {
        renamed = ::rename(file.c_str(), marker.c_str()); // no RENAME_NOREPLACE here
    }
    if (renamed != 0 && errno == EEXIST) {
        return Claim::failed;
    }
    if (renamed != 0) {
        trouble(Step::rename,
                "Delayed message " + name_text(a.name) +
                    " was delivered, but renaming it to .sent failed: " + std::strerror(errno) +
                    "; it is not sent again, and its bookkeeping is retried");
        return Claim::failed;
    }
    untrouble(Step::rename);
    // lonnet may have rewritten it between the look and the rename: then
    // the marker holds a message never sent. Put it back.
    struct stat mst {};
    if (::lstat(marker.c_str(), &mst) != 0 ||
        (stamp_of(mst).same_content(a.stamp) && holds(marker, a.line))) {
        return Claim::marked;
    }
    if (::renameat2(AT_FDCWD, marker.c_str(), AT_FDCWD, file.c_str(), RENAME_NOREPLACE) != 0) {
        (void)::rename(marker.c_str(), (file.string() + std::string(bad_suffix)).c_str());
        lg().error("Delayed message {} was rewritten as it was delivered and cannot be put back: "
                   "set aside as {}{}",
                   name_text(a.name), name_text(a.name), bad_suffix);
    }
    return Claim::left;
}

bool Spooler::holds(const std::filesystem::path& file, const std::string& line) const {
    const auto f = read_spool_file(file, opts_.spool_max_line);
    return f.result == SpoolRead::ok && f.line == line;
}

bool Spooler::record(const std::string& line) {
    if (!log::perm(settings_.perm_log_file(), "S:" + host_ + ":" + line)) {
        trouble(Step::perm, "Cannot append to " + settings_.perm_log_file().string() + ": " +
                                std::strerror(errno) +
                                "; delivered messages are recorded once it works again");
        return false;
    }
    untrouble(Step::perm);
    return true;
}

// A delivery whose record a crash (or a full disk) interrupted: write the
// S line unless it made it to lonnet.perm.log, then drop the marker.
void Spooler::finish_record(const std::string& marker) {
    const auto p = path(marker);
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
        return;
    }
    const auto file = read_spool_file(p, opts_.spool_max_line);
    if (file.result != SpoolRead::ok) {
        ::unlink(p.c_str());
        return;
    }
    if (!perm_log_has(settings_.perm_log_file(), host_, file.line, st.st_ctime)) {
        if (!record(file.line)) {
            return; // still no room: next pass
        }
        lg().info("INFO: completed the delivery record of {}", name_text(marker));
    }
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
        trouble(Step::unlink, "Cannot remove " + name_text(marker) + ": " + std::strerror(errno) +
                                  "; retried at the next scan");
        return;
    }
    untrouble(Step::unlink);
}

// One CRITICAL line when a bookkeeping step starts failing, one INFO line
// when it works again: never one per attempt (loncron counts CRITICAL lines).
const char* to_string(Spooler::Step step) noexcept {
    switch (step) {
    case Spooler::Step::rename:
        return "rename";
    case Spooler::Step::unlink:
        return "unlink";
    case Spooler::Step::perm:
        return "perm";
    }
    return "?";
}

void Spooler::trouble(Step step, const std::string& text) {
    if (troubles_.insert(step).second) {
        lg().error("{}", text);
    }
}

void Spooler::untrouble(Step step) {
    if (troubles_.erase(step) > 0) {
        lg().info("INFO: delayed messages of {}: the {} step works again", host_, to_string(step));
    }
}

} // namespace lonc
