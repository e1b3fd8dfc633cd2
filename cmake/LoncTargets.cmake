# Per-target build settings: warnings, -Werror and sanitizers are attached to
# each of our targets, never to global flags, so third-party code is untouched.

# Hardening (LONC_HARDENING), for the targets in src/: the flags Debian
# 12's dpkg-buildflags gives with DEB_BUILD_MAINT_OPTIONS=hardening=+all
# (fortify, strong stack protector,
# format-security, full RELRO) plus PIE, which RHEL's GCC does not default
# to. Written out rather than read from dpkg-buildflags so that a build on
# a RHEL-family machine (no dpkg) gets the same binaries' protections.
# _FORTIFY_SOURCE needs optimisation, so Debug builds leave it out; ASan
# builds (not shipped, and ASan intercepts what fortify wraps) have none.
function(lonc_hardening target)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_compile_options(${target} PRIVATE
    -fstack-protector-strong -Wformat -Werror=format-security
    $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
  target_link_options(${target} PRIVATE -Wl,-z,relro -Wl,-z,now)
endfunction()

function(lonc_target_defaults target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
  if(LONC_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(LONC_SANITIZE)
    target_compile_options(${target} PRIVATE
      -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
  # What ships is built from src/: harden its targets (the tests, lond-sim
  # and the benchmark are not installed).
  set(shipped_dir "${PROJECT_SOURCE_DIR}/src")
  cmake_path(IS_PREFIX shipped_dir "${CMAKE_CURRENT_SOURCE_DIR}" NORMALIZE shipped)
  if(LONC_HARDENING AND shipped)
    lonc_hardening(${target})
  endif()
endfunction()
