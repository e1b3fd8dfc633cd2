// The supervisor<->child messages: what parse() takes and refuses, the
// typed payloads, and a Channel over a real socketpair in an event loop.
#include "lonc/core/child_report.hpp"
#include "lonc/runtime/event_loop.hpp"
#include "lonc/runtime/ipc.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace lonc {
namespace {

std::optional<ipc::Message> parse(const std::string& datagram, std::string& error) {
    return ipc::parse(datagram, error);
}

std::string msg(ipc::Type t, const std::string& payload = "") {
    return std::string(1, static_cast<char>(t)) + payload;
}

TEST(IpcParse, EveryTypeWithAGoodPayload) {
    std::string error;
    const std::vector<std::pair<ipc::Type, std::string>> good = {
        {ipc::Type::status_request, "7"},
        {ipc::Type::retry, ""},
        {ipc::Type::reconnect, ""},
        {ipc::Type::spool_hint, "1700000000.123.msul2"},
        {ipc::Type::spool_hint, "*"},
        {ipc::Type::drain, ""},
        {ipc::Type::options, "request-timeout = 30\n"},
        {ipc::Type::status_reply, ChildReport{}.encode()},
        {ipc::Type::link_state, "up"},
        {ipc::Type::link_state, "down"},
    };
    for (const auto& [type, payload] : good) {
        const auto m = parse(msg(type, payload), error);
        ASSERT_TRUE(m) << static_cast<char>(type) << ": " << error;
        EXPECT_EQ(m->type, type);
        EXPECT_EQ(m->payload, payload);
    }
}

TEST(IpcParse, BadPayloadsSayWhy) {
    const std::vector<std::tuple<ipc::Type, std::string, std::string>> bad = {
        {ipc::Type::status_request, "", "status request without a generation number"},
        {ipc::Type::status_request, "12a", "status request without a generation number"},
        {ipc::Type::status_request, "-1", "status request without a generation number"},
        {ipc::Type::status_request, "99999999999999999999",
         "status request without a generation number"},
        {ipc::Type::retry, "x", "unexpected payload"},
        {ipc::Type::reconnect, "x", "unexpected payload"},
        {ipc::Type::drain, "x", "unexpected payload"},
        {ipc::Type::spool_hint, "", "bad spool file name"},
        {ipc::Type::spool_hint, "../etc/passwd", "bad spool file name"},
        {ipc::Type::spool_hint, std::string(256, 'a'), "bad spool file name"},
        {ipc::Type::options, "", "options without values"},
        {ipc::Type::status_reply, "generation=1\n", "malformed status report: missing field link"},
        {ipc::Type::status_reply, "nonsense",
         "malformed status report: last line without a newline"},
        {ipc::Type::link_state, "sideways", "bad link state"},
        {ipc::Type::link_state, "", "bad link state"},
    };
    for (const auto& [type, payload, why] : bad) {
        std::string error;
        EXPECT_FALSE(parse(msg(type, payload), error)) << static_cast<char>(type) << payload;
        EXPECT_EQ(error, why) << static_cast<char>(type) << payload;
    }
}

TEST(IpcParse, UnknownAndEmptyMessages) {
    std::string error;
    EXPECT_FALSE(parse("X", error));
    EXPECT_EQ(error, "unknown message type");
    EXPECT_FALSE(parse(std::string(1, '\0'), error));
    EXPECT_EQ(error, "unknown message type");
    EXPECT_FALSE(parse("", error));
    EXPECT_EQ(error, "empty message");
}

TEST(IpcPayloads, GenerationBothWays) {
    EXPECT_EQ(ipc::encode_generation(42), "42");
    EXPECT_EQ(ipc::decode_generation("42"), 42U);
    EXPECT_EQ(ipc::decode_generation(ipc::encode_generation(18446744073709551615ULL)),
              18446744073709551615ULL);
    EXPECT_FALSE(ipc::decode_generation(""));
    EXPECT_FALSE(ipc::decode_generation(" 1"));
    EXPECT_FALSE(ipc::decode_generation("+1"));
}

TEST(IpcSend, OversizedMessagesAreNotSent) {
    auto [a, b] = ipc::make_pair();
    EXPECT_FALSE(ipc::send(a.get(), ipc::Type::options, std::string(ipc::max_message, 'x')));
    EXPECT_TRUE(ipc::send(a.get(), ipc::Type::options, std::string(ipc::max_message - 1, 'x')));
}

// Runs the loop until done() or a 10 s deadline.
template <typename Done> bool run_until(EventLoop& loop, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        loop.run_once(std::chrono::milliseconds(100));
    }
    return done();
}

