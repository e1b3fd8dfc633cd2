#!/bin/sh
# Builds the .deb and the .rpm the way a site building from source does:
# the release tarball (scripts/dist), then dpkg-buildpackage in its
# unpacked tree and rpmbuild -ta on it. The ctest fixture lonc_packages runs
# this once; packaging_test and install_test check what it made, and
# scripts/test-systemd installs the .deb.
#
#   build_packages.sh SOURCE_DIR OUT_DIR
#
# OUT_DIR gets lonc_<version>_<arch>.deb, lonc-<version>-1.<arch>.rpm and
# the logs. Both packages are a function of the tarball's tree: when OUT_DIR
# already holds the packages of the same tree (OUT_DIR/tree), nothing is
# rebuilt.
set -eu
src=$(cd "$1" && pwd)
out=$2
mkdir -p "$out"
out=$(cd "$out" && pwd)

stash=$(git -C "$src" stash create)
tree=$(git -C "$src" rev-parse "${stash:-HEAD}^{tree}")
if [ "$(cat "$out/tree" 2>/dev/null)" = "$tree" ] &&
    ls "$out"/lonc_*.deb "$out"/lonc-*.rpm >/dev/null 2>&1; then
    echo "packages of tree $tree already built in $out"
    exit 0
fi
rm -rf "$out/work" "$out/tree" "$out"/lonc*.deb "$out"/lonc*.rpm
work=$out/work
tarball=$("$src/scripts/dist" "$work")

# dpkg-buildpackage -b: binary packages only (a source package of a native
# package is the tarball itself). -us -uc: unsigned.
mkdir -p "$work/deb"
tar -xzf "$tarball" -C "$work/deb"
start=$(date +%s)
if ! (cd "$work"/deb/lonc-* && DEB_BUILD_OPTIONS=parallel=2 dpkg-buildpackage -us -uc -b) \
    >"$out/dpkg-buildpackage.log" 2>&1; then
    tail -n 40 "$out/dpkg-buildpackage.log"
    echo "build_packages: dpkg-buildpackage failed (log: $out/dpkg-buildpackage.log)" >&2
    exit 1
fi
echo "dpkg-buildpackage: $(($(date +%s) - start)) s"
cp "$work"/deb/lonc_*.deb "$out/"

# rpmbuild -ta: the spec from the tarball. --nodeps: the BuildRequires are
# RHEL-family package names, which Debian's rpm database does not know.
start=$(date +%s)
if ! rpmbuild --nodeps --define "_topdir $work/rpm" --define "_smp_mflags -j2" -ta "$tarball" \
    >"$out/rpmbuild.log" 2>&1; then
    tail -n 40 "$out/rpmbuild.log"
    echo "build_packages: rpmbuild failed (log: $out/rpmbuild.log)" >&2
    exit 1
fi
echo "rpmbuild: $(($(date +%s) - start)) s"
cp "$work"/rpm/RPMS/*/lonc-*.rpm "$out/"
rm -rf "$work"
echo "$tree" >"$out/tree"
ls "$out"
