#include "suite.hpp"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/utsname.h>
#include <thread>
#include <unistd.h>

#include "perf_count.hpp"
#include "proc_stats.hpp"

namespace lonc::bench {
namespace {

using test::children_of;
using test::LoncInstance;
using test::memory;
using test::minor_faults;
using test::run_ns;
using test::sample;
using test::tick_us;
using test::tree;

using namespace std::chrono_literals;

// Hosts of the main world.
constexpr int self_host = 0;
constexpr int fast_host = 1; // lond-sim --service-us 0
constexpr int slow_host = 2; // lond-sim --service-us 200
constexpr unsigned slow_service_us = 200;

std::string first_line_of(const std::string& file, const std::string& key) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) == 0) {
            const auto colon = line.find(':');
            auto v = colon == std::string::npos ? line : line.substr(colon + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
    }
    return "?";
}

std::string loadavg() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

std::uint64_t count_lines(const std::filesystem::path& file) {
    std::ifstream in(file);
    return static_cast<std::uint64_t>(
        std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

class Bench {
public:
    Bench(const Binaries& bin, const SuiteOptions& opts) : bin_(bin), opts_(opts) {}
    Report run();

private:
    void start_main_world();
    LoncInstance& lonc(const Setup& s);
    [[nodiscard]] LoadSpec spec_for(const Case& c);
    LoadResult run_case(const Case& c);
    void count_syscalls(Row& row);
    void run_crowd();
    void run_mix();
    void run_fanout();
    void compute_goals();
    [[nodiscard]] const Row* find(const Case& c) const;

    const Binaries& bin_;
    const SuiteOptions& opts_;
    Report rep_;
    std::unique_ptr<BenchWorld> world_;
    std::vector<std::pair<Setup, LoncInstance*>> loncs_;
    std::filesystem::path relay_fast_, relay_slow_;
    LoncInstance* default_lonc_ = nullptr; // lonc's default link settings (links on demand)
};

void Bench::start_main_world() {
    world_ = std::make_unique<BenchWorld>(bin_, 3);
    world_->start_sim(self_host);
    world_->start_sim(fast_host, {"--service-us", "0"});
    world_->start_sim(slow_host, {"--service-us", std::to_string(slow_service_us)});
    relay_fast_ = world_->start_relay(fast_host);
    relay_slow_ = world_->start_relay(slow_host);
    std::vector<Setup> setups = {
        {Server::lonc, 1, 1}, {Server::lonc, 1, 8}, {Server::lonc, 4, 1}, {Server::lonc, 4, 8}};
    for (const auto& s : setups) {
        // A fixed number of links: no more are opened on demand.
        auto& l = world_->start_lonc(fmt::format("c{}p{}", s.connections, s.pipeline),
                                     {"--connections", std::to_string(s.connections),
                                      "--max-connections", std::to_string(s.connections),
                                      "--pipeline", std::to_string(s.pipeline)});
        loncs_.emplace_back(s, &l);
    }
    for (auto& [s, l] : loncs_) {
        if (!world_->wait_sockets(*l, {self_host, fast_host, slow_host}, 60s)) {
            throw std::runtime_error("lonc " + l->name + " did not create its sockets; see " +
                                     l->log().string());
        }
    }
}

LoncInstance& Bench::lonc(const Setup& s) {
    for (auto& [setup, l] : loncs_) {
        if (setup == s) {
            return *l;
        }
    }
    throw std::logic_error("no lonc instance for " + s.label());
}

LoadSpec Bench::spec_for(const Case& c) {
    LoadSpec spec;
    const int host = c.service_us == 0 ? fast_host : slow_host;
    switch (c.setup.server) {
    case Server::direct:
        spec.target.tcp_addr = world_->addr(host);
        spec.target.tcp_port = world_->port();
        spec.target.source = world_->addr(self_host);
        break;
    case Server::bare:
        spec.target.unix_path = (host == fast_host ? relay_fast_ : relay_slow_).string();
        spec.server = {world_->relay_pid(host)};
        break;
    case Server::lonc: {
        auto& l = lonc(c.setup);
        spec.target.unix_path = l.socket(world_->id(host)).string();
        spec.server = tree(l.proc.pid());
        break;
    }
    }
    spec.sim = {world_->sim_pid(host)};
    spec.pattern = c.pattern;
    spec.clients = c.clients;
    spec.warmup = opts_.warmup;
    spec.seconds = opts_.seconds;
    spec.request =
        std::string(c.encrypt ? "encrypt:" : "") + (c.big ? "bytes:65536:{token}" : "echo:{token}");
    spec.reply_size = c.big ? 65536 : 0;
    return spec;
}

LoadResult Bench::run_case(const Case& c) {
    return run_load(spec_for(c));
}

// Counts the server's syscalls over a separate run with perf attached (the
// tracepoint costs a little per syscall, so this run's throughput is not
// reported). Everything the server does in perf's window is this load's:
// it is idle otherwise.
void Bench::count_syscalls(Row& row) {
    if (!PerfCount::available() || row.c.setup.server == Server::direct) {
        return;
    }
    auto spec = spec_for(row.c);
    spec.warmup = 0;
    spec.seconds = std::max(0.5, opts_.seconds / 2);
    try {
        PerfCount perf({"raw_syscalls:sys_enter"}, spec.server, world_->dir().path());
        perf.enable();
        const auto res = run_load(spec);
        perf.disable();
        const auto counts = perf.finish();
        if (const auto it = counts.find("raw_syscalls:sys_enter");
            it != counts.end() && res.total > 0) {
            row.server_syscalls = it->second / static_cast<double>(res.total);
        }
    } catch (const std::exception& e) {
        std::cerr << "lonc-bench: no syscall count for " << row.c.label() << ": " << e.what()
                  << "\n";
    }
}

const Row* Bench::find(const Case& c) const {
    for (const auto& r : rep_.rows) {
        if (r.c == c && !r.scaling) {
            return &r;
        }
    }
    return nullptr;
}

void Bench::run_crowd() {
    auto& l = lonc({Server::lonc, 1, 1});
    LoadSpec spec;
    spec.target.unix_path = l.socket(world_->id(fast_host)).string();
    spec.pattern = Pattern::persistent;
    spec.clients = opts_.crowd_clients;
    spec.requests_per_client = opts_.crowd_requests;
    spec.warmup = 0;
    spec.deadline = 120;
    spec.server = tree(l.proc.pid());
    std::cout << fmt::format("crowd: {} persistent clients, {} requests each ...\n", spec.clients,
                             spec.requests_per_client)
              << std::flush;
    const auto r = run_load(spec);
    auto& c = rep_.crowd;
    c.clients = spec.clients;
    c.served = r.served_clients;
    c.requests = r.requests;
    c.errors = r.errors;
    c.crossed = r.crossed;
    c.connect_errors = r.connect_errors;
    c.seconds = r.seconds;
    c.p99_us = r.p99_us;
    c.max_us = r.max_us;
    std::cout << fmt::format("crowd: {} of {} clients served, {} requests, {} errors, {} crossed, "
                             "{} failed connects, {:.2f} s\n",
                             c.served, c.clients, c.requests, c.errors, c.crossed, c.connect_errors,
                             c.seconds);
}

// A counter of the peer in a metrics file ("name{peer="h1"} N"), or -1.
double metric(const std::filesystem::path& file, const std::string& name, const std::string& peer) {
    std::ifstream in(file);
    const auto key = name + "{peer=\"" + peer + "\"} ";
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) == 0) {
            return std::stod(line.substr(key.size()));
        }
    }
    return -1;
}

