// Messages between the supervisor and a child, over one SOCK_SEQPACKET
// socketpair per child: one datagram a message, a type byte then a payload,
// every message length-checked. EOF from the parent means "quit".
//
// The messages (type byte, direction, payload, when it is sent):
//
//   'S' status_request  parent -> child  generation, decimal
//       (encode_generation)   USR1, lonctl status, a reload, the metrics timer
//   'R' retry           parent -> child  none
//       USR1 or lonctl retry: links that are down reconnect now
//   'C' reconnect       parent -> child  none
//       lonctl reconnect: every link closes (if up) and connects again
//   'F' spool_hint      parent -> child  a delayed/ file name, or "*"
//       the spool watch saw a file for the child's host
//   'D' drain           parent -> child  none
//       TERM, or a reload that removed or changed the peer: finish, exit
//   'H' handoff         parent -> child  none
//       lonctl upgrade: a new child of the same peer holds the socket path
//       now; take the listener's backlog, answer every client, exit
//   'L' reclaim         parent -> child  none
//       lonctl upgrade gave up the new child, which may have put its socket
//       at the path before it died: put ours back there if it is not
//   'O' options         parent -> child  "name = value" lines
//       (child_options_text / apply_options_text in options.hpp)  a reload
//   's' status_reply    child -> parent  ChildReport::encode (child_report.hpp)
//       the answer to a status_request, carrying its generation
//   'l' link_state      child -> parent  "up" or "down" (to_string(LinkState))
//       whenever the child's first link comes up or its last goes down
//
// parse() checks each payload with the decoder named above; a message that
// fails closes the channel.
#pragma once

#include "lonc/core/child_report.hpp"
#include "lonc/core/fd.hpp"
#include "lonc/runtime/event_loop.hpp"

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
    status_request = 'S',
    retry = 'R',
    reconnect = 'C',
    spool_hint = 'F',
    drain = 'D',
    handoff = 'H',
    reclaim = 'L',
    options = 'O',
    // child -> parent
    status_reply = 's',
    link_state = 'l',
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

// The status_request payload.
[[nodiscard]] std::string encode_generation(std::uint64_t generation);
[[nodiscard]] std::optional<std::uint64_t> decode_generation(std::string_view payload) noexcept;

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
    // For a message that must not be dropped (a reload's options): sent now,
    // or, while the other end's buffer is full, kept (a later one of the
    // same type replaces it) and sent once the socket takes it. False only
    // when the channel is closed or the message too long.
    bool send_or_queue(Type type, std::string payload);
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    void on_events(std::uint32_t events) override;

private:
    void close(std::string_view why);
    void flush();
    EventLoop& loop_;
    UniqueFd fd_;
    std::vector<Message> queued_; // waiting for EPOLLOUT, oldest first
    OnMessage on_message_;
    OnClose on_close_;
};

} // namespace lonc::ipc
