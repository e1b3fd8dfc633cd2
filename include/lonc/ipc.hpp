// Messages between the supervisor and a child, over one SOCK_SEQPACKET
// socketpair per child: one datagram a message, a type byte then a payload,
// every message length-checked. EOF from the parent means "quit".
#pragma once

#include "lonc/event_loop.hpp"
#include "lonc/fd.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lonc::ipc {

enum class Type : char {
    // parent -> child
    status_request = 'S', // payload: generation (decimal)
    retry = 'R',          // links that are down: reconnect now
    reconnect = 'C',      // every link: close (if up) and connect again now
    spool_hint = 'F',     // payload: a delayed/ file name for this child's host
    drain = 'D',          // finish what is in flight, then exit
    options = 'O',        // payload: new option values, "name = value" lines (a reload)
    // child -> parent
    status_reply = 's', // payload: fields (below)
    link_state = 'l',   // payload: "up" or "down"
};

constexpr std::size_t max_message = 65536;

struct Message {
    Type type{};
    std::string payload;
};

// Parses one datagram; nullopt (and why) for an unknown type or a payload
// that does not fit the type.
[[nodiscard]] std::optional<Message> parse(std::string_view datagram, std::string& error);

// Sends one message without blocking; false if it could not (the peer is
// gone or not reading: callers treat messages as hints they may repeat).
bool send(int fd, Type type, std::string_view payload = {});

// Creates a socketpair for a child: first is the parent's end.
[[nodiscard]] std::pair<UniqueFd, UniqueFd> make_pair();

// key=value lines; values may hold anything but are escaped (\n, \\).
using Fields = std::vector<std::pair<std::string, std::string>>;
[[nodiscard]] std::string encode_fields(const Fields& fields);
[[nodiscard]] std::optional<Fields> decode_fields(std::string_view text);
[[nodiscard]] const std::string* find(const Fields& fields, std::string_view key);

// One end of a socketpair in an event loop.
class Channel final : public EventLoop::Watcher {
public:
    using OnMessage = std::function<void(const Message&)>;
    using OnClose = std::function<void(std::string_view why)>;
    Channel(EventLoop& loop, UniqueFd fd, OnMessage on_message, OnClose on_close);
    ~Channel();
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;

    bool send(Type type, std::string_view payload = {}) const;
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    void on_events(std::uint32_t events) override;

private:
    void close(std::string_view why);
    EventLoop& loop_;
    UniqueFd fd_;
    OnMessage on_message_;
    OnClose on_close_;
};

} // namespace lonc::ipc