// Quick requests beside slow ones to the same host (issue 25): 4 clients
// of echo requests alone, then with 2 clients sending 2 s requests
// (lond-sim's sleep) to the same host at the same time; for lonc's
// defaults (links on demand) and for one link, the original's.
void Bench::run_mix() {
    // Started now: its metrics (every 0.5 s) would disturb the other rows.
    const auto metrics = world_->dir() / "lonc-default/logs/metrics.prom";
    default_lonc_ = &world_->start_lonc(
        "default", {"--metrics-file", metrics.string(), "--metrics-interval", "0.5"});
    if (!world_->wait_sockets(*default_lonc_, {self_host, fast_host}, 60s)) {
        throw std::runtime_error("lonc default did not create its sockets");
    }
    const std::pair<const char*, LoncInstance*> sides[] = {
        {"default (on demand)", default_lonc_},
        {"one link (c1, max 1)", &lonc({Server::lonc, 1, 1})}};
    std::cout << "\nquick requests beside slow ones (4 quick clients, 2 clients of sleep:2000):\n";
    for (unsigned round = 0; round < opts_.mix_runs; ++round) {
        for (const auto& [name, l] : sides) {
            LoadSpec quick;
            quick.target.unix_path = l->socket(world_->id(fast_host)).string();
            quick.pattern = Pattern::persistent;
            quick.clients = 4;
            quick.warmup = 0.3;
            quick.seconds = 3;
            quick.server = tree(l->proc.pid());
            const auto alone = run_load(quick);
            LoadSpec slow = quick;
            slow.clients = 2;
            slow.request = "sleep:2000:{token}";
            slow.warmup = 0;
            slow.seconds = quick.warmup + quick.seconds + 0.2;
            slow.server = {};
            LoadResult slow_r;
            std::thread t([&] { slow_r = run_load(slow); });
            std::this_thread::sleep_for(50ms); // the slow ones are on the wire first
            const auto mixed = run_load(quick);
            t.join();
            auto cpu_us = [](const LoadResult& r) {
                return r.requests == 0 ? 0.0
                                       : static_cast<double>(r.server_after.cpu_ticks -
                                                             r.server_before.cpu_ticks) *
                                             tick_us() / static_cast<double>(r.requests);
            };
            std::string links = "-";
            if (l == default_lonc_) {
                std::this_thread::sleep_for(1200ms); // a fresh metrics file
                const auto peer = world_->id(fast_host);
                links = fmt::format("opened {:.0f}, closed {:.0f}",
                                    metric(metrics, "lonc_links_opened_total", peer),
                                    metric(metrics, "lonc_links_closed_total", peer));
            }
            std::cout << fmt::format(
                             "  {:<22} quick alone: {:.0f} req/s, p99 {:.0f} us, CPU {:.1f} "
                             "us/req; beside "
                             "slow: "
                             "{:.0f} req/s, p99 {:.0f} us ({:.2f}x), max {:.0f} us, CPU {:.1f} "
                             "us/req; slow "
                             "answered {}; errors {}; links {}\n",
                             name, alone.rps, alone.p99_us, cpu_us(alone), mixed.rps, mixed.p99_us,
                             alone.p99_us > 0 ? mixed.p99_us / alone.p99_us : 0.0, mixed.max_us,
                             cpu_us(mixed), slow_r.total,
                             alone.errors + mixed.errors + alone.crossed + mixed.crossed, links)
                      << std::flush;
            std::this_thread::sleep_for(2500ms); // the slow requests still out finish
        }
    }
}