struct Seen {
    std::vector<ipc::Message> messages;
    std::optional<std::string> closed;
};

TEST(IpcChannel, DeliversMessagesInOrderAndReportsClose) {
    EventLoop loop;
    auto [parent_end, child_end] = ipc::make_pair();
    Seen parent;
    Seen child;
    std::optional<ipc::Channel> to_child;
    to_child.emplace(
        loop, std::move(parent_end), [&](const ipc::Message& m) { parent.messages.push_back(m); },
        [&](std::string_view why) { parent.closed = std::string(why); });
    std::optional<ipc::Channel> to_parent;
    to_parent.emplace(
        loop, std::move(child_end), [&](const ipc::Message& m) { child.messages.push_back(m); },
        [&](std::string_view why) { child.closed = std::string(why); });

    ASSERT_TRUE(to_child->send(ipc::Type::status_request, ipc::encode_generation(3)));
    ASSERT_TRUE(to_child->send(ipc::Type::retry));
    ChildReport report;
    report.generation = 3;
    report.requests = 99;
    ASSERT_TRUE(to_parent->send(ipc::Type::status_reply, report.encode()));
    ASSERT_TRUE(
        run_until(loop, [&] { return child.messages.size() == 2 && !parent.messages.empty(); }));
    EXPECT_EQ(child.messages[0].type, ipc::Type::status_request);
    EXPECT_EQ(ipc::decode_generation(child.messages[0].payload), 3U);
    EXPECT_EQ(child.messages[1].type, ipc::Type::retry);
    std::string error;
    const auto got = ChildReport::decode(parent.messages.at(0).payload, error);
    ASSERT_TRUE(got) << error;
    EXPECT_EQ(got->requests, 99U);

    to_child.reset(); // the parent goes away: the child hears EOF
    ASSERT_TRUE(run_until(loop, [&] { return child.closed.has_value(); }));
    EXPECT_EQ(*child.closed, "closed by the other end");
    EXPECT_FALSE(to_parent->send(ipc::Type::link_state, "up"));
}

TEST(IpcChannel, ABadMessageClosesTheChannelWithTheReason) {
    EventLoop loop;
    auto [a, b] = ipc::make_pair();
    Seen seen;
    std::optional<ipc::Channel> ch;
    ch.emplace(
        loop, std::move(b), [&](const ipc::Message& m) { seen.messages.push_back(m); },
        [&](std::string_view why) { seen.closed = std::string(why); });
    const std::string junk = "lsideways";
    ASSERT_EQ(::send(a.get(), junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
    ASSERT_TRUE(run_until(loop, [&] { return seen.closed.has_value(); }));
    EXPECT_EQ(*seen.closed, "bad message: bad link state");
    EXPECT_TRUE(seen.messages.empty());
    EXPECT_EQ(ch->fd(), -1);
}

// A reload's options reach a child whose socket buffer was full when they
// were sent: kept, then sent once the child reads again; a later set
// replaces one still waiting.
TEST(IpcChannel, OptionsWaitForRoomInsteadOfBeingDropped) {
    EventLoop loop;
    auto [a, b] = ipc::make_pair();
    Seen seen;
    std::optional<ipc::Channel> parent;
    parent.emplace(
        loop, std::move(a), [&](const ipc::Message& m) { seen.messages.push_back(m); },
        [&](std::string_view why) { seen.closed = std::string(why); });
    std::size_t hints = 0;
    while (parent->send(ipc::Type::spool_hint, "*")) {
        ++hints; // fill the child's receive queue
    }
    ASSERT_GT(hints, 0U);
    EXPECT_TRUE(parent->send_or_queue(ipc::Type::options, "log-level = info\n"));
    EXPECT_TRUE(parent->send_or_queue(ipc::Type::options, "log-level = debug\n"));
    // The child reads everything: hints, then the last options.
    std::vector<ipc::Message> got;
    std::array<char, ipc::max_message + 1> buf{};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline &&
           (got.empty() || got.back().type != ipc::Type::options)) {
        loop.run_once(std::chrono::milliseconds(10));
        ssize_t n = 0;
        while ((n = ::recv(b.get(), buf.data(), buf.size(), MSG_DONTWAIT)) > 0) {
            std::string error;
            auto m = ipc::parse(std::string_view(buf.data(), static_cast<std::size_t>(n)), error);
            ASSERT_TRUE(m) << error;
            got.push_back(std::move(*m));
        }
    }
    ASSERT_EQ(got.size(), hints + 1);
    EXPECT_EQ(got.back().type, ipc::Type::options);
    EXPECT_EQ(got.back().payload, "log-level = debug\n");
    EXPECT_FALSE(seen.closed);
}

} // namespace
} // namespace lonc
