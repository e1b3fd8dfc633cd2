// hosts.tab parsing: any bytes give peers and problems, never a crash.
// Invariants: every accepted host id is a safe file name (it becomes
// lonSockDir/<id>: it must never leave that directory), ids are unique,
// addresses are IPv4, and the accepted entries read back unchanged.
#include "lonc/core/config.hpp"

#include <arpa/inet.h>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto tab = lonc::parse_hosts_tab(text, "hosts.tab");
    const std::filesystem::path sock_dir = "/home/httpd/sockets";
    std::set<std::string> ids;
    int last_line = 0;
    for (const auto& p : tab.peers) {
        FUZZ_CHECK(lonc::valid_host_id(p.id));
        FUZZ_CHECK(p.id != "." && p.id != ".." && p.id.find('/') == std::string::npos);
        FUZZ_CHECK(p.id.find('\0') == std::string::npos);
        const auto path = sock_dir / p.id;
        FUZZ_CHECK(path.parent_path() == sock_dir);
        FUZZ_CHECK(path.lexically_normal().parent_path() == sock_dir);
        FUZZ_CHECK(ids.insert(p.id).second);
        FUZZ_CHECK(p.line > last_line);
        last_line = p.line;
        char buf[INET_ADDRSTRLEN] = {};
        FUZZ_CHECK(::inet_ntop(AF_INET, &p.addr, buf, sizeof buf) != nullptr);
        in_addr again{};
        FUZZ_CHECK(::inet_pton(AF_INET, p.ip.c_str(), &again) == 1);
        FUZZ_CHECK(again.s_addr == p.addr.s_addr);
        FUZZ_CHECK(tab.find(p.id) == &p);
    }
    for (const auto& pr : tab.problems) {
        FUZZ_CHECK(pr.line >= 1);
    }
    // Round trip: the accepted entries, written out, read back the same with
    // no problems.
    std::string out;
    for (const auto& p : tab.peers) {
        out += p.id + ":" + p.domain + ":" + p.role + ":" + p.hostname + ":" + p.ip + "\n";
    }
    const auto tab2 = lonc::parse_hosts_tab(out, "again");
    FUZZ_CHECK(tab2.problems.empty());
    FUZZ_CHECK(tab2.peers.size() == tab.peers.size());
    for (std::size_t i = 0; i < tab.peers.size(); ++i) {
        const auto& a = tab.peers[i];
        const auto& b = tab2.peers[i];
        FUZZ_CHECK(a.id == b.id && a.domain == b.domain && a.role == b.role &&
                   a.hostname == b.hostname && a.ip == b.ip && a.addr.s_addr == b.addr.s_addr);
    }
    return 0;
}
