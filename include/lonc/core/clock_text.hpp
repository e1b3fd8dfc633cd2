// Time as text in the forms the original's files use.
#pragma once

#include <ctime>
#include <string>

namespace lonc {

// Perl's scalar localtime: "%a %b %e %H:%M:%S %Y" in the C locale and the
// local time zone, e.g. "Sun Sep  9 01:46:40 2001" (space-padded day).
[[nodiscard]] std::string perl_localtime(std::time_t t);

} // namespace lonc
