// The supervisor's control socket, lonSockDir/.lonc-control: a UNIX stream
// socket, mode 0600, owned by the daemon's user, for lonctl. A client
// writes one command line; the reply is everything lonc writes before it
// closes the connection. Replies may be deferred (status waits for the
// children), so a command is answered through its connection id.
//
//   status            the JSON of a fresh status generation (also written
//                     to loncstatus.json/.txt)
//   reconnect HOST    "ok", or "error:<why>"
//   reload            a reload (as HUP), answered once it is decided:
//                     "applied\n<what was done>\n" or "rejected\n<a reason a
//                     line>\n" (or "error:shutting_down")
//   upgrade           lonctl upgrade (upgrade.hpp), answered once every peer
//                     is handed over: "upgraded\n<what>\n", or "rejected\n
//                     <why>\n" (nothing changed), or "failed\n<what>\n"
//                     (some peers kept their old children)
//
// The words themselves are defined once, for lonc and lonctl, in
// lonc/core/control_words.hpp.
//
// A connection that sends no complete line within 10 s, or a line longer
// than 4096 bytes, is closed. At most 64 connections at a time.
#pragma once

#include "lonc/core/fd.hpp"
#include "lonc/runtime/event_loop.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace lonc {

class ControlServer final : public EventLoop::Watcher {
public:
    using ConnId = std::uint64_t;
    using Handler = std::function<void(ConnId id, std::string_view line)>;

    ControlServer(EventLoop& loop, std::filesystem::path path, Handler handler);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Creates the socket; false and a reason when it cannot.
    bool open(std::string& error);
    // Closes every connection and removes the socket.
    void close();
    // Sends text to connection id (if it is still there) and closes it.
    void answer(ConnId id, std::string text);
    // Connection id's descriptor (-1 if it is gone): lonctl upgrade keeps
    // the waiting connection open across the supervisor's exec.
    [[nodiscard]] int conn_fd(ConnId id) const;
    // A connection inherited across exec whose command was read already;
    // it is owed an answer().
    ConnId adopt(UniqueFd fd);

    void on_events(std::uint32_t events) override;

private:
    struct Conn final : EventLoop::Watcher {
        Conn(ControlServer& s, ConnId i, UniqueFd f) : server(s), id(i), fd(std::move(f)) {}
        void on_events(std::uint32_t events) override { server.conn_events(*this, events); }
        ControlServer& server;
        ConnId id;
        UniqueFd fd;
        std::string in;
        std::string out;
        std::size_t out_off = 0;
        bool asked = false; // a line arrived; the handler owes an answer
        EventLoop::TimePoint opened{};
    };

    void conn_events(Conn& c, std::uint32_t events);
    void flush(Conn& c);
    void drop(Conn& c);
    void expire();

    EventLoop& loop_;
    std::filesystem::path path_;
    Handler handler_;
    UniqueFd listener_;
    std::map<ConnId, Conn> conns_;
    ConnId next_id_ = 1;
    Timer expiry_;
};

} // namespace lonc