void Bench::run_fanout() {
    auto& f = rep_.fanout;
    f.peers = opts_.fanout_peers;
    if (f.peers == 0) {
        return;
    }
    BenchWorld w(bin_, static_cast<int>(f.peers));
    w.start_sim(-1);
    std::vector<int> all;
    all.reserve(static_cast<std::size_t>(w.size()));
    for (int i = 0; i < w.size(); ++i) {
        all.push_back(i);
    }
    std::cout << fmt::format("fan-out: {} peers ...\n", f.peers) << std::flush;
    const auto t0 = std::chrono::steady_clock::now();
    auto& l = w.start_lonc("fanout", {}); // default settings
    const bool ok = w.wait_sockets(l, all, 60s);
    const auto t1 = std::chrono::steady_clock::now();
    if (ok) {
        f.seconds = std::chrono::duration<double>(t1 - t0).count();
    }
    for (const int h : all) {
        f.sockets += std::filesystem::exists(l.socket(w.id(h))) ? 1U : 0U;
    }
    const auto kids = children_of(l.proc.pid());
    f.children = static_cast<unsigned>(kids.size());
    double child_ns = 0;
    double faults = 0;
    for (const auto pid : kids) {
        child_ns += static_cast<double>(run_ns(pid));
        faults += static_cast<double>(minor_faults(pid));
    }
    if (!kids.empty()) {
        f.child_cpu_ms_mean = child_ns / 1e6 / static_cast<double>(kids.size());
        f.child_faults_mean = faults / static_cast<double>(kids.size());
    }
    f.parent_cpu_ms = static_cast<double>(run_ns(l.proc.pid())) / 1e6;
    const auto sim = sample({w.sim_pid(-1)});
    f.sim_cpu_ms = static_cast<double>(sim.cpu_ticks) * tick_us() / 1e3;
    std::this_thread::sleep_for(500ms); // settle: the children are idle now
    double pss = 0, pd = 0, pd_max = 0;
    unsigned n = 0;
    for (const auto pid : kids) {
        if (const auto m = memory(pid)) {
            pss += static_cast<double>(m->pss_kib);
            pd += static_cast<double>(m->private_dirty_kib);
            pd_max = std::max(pd_max, static_cast<double>(m->private_dirty_kib));
            ++n;
        }
    }
    if (n > 0) {
        f.pss_kib_mean = pss / n;
        f.private_dirty_kib_mean = pd / n;
        f.private_dirty_kib_max = pd_max;
    }
    if (const auto m = memory(l.proc.pid())) {
        f.parent_pss_kib = static_cast<double>(m->pss_kib);
        f.parent_private_dirty_kib = static_cast<double>(m->private_dirty_kib);
    }
    std::cout << fmt::format("fan-out: {} of {} sockets in {:.2f} s; {} children, private dirty "
                             "mean {:.0f} KiB, max {:.0f} KiB, PSS mean {:.0f} KiB; CPU: "
                             "supervisor {:.0f} ms, per child {:.2f} ms ({:.0f} page faults), "
                             "lond-sim {:.0f} ms\n",
                             f.sockets, f.peers, std::isnan(f.seconds) ? -1.0 : f.seconds,
                             f.children, f.private_dirty_kib_mean, f.private_dirty_kib_max,
                             f.pss_kib_mean, f.parent_cpu_ms, f.child_cpu_ms_mean,
                             f.child_faults_mean, f.sim_cpu_ms);
}

