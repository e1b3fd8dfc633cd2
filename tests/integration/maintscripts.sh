#!/bin/sh
# Runs a package's maintainer scripts the way dpkg or rpm would, in a
# scratch world: run it under `unshare --mount --propagation private`.
#
#   maintscripts.sh WORK STEPS
#
# WORK holds tmpfiles.d/lonc.conf and system/lonc.service (from the
# package); the scratch /etc goes to WORK/etc, the stubs and records to
# WORK/harness. Inside this mount namespace only: /etc is a copy of the
# machine's without the www account, /home, /run and /var/lib are empty
# tmpfs (so the scripts' directories, systemd's runtime directory,
# deb-systemd-helper's records and rpm-state are scratch),
# /usr/lib/tmpfiles.d and /usr/lib/systemd/system hold only the package's
# files. Stubs first on PATH: systemctl records each call it gets;
# `is-active` answers "activating" as many times as $H/activating says
# ("forever": always), then "active" while $H/active exists, else
# "inactive". lonctl records its call and exits with what $H/lonctl-exit
# holds, else 0 when a lonc runs ($H/active, or $H/loncron: one that
# loncron started), else 3 (not running). sleep returns at once. The real
# deb-systemd-invoke, deb-systemd-helper and systemd-tmpfiles run; a
# policy-rc.d that would refuse actions (as in containers) is replaced by
# one that allows them.
#
# STEPS is sourced; it calls `step NAME COMMAND...` for each dpkg or rpm
# action, and `state` to show the account, directories and enable symlink.
# The output:
#   STEP <name>           then one line per systemctl or lonctl call:
#   CALL <verb> [<unit>]  (options dropped), CALL lonctl <args>
#   OUT <line>            what the scripts printed
#   STATE www <passwd line> / STATE dir <owner:group> <mode> <path>
#   STATE enabled yes|no  (multi-user.target.wants/lonc.service)
set -e
W=$1
STEPS=$2
H=$W/harness
export H
mkdir -p "$H/bin" "$W/etc"

cp -a /etc/. "$W/etc"
for f in passwd shadow group gshadow; do
    if [ -f "$W/etc/$f" ]; then
        sed -i '/^www:/d' "$W/etc/$f"
    fi
done
mount --bind "$W/etc" /etc
mount -t tmpfs tmpfs /home
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /usr/lib/tmpfiles.d
cp "$W/tmpfiles.d/lonc.conf" /usr/lib/tmpfiles.d/lonc.conf
mount -t tmpfs tmpfs /usr/lib/systemd/system
cp "$W/system/lonc.service" /usr/lib/systemd/system/lonc.service
# As dpkg runs maintainer scripts (deb-systemd-helper insists on it).
DPKG_MAINTSCRIPT_PACKAGE=lonc
export DPKG_MAINTSCRIPT_PACKAGE

cat >"$H/bin/systemctl" <<'EOF'
#!/bin/sh
verb=
unit=
quiet=
for a in "$@"; do
    case $a in
    --quiet | -q) quiet=1 ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$a; else unit="$unit $a"; fi ;;
    esac
done
echo "$verb$unit" >>"$H/calls"
say() { [ -n "$quiet" ] || echo "$1"; }
case $verb in
is-active)
    n=$(cat "$H/activating" 2>/dev/null || echo 0)
    if [ "$n" = forever ]; then
        say activating
        exit 3
    elif [ "$n" -gt 0 ]; then
        echo $((n - 1)) >"$H/activating"
        say activating
        exit 3
    elif [ -e "$H/active" ]; then
        say active
    else
        say inactive
        exit 3
    fi
    ;;
is-enabled) echo disabled; exit 1 ;;
*) exit 0 ;;
esac
EOF
cat >"$H/bin/lonctl" <<'EOF'
#!/bin/sh
echo "lonctl $*" >>"$H/calls"
[ -e "$H/lonctl-exit" ] && exit "$(cat "$H/lonctl-exit")"
[ -e "$H/active" ] || [ -e "$H/loncron" ] || exit 3
exit 0
EOF
printf '#!/bin/sh\nexit 0\n' >"$H/bin/policy-rc.d"
printf '#!/bin/sh\nexit 0\n' >"$H/bin/sleep"
chmod 755 "$H/bin/systemctl" "$H/bin/lonctl" "$H/bin/policy-rc.d" "$H/bin/sleep"
if [ -e /usr/sbin/policy-rc.d ]; then
    mount --bind "$H/bin/policy-rc.d" /usr/sbin/policy-rc.d
fi
PATH="$H/bin:$PATH"
export PATH

step() {
    name=$1
    shift
    : >"$H/calls"
    "$@" >"$H/out" 2>&1 || {
        echo "STEP $name FAILED: $*"
        cat "$H/out"
        exit 1
    }
    echo "STEP $name"
    sed 's/^/CALL /' "$H/calls"
    sed 's/^/OUT /' "$H/out"
}

state() {
    echo "STATE www $(getent passwd www || echo none)"
    for d in /home/httpd/perl/logs /home/httpd/sockets /home/httpd/html/lon-status \
        /home/httpd/lonTabs; do
        if [ -d "$d" ]; then
            echo "STATE dir $(stat -c '%U:%G %a' "$d") $d"
        else
            echo "STATE dir missing $d"
        fi
    done
    if [ -L /etc/systemd/system/multi-user.target.wants/lonc.service ]; then
        echo "STATE enabled yes"
    else
        echo "STATE enabled no"
    fi
}

# shellcheck source=/dev/null
. "$STEPS"
echo "DONE"
