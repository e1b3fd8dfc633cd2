// lonctl: the operator's and script's view of a running lonc. Parses the
// command line and calls into the library.
//
//   lonctl send HOST 'REQUEST' [--encrypt]   one request, as lonnet sends it
//
// Exit codes: 0 a reply was received (whatever its text), 1 usage,
// 2 con_lost, 3 no such host or no socket.
#include "lonc/config.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

enum : int { ok = 0, usage = 1, lost = 2, no_host = 3 };

// Connects, writes the line, reads one line (timeout in ms); false if the
// socket could not be reached at all.
bool one_request(const std::string& path, const std::string& line, int timeout_ms,
                 std::string& reply) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (fd >= 0) {
            ::close(fd);
        }
        return false;
    }
    const std::string out = line + "\n";
    if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
        ::close(fd);
        return true; // reached, but no answer: con_lost
    }
    char buf[65536];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) {
            break;
        }
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            break;
        }
        reply.append(buf, static_cast<std::size_t>(n));
        if (const auto nl = reply.find('\n'); nl != std::string::npos) {
            reply.resize(nl);
            ::close(fd);
            return true;
        }
    }
    reply.clear(); // lonnet treats no (complete) answer as con_lost
    ::close(fd);
    return true;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"lonctl - look at and talk through a running lonc"};
    app.require_subcommand(1);
    std::string config = "/etc/httpd/conf/access.conf";
    app.add_option("-c,--config", config, "LON-CAPA access.conf")->capture_default_str();

    auto* send =
        app.add_subcommand("send", "Send one request to HOST through lonc, print the reply");
    std::string host;
    std::string request;
    bool encrypt = false;
    double timeout = 310;
    send->add_option("HOST", host, "Host id (a socket in lonSockDir)")->required();
    send->add_option("REQUEST", request, "The request line")->required();
    send->add_flag("--encrypt", encrypt, "Send as encrypt:REQUEST (lond sees it encrypted)");
    send->add_option("--timeout", timeout, "Seconds to wait for the reply")->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? ok : usage;
    }

    const auto cfg = lonc::load_config(config);
    if (!cfg.settings) {
        for (const auto& p : cfg.problems) {
            std::fprintf(stderr, "lonctl: %s\n", p.to_string().c_str());
        }
        return usage;
    }
    if (*send) {
        if (!lonc::valid_host_id(host) || cfg.hosts.find(host) == nullptr) {
            std::fprintf(stderr, "lonctl: no such host: %s\n", host.c_str());
            return no_host;
        }
        if (request.find('\n') != std::string::npos) {
            std::fprintf(stderr, "lonctl: a request is one line\n");
            return usage;
        }
        std::string reply;
        const auto path = cfg.settings->socket_path(host).string();
        if (!one_request(path, encrypt ? "encrypt:" + request : request,
                         static_cast<int>(timeout * 1000), reply)) {
            std::fprintf(stderr,
                         "lonctl: no socket for %s (%s): is lonc running and the link up?\n",
                         host.c_str(), path.c_str());
            return no_host;
        }
        if (reply.empty() || reply == "con_lost") {
            std::printf("con_lost\n");
            return lost;
        }
        std::printf("%s\n", reply.c_str());
        return ok;
    }
    return usage;
}