void Bench::compute_goals() {
    const auto focus = opts_.focus;
    auto row = [&](Setup s, Pattern p, unsigned clients, unsigned service = 0) {
        Case c;
        c.setup = s;
        c.pattern = p;
        c.clients = clients;
        c.service_us = service;
        return find(c);
    };
    // The median of the ratios of paired runs (run i of a and of b were
    // measured seconds apart, on the same machine state), else the ratio
    // of the medians.
    auto ratio = [](const Row* a, const Row* b, double Row::*field) {
        if (a == nullptr || b == nullptr) {
            return na;
        }
        const auto* va = field == &Row::rps ? &a->run_rps : &a->run_cpu;
        const auto* vb = field == &Row::rps ? &b->run_rps : &b->run_cpu;
        if (va->size() == vb->size() && !va->empty()) {
            std::vector<double> r;
            for (std::size_t i = 0; i < va->size(); ++i) {
                if ((*vb)[i] > 0 && !std::isnan((*va)[i])) {
                    r.push_back((*va)[i] / (*vb)[i]);
                }
            }
            if (!r.empty()) {
                std::sort(r.begin(), r.end());
                const auto n = r.size();
                return n % 2 == 1 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2;
            }
        }
        return b->*field > 0 ? a->*field / b->*field : na;
    };
    const Setup bare{Server::bare, 1, 1};
    const Setup c1p1{Server::lonc, 1, 1};
    const Setup c1p8{Server::lonc, 1, 8};
    const Setup c4p1{Server::lonc, 4, 1};
    const Setup direct{Server::direct, 1, 1};
    const auto* d1 = row(direct, Pattern::persistent, 1);
    for (const auto p : {Pattern::persistent, Pattern::lonnet}) {
        const auto* l = row(c1p1, p, focus);
        const auto* b = row(bare, p, focus);
        rep_.goals.push_back({fmt::format("lonc ÷ bare relay, {}, {} clients, --pipeline 1: "
                                          "throughput",
                                          to_string(p), focus),
                              ratio(l, b, &Row::rps), 0.9, true, ""});
        rep_.goals.push_back({fmt::format("lonc ÷ bare relay, {}, {} clients, --pipeline 1: CPU "
                                          "per request",
                                          to_string(p), focus),
                              ratio(l, b, &Row::server_cpu_us), 1.2, false, ""});
    }
    rep_.goals.push_back(
        {fmt::format("lonc --connections 1 ÷ direct-1, persistent, {} clients", focus),
         ratio(row(c1p1, Pattern::persistent, focus), d1, &Row::rps), 0.8, true, ""});
    rep_.goals.push_back(
        {fmt::format("lonc --pipeline 8 ÷ direct-1, persistent, {} clients, service 0", focus),
         ratio(row(c1p8, Pattern::persistent, focus), d1, &Row::rps), 2.0, true, ""});
    rep_.goals.push_back(
        {fmt::format("lonc --connections 4 ÷ --connections 1, persistent, {} clients, service "
                     "{} µs",
                     focus, slow_service_us),
         ratio(row(c4p1, Pattern::persistent, focus, slow_service_us),
               row(c1p1, Pattern::persistent, focus, slow_service_us), &Row::rps),
         3.0, true, ""});
    const auto& f = rep_.fanout;
    rep_.goals.push_back(
        {fmt::format("{} peers: lonc start to all sockets", f.peers), f.seconds, 3.0, false, " s"});
    rep_.goals.push_back({fmt::format("{} peers: private dirty memory per child (max)", f.peers),
                          f.private_dirty_kib_max / 1024, 1.0, false, " MiB"});
    const auto& c = rep_.crowd;
    rep_.goals.push_back({fmt::format("{} persistent clients: clients served", c.clients),
                          static_cast<double>(c.served), static_cast<double>(c.clients), true, ""});
    rep_.goals.push_back({fmt::format("{} persistent clients: errors", c.clients),
                          static_cast<double>(c.errors + c.crossed + c.connect_errors), 0, false,
                          ""});
}

