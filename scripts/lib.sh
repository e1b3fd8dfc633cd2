# Shared by scripts/*: install what is missing, create the test account.
# shellcheck shell=bash

# Debian packages lonc needs to build and test.
LONC_BUILD_PACKAGES=(
  cmake ninja-build g++ pkg-config
  libcrypto++-dev libspdlog-dev libcli11-dev libgtest-dev libgmock-dev
  libsystemd-dev nlohmann-json3-dev prometheus-cpp-dev libseccomp-dev
)
LONC_TEST_PACKAGES=(
  clang libclang-rt-14-dev clang-format iproute2 nftables procps util-linux valgrind systemd
  logrotate groff-base man-db dpkg-dev binutils adduser
  lintian rpm rpmlint cpio passwd debhelper debootstrap systemd-container
  python3-prometheus-client
)
# scripts/bench: plots, and syscall counts (perf) and profiles (strace).
LONC_BENCH_PACKAGES=(
  gnuplot-nox linux-perf strace
)

# ensure_packages PKG...: apt-get install the ones not installed (one
# apt-get update first, only when something is missing).
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "==> installing: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ensure_www_user: the unprivileged account lonc runs as in tests.
ensure_www_user() {
  if [ "$(id -u)" -eq 0 ] && ! getent passwd www >/dev/null; then
    echo "==> creating system user www"
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin www
  fi
}

# build_preset NAME: configure and build one CMake preset.
build_preset() {
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1"
}
