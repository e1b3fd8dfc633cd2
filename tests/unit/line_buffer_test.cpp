#include "lonc/core/line_buffer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lonc {
namespace {

std::vector<std::string> drain(LineBuffer& b) {
    std::vector<std::string> out;
    while (auto line = b.next_line()) {
        out.emplace_back(*line);
    }
    return out;
}

TEST(LineBuffer, SplitsAcrossChunks) {
    LineBuffer b(100);
    b.append("pi");
    EXPECT_TRUE(drain(b).empty());
    b.append("ng\nput:a:b\nge");
    EXPECT_EQ(drain(b), (std::vector<std::string>{"ping", "put:a:b"}));
    b.append("t\n\n");
    EXPECT_EQ(drain(b), (std::vector<std::string>{"get", ""}));
    EXPECT_EQ(b.buffered(), 0U);
    EXPECT_FALSE(b.overflowed());
}

TEST(LineBuffer, KeepsCarriageReturnAndNul) {
    LineBuffer b(100);
    b.append(std::string("a\r\nb\0c\n", 7));
    EXPECT_EQ(drain(b), (std::vector<std::string>{"a\r", std::string("b\0c", 3)}));
}

TEST(LineBuffer, ExactlyMaxLineIsFine) {
    LineBuffer b(8);
    b.append("12345678\n");
    EXPECT_EQ(drain(b), (std::vector<std::string>{"12345678"}));
    EXPECT_FALSE(b.overflowed());
}

TEST(LineBuffer, OverlongTerminatedLineOverflows) {
    LineBuffer b(8);
    b.append("123456789\nok\n");
    EXPECT_TRUE(drain(b).empty());
    EXPECT_TRUE(b.overflowed());
}

TEST(LineBuffer, AnOverlongLineStopsReadingAndNeverAllocatesPastTheLimit) {
    // A client's buffer (and the link's, bounded by --max-reply) may grow to
    // the limit, never to the next power of two above it: a 1 MiB + 1 line
    // limit must not cost 2 MiB per connection.
    for (const std::size_t max_line : {std::size_t{16}, std::size_t{1000}, std::size_t{1048576}}) {
        LineBuffer b(max_line);
        std::size_t fed = 0;
        for (;;) {
            auto space = b.prepare(4096);
            if (space.empty()) {
                break;
            }
            std::fill(space.begin(), space.end(), 'x');
            b.commit(space.size());
            fed += space.size();
            (void)b.next_line();
        }
        EXPECT_TRUE(b.overflowed());
        EXPECT_EQ(fed, max_line + 1); // a stream with no newline stops being read
        EXPECT_LE(b.capacity(), max_line + 1) << max_line;
        EXPECT_TRUE(b.prepare().empty());
    }
}

TEST(LineBuffer, ManyLinesReuseSpace) {
    LineBuffer b(64);
    for (int i = 0; i < 100000; ++i) {
        b.append("request " + std::to_string(i) + "\n");
        auto line = b.next_line();
        ASSERT_TRUE(line.has_value());
        EXPECT_EQ(*line, "request " + std::to_string(i));
    }
    EXPECT_LE(b.capacity(), 1024U);
}

TEST(LineBuffer, ResetFreesAndClearsOverflow) {
    LineBuffer b(4);
    b.append("123456");
    (void)b.next_line();
    EXPECT_TRUE(b.overflowed());
    b.reset();
    EXPECT_FALSE(b.overflowed());
    EXPECT_EQ(b.capacity(), 0U);
    b.append("ok\n");
    EXPECT_EQ(drain(b), (std::vector<std::string>{"ok"}));
}

TEST(LineBuffer, ClearForgetsEverythingButKeepsTheStorage) {
    LineBuffer b(8);
    b.append("one\ntw");
    EXPECT_EQ(drain(b), (std::vector<std::string>{"one"}));
    const auto cap = b.capacity();
    b.clear(); // the unterminated "tw" belongs to the old stream
    EXPECT_EQ(b.buffered(), 0U);
    EXPECT_EQ(b.capacity(), cap);
    b.append("new\n");
    EXPECT_EQ(drain(b), (std::vector<std::string>{"new"}));
    b.append("123456789");
    (void)b.next_line();
    EXPECT_TRUE(b.overflowed());
    b.clear();
    EXPECT_FALSE(b.overflowed());
    b.append("ok\n");
    EXPECT_EQ(drain(b), (std::vector<std::string>{"ok"}));
}

} // namespace
} // namespace lonc
