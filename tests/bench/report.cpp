#include "report.hpp"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>
#include <tuple>

#include "proc_stats.hpp"

namespace lonc::bench {

using test::tick_us;
namespace {

double median(std::vector<double> v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
    if (v.empty()) {
        return na;
    }
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double per_request(double total, std::uint64_t requests) {
    return requests == 0 ? na : total / static_cast<double>(requests);
}

std::string num(double v, int decimals = 1) {
    if (std::isnan(v)) {
        return "-";
    }
    return fmt::format("{:.{}f}", v, decimals);
}

std::string csv_num(double v, int decimals = 2) {
    return std::isnan(v) ? "" : fmt::format("{:.{}f}", v, decimals);
}

std::string reply_label(const Case& c) {
    return c.big ? "64 KiB" : "small";
}

std::ofstream open_out(const std::filesystem::path& file) {
    std::ofstream out(file, std::ios::trunc);
    if (!out) {
        throw std::runtime_error("cannot write " + file.string());
    }
    return out;
}

// The throughput-vs-clients rows of one pattern: the servers in the order
// they first appear, and each client count's row per server.
struct Scaling {
    std::vector<std::string> series;
    std::map<unsigned, std::map<std::string, const Row*>> by_clients;
};

Scaling scaling(const Report& rep, Pattern pattern) {
    Scaling sc;
    for (const auto& r : rep.rows) {
        if (!r.scaling || r.c.pattern != pattern) {
            continue;
        }
        const auto s = r.c.setup.label();
        if (std::find(sc.series.begin(), sc.series.end(), s) == sc.series.end()) {
            sc.series.push_back(s);
        }
        sc.by_clients[r.c.clients][s] = &r;
    }
    return sc;
}

} // namespace

std::string Setup::label() const {
    switch (server) {
    case Server::direct:
        return "direct-1";
    case Server::bare:
        return "bare relay";
    case Server::lonc:
        break;
    }
    return fmt::format("lonc c{} p{}", connections, pipeline);
}

std::string Case::label() const {
    return fmt::format("{} {} {}cl{}{} s{}", setup.label(), to_string(pattern), clients,
                       encrypt ? " enc" : "", big ? " 64K" : "", service_us);
}

Row make_row(const Case& c, const std::vector<LoadResult>& runs) {
    Row r;
    r.c = c;
    r.runs = static_cast<unsigned>(runs.size());
    std::vector<double> rps, p50, p99, cpu, wake, sim, client;
    for (const auto& x : runs) {
        rps.push_back(x.rps);
        r.run_rps.push_back(x.rps);
        p50.push_back(x.p50_us);
        p99.push_back(x.p99_us);
        r.max_us = std::max(r.max_us, x.max_us);
        const auto n = x.requests;
        r.run_cpu.push_back(na);
        if (x.server_after.processes > 0) {
            cpu.push_back(per_request(
                static_cast<double>(x.server_after.cpu_ticks - x.server_before.cpu_ticks) *
                    tick_us(),
                n));
            r.run_cpu.back() = cpu.back();
            wake.push_back(per_request(
                static_cast<double>(x.server_after.voluntary_cs - x.server_before.voluntary_cs),
                n));
        }
        if (x.sim_after.processes > 0) {
            sim.push_back(per_request(
                static_cast<double>(x.sim_after.cpu_ticks - x.sim_before.cpu_ticks) * tick_us(),
                n));
        }
        client.push_back(per_request(static_cast<double>(x.client_cpu_us), n));
        r.requests += n;
        r.errors += x.errors;
        r.crossed += x.crossed;
        if (r.first_bad.empty()) {
            r.first_bad = x.first_bad;
        }
    }
    r.rps = median(rps);
    r.p50_us = median(p50);
    r.p99_us = median(p99);
    r.server_cpu_us = median(cpu);
    r.server_wakeups = median(wake);
    r.sim_cpu_us = median(sim);
    r.client_cpu_us = median(client);
    return r;
}

std::string row_header() {
    return fmt::format("{:<14} {:<10} {:>4} {:>3} {:>6} {:>4} {:>9} {:>7} {:>7} {:>8} {:>7} {:>6} "
                       "{:>6} {:>6} {:>6} {:>5} {:>5}",
                       "server", "pattern", "cl", "enc", "reply", "svc", "req/s", "p50us", "p99us",
                       "maxus", "cpu/rq", "wk/rq", "sc/rq", "sim", "client", "err", "cross");
}

std::string row_line(const Row& r) {
    return fmt::format("{:<14} {:<10} {:>4} {:>3} {:>6} {:>4} {:>9.0f} {:>7.0f} {:>7.0f} {:>8.0f} "
                       "{:>7} {:>6} {:>6} {:>6} {:>6} {:>5} {:>5}",
                       r.c.setup.label(), to_string(r.c.pattern), r.c.clients,
                       r.c.encrypt ? "yes" : "no", r.c.big ? "64K" : "small", r.c.service_us, r.rps,
                       r.p50_us, r.p99_us, r.max_us, num(r.server_cpu_us), num(r.server_wakeups, 2),
                       num(r.server_syscalls, 2), num(r.sim_cpu_us), num(r.client_cpu_us), r.errors,
                       r.crossed);
}

void write_csv(const Report& rep, const std::filesystem::path& file) {
    auto out = open_out(file);
    out << "set,server,connections,pipeline,pattern,clients,encrypt,reply_bytes,service_us,runs,"
           "requests,requests_per_s,p50_us,p99_us,max_us,server_cpu_us_per_req,"
           "server_wakeups_per_req,server_syscalls_per_req,lond_sim_cpu_us_per_req,"
           "client_cpu_us_per_req,errors,crossed\n";
    for (const auto& r : rep.rows) {
        const auto& c = r.c;
        const bool lonc = c.setup.server == Server::lonc;
        out << fmt::format(
            "{},{},{},{},{},{},{},{},{},{},{},{:.1f},{:.0f},{:.0f},{:.0f},{},{},{},{},{},"
            "{},{}\n",
            r.scaling ? "scaling" : "repeated",
            c.setup.server == Server::direct ? "direct-1"
            : c.setup.server == Server::bare ? "bare"
                                             : "lonc",
            lonc ? std::to_string(c.setup.connections) : "",
            lonc ? std::to_string(c.setup.pipeline) : "", to_string(c.pattern), c.clients,
            c.encrypt ? 1 : 0, c.big ? 65536 : 0, c.service_us, r.runs, r.requests, r.rps, r.p50_us,
            r.p99_us, r.max_us, csv_num(r.server_cpu_us), csv_num(r.server_wakeups, 3),
            csv_num(r.server_syscalls, 2), csv_num(r.sim_cpu_us), csv_num(r.client_cpu_us),
            r.errors, r.crossed);
    }
}

void write_markdown(const Report& rep, const std::filesystem::path& file) {
    auto out = open_out(file);
    out << fmt::format("Measured {} by `scripts/bench` on {} × {} (Linux {}); load average {} "
                       "before, {} after. {}\n\n",
                       rep.date, rep.cpus, rep.cpu_model, rep.kernel, rep.load_before,
                       rep.load_after, rep.settings);
    out << "**Targets** (ratios of rows measured in this same run):\n\n"
           "| target | measured | goal | |\n|---|---:|---:|---|\n";
    for (const auto& g : rep.goals) {
        out << fmt::format("| {} | {}{} | {} {}{} | {} |\n", g.what, num(g.value, 2), g.unit,
                           g.at_least ? "≥" : "≤", num(g.limit, 2), g.unit,
                           g.met() ? "met" : "**not met**");
    }
    out << "\n**Rows at " << rep.focus
        << " clients** and the references (medians of the repeated runs; CPU, "
           "wakeups and syscalls are per request, of the server: every lonc process, or the "
           "bare relay; lonc's wakeups are its voluntary context switches, i.e. the times its "
           "epoll_wait slept):\n\n"
           "| server | pattern | request | reply | lond µs | req/s | p50 µs | p99 µs | max µs | "
           "CPU µs | wakeups | syscalls | lond-sim CPU µs | client CPU µs | errors | crossed |\n"
           "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    std::vector<const Row*> focus;
    for (const auto& r : rep.rows) {
        if (!r.scaling && (r.c.clients == rep.focus || r.c.setup.server == Server::direct)) {
            focus.push_back(&r);
        }
    }
    // Plain small replies first, then encrypt:, then 64 KiB; service 0 first.
    std::stable_sort(focus.begin(), focus.end(), [](const Row* a, const Row* b) {
        const auto key = [](const Row* r) {
            return std::tuple(r->c.big, r->c.encrypt, r->c.service_us,
                              r->c.pattern == Pattern::lonnet, r->c.setup.server,
                              r->c.setup.connections, r->c.setup.pipeline);
        };
        return key(a) < key(b);
    });
    for (const auto* row : focus) {
        const auto& r = *row;
        out << fmt::format("| {} | {} | {} | {} | {} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {} | {} "
                           "| {} | {} | {} | {} | {} |\n",
                           r.c.setup.label(), to_string(r.c.pattern),
                           r.c.encrypt ? "encrypt:" : "plain", reply_label(r.c), r.c.service_us,
                           r.rps, r.p50_us, r.p99_us, r.max_us, num(r.server_cpu_us),
                           num(r.server_wakeups, 2), num(r.server_syscalls, 1), num(r.sim_cpu_us),
                           num(r.client_cpu_us), r.errors, r.crossed);
    }
    // Scaling: req/s by clients, one column per server, each pattern.
    for (const auto pattern : {Pattern::persistent, Pattern::lonnet}) {
        const auto [series, by_clients] = scaling(rep, pattern);
        if (by_clients.size() < 2) {
            continue;
        }
        out << fmt::format("\n**{} pattern, requests/s by clients** (lond-sim service 0, plain, "
                           "small replies; p99 µs in brackets):\n\n| clients |",
                           to_string(pattern));
        for (const auto& s : series) {
            out << " " << s << " |";
        }
        out << "\n|---:|";
        for (std::size_t i = 0; i < series.size(); ++i) {
            out << "---:|";
        }
        out << "\n";
        for (const auto& [clients, m] : by_clients) {
            out << "| " << clients << " |";
            for (const auto& s : series) {
                const auto it = m.find(s);
                out << (it == m.end() ? std::string(" - |")
                                      : fmt::format(" {:.0f} ({:.0f}) |", it->second->rps,
                                                    it->second->p99_us));
            }
            out << "\n";
        }
    }
    const auto& f = rep.fanout;
    out << fmt::format(
        "\n**Fan-out**: {} peers served by one `lond-sim --serve-all`, lonc with "
        "default settings: {} of {} sockets, all present {} s after lonc "
        "started; {} children, per child PSS {} KiB and private dirty {} KiB "
        "(mean; max {} KiB); the supervisor PSS {} KiB, private dirty {} KiB. "
        "CPU until then: the supervisor {} ms, each child {} ms ({} page "
        "faults), lond-sim {} ms.\n",
        f.peers, f.sockets, f.peers, num(f.seconds, 2), f.children, num(f.pss_kib_mean, 0),
        num(f.private_dirty_kib_mean, 0), num(f.private_dirty_kib_max, 0), num(f.parent_pss_kib, 0),
        num(f.parent_private_dirty_kib, 0), num(f.parent_cpu_ms, 0), num(f.child_cpu_ms_mean, 2),
        num(f.child_faults_mean, 0), num(f.sim_cpu_ms, 0));
    const auto& c = rep.crowd;
    out << fmt::format("\n**Crowd**: {} persistent clients on one socket (blocking connects), "
                       "{} served, {} requests, {} errors, {} crossed, {} failed connects, in "
                       "{:.2f} s (p99 {:.0f} µs, max {:.0f} µs).\n",
                       c.clients, c.served, c.requests, c.errors, c.crossed, c.connect_errors,
                       c.seconds, c.p99_us, c.max_us);
    out << fmt::format("\nlonc wrote {} lines to lonc.log while it relayed the load (nothing "
                       "is logged per request).\n",
                       rep.lonc_log_lines);
}

void write_plot_data(const Report& rep, const std::filesystem::path& dir) {
    for (const auto pattern : {Pattern::persistent, Pattern::lonnet}) {
        const auto [series, by_clients] = scaling(rep, pattern);
        auto out = open_out(dir / fmt::format("scaling-{}.dat", to_string(pattern)));
        out << "# clients";
        for (const auto& s : series) {
            out << fmt::format(" \"{} req/s\" \"{} p50\" \"{} p99\"", s, s, s);
        }
        out << "\n";
        for (const auto& [clients, m] : by_clients) {
            out << clients;
            for (const auto& s : series) {
                const auto it = m.find(s);
                if (it == m.end()) {
                    out << " NaN NaN NaN";
                } else {
                    out << fmt::format(" {:.1f} {:.0f} {:.0f}", it->second->rps, it->second->p50_us,
                                       it->second->p99_us);
                }
            }
            out << "\n";
        }
    }
    auto vars = open_out(dir / "plot-vars.gp");
    for (const auto pattern : {Pattern::persistent, Pattern::lonnet}) {
        const auto series = scaling(rep, pattern).series;
        vars << fmt::format("series_{} = {}\n", to_string(pattern), series.size());
        for (std::size_t i = 0; i < series.size(); ++i) {
            vars << fmt::format("name_{}_{} = \"{}\"\n", to_string(pattern), i + 1, series[i]);
        }
    }
    double direct = na;
    for (const auto& r : rep.rows) {
        if (r.c.setup.server == Server::direct && !r.c.big && r.c.service_us == 0) {
            direct = r.rps;
        }
    }
    vars << fmt::format("direct1 = {:.1f}\nmeasured = \"{}\"\n", std::isnan(direct) ? 0 : direct,
                        rep.date);
}

} // namespace lonc::bench