Report Bench::run() {
    utsname u{};
    ::uname(&u);
    char date[64];
    const auto now = std::time(nullptr);
    tm utc{};
    ::gmtime_r(&now, &utc);
    rep_.date = std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &utc) > 0 ? date : "?";
    rep_.kernel = u.release;
    rep_.cpus = static_cast<unsigned>(::sysconf(_SC_NPROCESSORS_ONLN));
    rep_.cpu_model = first_line_of("/proc/cpuinfo", "model name");
    rep_.load_before = loadavg();
    rep_.focus = opts_.focus;
    rep_.settings =
        fmt::format("Each row: {:.1f} s measured after {:.1f} s warm-up; rows at {} "
                    "clients and the references: median of {} runs, interleaved; "
                    "other client counts: median of {}.",
                    opts_.seconds, opts_.warmup, opts_.focus, opts_.repeats, opts_.scaling_repeats);

    if (opts_.rows || opts_.crowd_clients > 0 || opts_.mix) {
        start_main_world();
    }
    std::vector<std::uint64_t> log_lines;
    for (auto& [s, l] : loncs_) {
        log_lines.push_back(count_lines(l->log()));
    }
    std::cout << row_header() << "\n" << std::flush;

    // Scaling rows, once each (the focus count is in the repeated group).
    std::vector<Setup> scaling = {{Server::bare, 1, 1}, {Server::lonc, 1, 1}};
    if (opts_.all_setups) {
        scaling.push_back({Server::lonc, 1, 8});
        scaling.push_back({Server::lonc, 4, 1});
    }
    std::vector<Case> once;
    for (const auto p : {Pattern::persistent, Pattern::lonnet}) {
        for (const auto n : opts_.clients) {
            for (const auto& s : scaling) {
                once.push_back({s, p, n});
            }
        }
    }
    // The repeated group: references and every row at the focus count.
    const Setup bare{Server::bare, 1, 1};
    const Setup direct{Server::direct, 1, 1};
    const Setup c1p1{Server::lonc, 1, 1}, c1p8{Server::lonc, 1, 8}, c4p1{Server::lonc, 4, 1},
        c4p8{Server::lonc, 4, 8};
    const auto f = opts_.focus;
    const auto per = Pattern::persistent;
    const auto lon = Pattern::lonnet;
    // Rows that a target compares stand next to each other: their paired
    // runs are seconds apart and share the machine's state.
    const auto slow = slow_service_us;
    std::vector<Case> group = {{direct, per, 1}, {c1p1, per, f}, {bare, per, f}};
    if (opts_.all_setups) {
        group.push_back({c1p8, per, f});
        group.push_back({c4p1, per, f});
    }
    group.push_back({bare, lon, f});
    group.push_back({c1p1, lon, f});
    if (opts_.all_setups) {
        group.push_back({c1p8, lon, f});
        group.push_back({c4p1, lon, f});
    }
    for (const auto& c : std::initializer_list<Case>{
             {c1p1, per, f, false, false, slow},
             {c4p1, per, f, false, false, slow},
             {bare, per, f, false, false, slow},
             {c1p8, per, f, false, false, slow},
             {c4p8, per, f, false, false, slow},
             {direct, per, 1, false, false, slow},
             {bare, lon, f, false, false, slow},
             {c1p1, lon, f, false, false, slow},
             {c4p1, lon, f, false, false, slow},
             {c1p1, per, f, true},
             {c1p8, per, f, true},
             {c1p1, lon, f, true},
             {c1p8, lon, f, true},
             {direct, per, 1, false, true},
             {bare, per, f, false, true},
             {c1p1, per, f, false, true},
             {c1p8, per, f, false, true},
             {bare, lon, f, false, true},
             {c1p1, lon, f, false, true},
             {c1p8, lon, f, false, true},
         }) {
        group.push_back(c);
    }

    if (!opts_.rows) {
        once.clear();
        group.clear();
    }
    std::vector<std::vector<LoadResult>> once_runs(once.size());
    for (unsigned rep = 0; rep < opts_.scaling_repeats; ++rep) {
        for (std::size_t i = 0; i < once.size(); ++i) {
            once_runs[i].push_back(run_case(once[i]));
            std::cout << row_line(make_row(once[i], {once_runs[i].back()})) << "\n" << std::flush;
        }
    }
    for (std::size_t i = 0; i < once.size(); ++i) {
        rep_.rows.push_back(make_row(once[i], once_runs[i]));
        rep_.rows.back().scaling = true;
    }
    std::vector<std::vector<LoadResult>> runs(group.size());
    for (unsigned rep = 0; rep < opts_.repeats; ++rep) {
        for (std::size_t i = 0; i < group.size(); ++i) {
            runs[i].push_back(run_case(group[i]));
            std::cout << row_line(make_row(group[i], {runs[i].back()})) << "  (run " << rep + 1
                      << ")\n"
                      << std::flush;
        }
    }
    std::vector<Row> focus_rows;
    for (std::size_t i = 0; i < group.size(); ++i) {
        focus_rows.push_back(make_row(group[i], runs[i]));
    }
    if (opts_.syscalls) {
        for (auto& r : focus_rows) {
            const bool wanted = !r.c.encrypt && !r.c.big && r.c.service_us == 0 &&
                                (r.c.setup == bare || r.c.setup == c1p1 || r.c.setup == c1p8);
            if (wanted) {
                count_syscalls(r);
            }
        }
    }
    std::cout << "\nmedians:\n" << row_header() << "\n";
    for (auto& r : focus_rows) {
        std::cout << row_line(r) << "\n";
        rep_.rows.push_back(std::move(r));
    }
    std::cout << std::flush;
    if (opts_.mix) {
        run_mix();
    }
    if (opts_.crowd_clients > 0) {
        run_crowd();
    }
    for (std::size_t i = 0; i < loncs_.size(); ++i) {
        rep_.lonc_log_lines += count_lines(loncs_[i].second->log()) - log_lines[i];
    }
    world_.reset();
    loncs_.clear();
    run_fanout();
    rep_.load_after = loadavg();
    compute_goals();
    return rep_;
}

