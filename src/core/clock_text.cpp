#include "lonc/core/clock_text.hpp"

#include <cstdio>

namespace lonc {

std::string perl_localtime(std::time_t t) {
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    if (localtime_r(&t, &tm) == nullptr) {
        return "?";
    }
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, "%s %s %2d %02d:%02d:%02d %d",
                                days[static_cast<unsigned>(tm.tm_wday) % 7],
                                months[static_cast<unsigned>(tm.tm_mon) % 12], tm.tm_mday,
                                tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("?");
}

} // namespace lonc
