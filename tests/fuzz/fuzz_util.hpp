// Shared by the libFuzzer targets: a checked assertion that crashes (so
// libFuzzer records the input) with a message saying which invariant broke.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            (void)std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,        \
                               #cond);                                                             \
            std::abort();                                                                          \
        }                                                                                          \
    } while (false)