void write_summary(const Report& r, const std::filesystem::path& file) {
    std::ofstream out(file, std::ios::trunc);
    const auto& f = r.fanout;
    const auto& c = r.crowd;
    std::uint64_t crossed = 0;
    std::uint64_t errors = 0;
    for (const auto& row : r.rows) {
        crossed += row.crossed;
        errors += row.errors;
    }
    out << "key,value\n";
    out << "rows," << r.rows.size() << "\n";
    out << "crossed," << crossed + c.crossed << "\n";
    out << "errors," << errors << "\n";
    out << "lonc_log_lines_under_load," << r.lonc_log_lines << "\n";
    out << "fanout_peers," << f.peers << "\nfanout_sockets," << f.sockets << "\n";
    out << "fanout_seconds," << f.seconds << "\nfanout_children," << f.children << "\n";
    out << "fanout_private_dirty_kib_max," << f.private_dirty_kib_max << "\n";
    out << "fanout_private_dirty_kib_mean," << f.private_dirty_kib_mean << "\n";
    out << "fanout_pss_kib_mean," << f.pss_kib_mean << "\n";
    out << "fanout_parent_cpu_ms," << f.parent_cpu_ms << "\n";
    out << "fanout_child_cpu_ms_mean," << f.child_cpu_ms_mean << "\n";
    out << "fanout_child_faults_mean," << f.child_faults_mean << "\n";
    out << "fanout_sim_cpu_ms," << f.sim_cpu_ms << "\n";
    out << "crowd_clients," << c.clients << "\ncrowd_served," << c.served << "\n";
    out << "crowd_errors," << c.errors << "\ncrowd_crossed," << c.crossed << "\n";
    out << "crowd_connect_errors," << c.connect_errors << "\n";
}

