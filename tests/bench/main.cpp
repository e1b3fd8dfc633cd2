// lonc-bench: measures lonc against the references this machine allows
// (one lond link driven directly, and a bare relay), or drives any socket.
//
//   lonc-bench [--quick | --smoke] [--out DIR]        the whole benchmark
//   lonc-bench --socket PATH --clients C --seconds S --pattern lonnet|persistent
//              --request LINE                         load on any socket
//   lonc-bench --bare-relay PATH --lond IP:PORT --source IP   (internal)
#include "lonc/runtime/net.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include <arpa/inet.h>
#include <climits>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <unistd.h>

#include "bare_relay.hpp"
#include "measure.hpp"
#include "suite.hpp"

namespace {

using namespace lonc::bench;

int external(const std::string& socket, unsigned clients, double seconds,
             const std::string& pattern, const std::string& request, std::size_t reply_size) {
    LoadSpec spec;
    spec.target.unix_path = socket;
    spec.clients = clients;
    spec.seconds = seconds;
    spec.warmup = std::min(1.0, seconds / 10);
    spec.pattern = pattern == "lonnet" ? Pattern::lonnet : Pattern::persistent;
    spec.request = request;
    spec.reply_size = reply_size;
    const auto r = run_load(spec);
    std::cout << fmt::format("requests/s={:.1f} p50_us={:.0f} p99_us={:.0f} errors={}\n", r.rps,
                             r.p50_us, r.p99_us, r.errors + r.crossed);
    return 0;
}

int bare_relay(const std::string& path, const std::string& lond, const std::string& source) {
    const auto colon = lond.rfind(':');
    in_addr dst{};
    in_addr src{};
    if (colon == std::string::npos ||
        ::inet_pton(AF_INET, lond.substr(0, colon).c_str(), &dst) != 1 ||
        ::inet_pton(AF_INET, source.c_str(), &src) != 1) {
        std::cerr << "lonc-bench: --lond IP:PORT and --source IP are needed\n";
        return 2;
    }
    const auto port = static_cast<std::uint16_t>(std::stoul(lond.substr(colon + 1)));
    return run_bare_relay(path, dst, port, src);
}

std::string self_exe() {
    char buf[PATH_MAX];
    const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "lonc-bench";
}

int bench_main(int argc, char** argv) {
    CLI::App app{"lonc-bench: lonc against a bare relay and a direct lond link, on loopback"};
    bool quick = false;
    bool smoke = false;
    std::string out_dir;
    Binaries bin{lonc::test::lonc_binary(), lonc::test::lond_sim_binary(), self_exe(), {}};
    SuiteOptions opts;
    std::string socket;
    unsigned clients = 32;
    double seconds = 0;
    std::string pattern = "persistent";
    std::string request = "echo:{token}";
    std::size_t reply_size = 0;
    std::string relay_path, relay_lond, relay_source;
    unsigned repeats = 0;
    bool no_syscalls = false;
    unsigned fanout = UINT_MAX;
    unsigned crowd = UINT_MAX;

    app.add_flag("--quick", quick, "a short run: fewer client counts, one run per row");
    app.add_flag("--smoke", smoke, "seconds only: checks that everything runs and is correct");
    app.add_option("--out", out_dir, "write results.csv, results.md, summary.csv, plot data here");
    app.add_option("--seconds", seconds, "measured seconds per row (external mode: total)");
    app.add_option("--repeats", repeats, "runs of each row at 32 clients (median)");
    app.add_flag("--no-syscalls", no_syscalls, "do not count syscalls with perf");
    bool no_rows = false;
    app.add_flag("--no-rows", no_rows, "skip the request rows: only the crowd and fan-out runs");
    bool mix_only = false;
    app.add_flag("--mix-only", mix_only,
                 "only quick requests beside slow ones (the links-on-demand run), 3 times");
    app.add_option("--fanout-peers", fanout, "peers of the fan-out run (0: skip)");
    app.add_option("--crowd", crowd, "clients of the crowd run");
    app.add_option("--lonc", bin.lonc, "the lonc binary")->capture_default_str();
    app.add_option("--lond-sim", bin.lond_sim, "the lond-sim binary")->capture_default_str();
    app.add_option("--sanitizer-dir", bin.sanitizer_dir,
                   "sanitizer reports of lonc and lond-sim go here (log_path)");
    app.add_option("--socket", socket, "external mode: drive this UNIX socket");
    app.add_option("--clients", clients, "external mode: concurrent clients");
    app.add_option("--pattern", pattern, "external mode: lonnet or persistent")
        ->check(CLI::IsMember({"lonnet", "persistent"}));
    app.add_option("--request", request,
                   "external mode: the request line; {token} becomes a unique token and the "
                   "reply must then be that token (lond-sim's echo:{token})");
    app.add_option("--reply-size", reply_size,
                   "external mode: with {token}, the reply is this long and starts with it");
    app.add_option("--bare-relay", relay_path)->group("");
    app.add_option("--lond", relay_lond)->group("");
    app.add_option("--source", relay_source)->group("");
    CLI11_PARSE(app, argc, argv);

    (void)std::signal(SIGPIPE, SIG_IGN);
    lonc::raise_fd_limit();
    try {
        if (!relay_path.empty()) {
            return bare_relay(relay_path, relay_lond, relay_source);
        }
        if (!socket.empty()) {
            return external(socket, clients, seconds > 0 ? seconds : 10, pattern, request,
                            reply_size);
        }
        if (quick) {
            opts.seconds = 0.6;
            opts.warmup = 0.2;
            opts.repeats = 1;
            opts.scaling_repeats = 1;
            opts.clients = {1, 8, 32, 128};
        }
        if (smoke) {
            opts.seconds = 0.4;
            opts.warmup = 0.1;
            opts.repeats = 1;
            opts.scaling_repeats = 1;
            opts.focus = 8;
            opts.clients = {1, 8};
            opts.all_setups = false;
            opts.syscalls = false;
            opts.mix = false;
            opts.fanout_peers = 20;
            opts.crowd_clients = 300;
        }
        if (seconds > 0) {
            opts.seconds = seconds;
        }
        if (repeats > 0) {
            opts.repeats = repeats;
        }
        opts.rows = !no_rows;
        if (no_syscalls) {
            opts.syscalls = false;
        }
        if (fanout != UINT_MAX) {
            opts.fanout_peers = fanout;
        }
        if (crowd != UINT_MAX) {
            opts.crowd_clients = crowd;
        }
        if (mix_only) {
            opts.rows = false;
            opts.crowd_clients = 0;
            opts.fanout_peers = 0;
            opts.mix = true;
            opts.mix_runs = 3;
        }
        opts.out_dir = out_dir;
        const auto rep = run_suite(bin, opts);
        // Correctness is asserted, speed never: any crossed reply, error or
        // unserved client fails the run.
        std::uint64_t crossed = rep.crowd.crossed;
        std::uint64_t errors = rep.crowd.errors + rep.crowd.connect_errors;
        bool lonc_cpu = false;
        for (const auto& r : rep.rows) {
            crossed += r.crossed;
            errors += r.errors;
            if (r.crossed + r.errors > 0) {
                std::cerr << "lonc-bench: " << r.c.label() << ": " << r.errors << " errors, "
                          << r.crossed << " crossed (first: '" << r.first_bad << "')\n";
            }
            lonc_cpu = lonc_cpu || (r.c.setup.server == Server::lonc && r.server_cpu_us > 0);
        }
        lonc_cpu = lonc_cpu || !opts.rows;
        if (crossed > 0 || errors > 0 || rep.crowd.served != rep.crowd.clients || !lonc_cpu) {
            std::cerr << fmt::format("lonc-bench: FAILED: {} crossed replies, {} errors, {} of "
                                     "{} crowd clients served, lonc CPU {}\n",
                                     crossed, errors, rep.crowd.served, rep.crowd.clients,
                                     lonc_cpu ? "read" : "NOT read");
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "lonc-bench: " << e.what() << "\n";
        return 1;
    }
}

} // namespace

int main(int argc, char** argv) {
    try {
        return bench_main(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "lonc-bench: " << e.what() << "\n";
    } catch (...) {
        std::cerr << "lonc-bench: unknown error\n";
    }
    return 1;
}