void write_goals(const Report& r, const std::filesystem::path& file) {
    std::ofstream out(file, std::ios::trunc);
    out << "target,measured,goal,met\n";
    for (const auto& g : r.goals) {
        out << "\"" << g.what << "\"," << g.value << "," << (g.at_least ? ">=" : "<=") << g.limit
            << "," << (g.met() ? "yes" : "no") << "\n";
    }
}

} // namespace

Report run_suite(const Binaries& bin, const SuiteOptions& opts) {
    Bench b(bin, opts);
    auto rep = b.run();
    if (!opts.out_dir.empty()) {
        std::filesystem::create_directories(opts.out_dir);
        write_csv(rep, opts.out_dir / "results.csv");
        write_markdown(rep, opts.out_dir / "results.md");
        write_plot_data(rep, opts.out_dir);
        write_summary(rep, opts.out_dir / "summary.csv");
        write_goals(rep, opts.out_dir / "targets.csv");
    }
    if (!opts.rows && opts.crowd_clients == 0 && opts.fanout_peers == 0) {
        return rep; // the mix alone: it has no target rows
    }
    std::cout << "\ntargets:\n";
    for (const auto& g : rep.goals) {
        std::cout << fmt::format("  {:<4} {}: {:.2f}{} (goal {} {:.2f}{})\n",
                                 g.met() ? "met" : "MISS", g.what, g.value, g.unit,
                                 g.at_least ? ">=" : "<=", g.limit, g.unit);
    }
    return rep;
}

} // namespace lonc::bench
