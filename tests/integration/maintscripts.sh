#!/bin/sh
# Runs a package's maintainer scripts the way dpkg or rpm would, in a
# scratch world: run it under `unshare --mount --propagation private`.
#
#   maintscripts.sh WORK STEPS
#
# WORK holds tmpfiles.d/lonc.conf (from the package); the scratch /etc
# goes to WORK/etc, the stubs and records to WORK/harness. Inside this mount namespace only: /etc is a copy of the
# machine's without the www account, /home, /run and /var/lib are empty
# tmpfs (so the scripts' directories, systemd's runtime directory and
# rpm-state are scratch), /usr/lib/tmpfiles.d holds only the package's
# file, and a stub systemctl first on PATH records each call it gets
# (`is-active` answers "active" while $H/active exists), and so does a
# stub lonctl (exiting with what $H/lonctl-exit holds). The real
# deb-systemd-invoke and systemd-tmpfiles run; a policy-rc.d that would
# refuse actions (as in containers) is replaced by one that allows them.
#
# STEPS is sourced; it calls `step NAME COMMAND...` for each dpkg or rpm
# action, and `state` to show the account and directories. The output:
#   STEP <name>           then one line per systemctl call:
#   CALL <verb> [<unit>]  (options dropped)
#   STATE www <passwd line> / STATE dir <owner:group> <mode> <path>
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

cat >"$H/bin/systemctl" <<'EOF'
#!/bin/sh
verb=
unit=
for a in "$@"; do
    case $a in
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$a; else unit="$unit $a"; fi ;;
    esac
done
echo "$verb$unit" >>"$H/calls"
case $verb in
is-active) [ -e "$H/active" ] ;;
is-enabled) echo disabled; exit 1 ;;
*) exit 0 ;;
esac
EOF
# lonctl: records the call; exits with what $H/lonctl-exit holds (0 if none).
cat >"$H/bin/lonctl" <<'EOF'
#!/bin/sh
echo "lonctl $*" >>"$H/calls"
[ -e "$H/lonctl-exit" ] && exit "$(cat "$H/lonctl-exit")"
exit 0
EOF
printf '#!/bin/sh\nexit 0\n' >"$H/bin/policy-rc.d"
chmod 755 "$H/bin/systemctl" "$H/bin/lonctl" "$H/bin/policy-rc.d"
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
}

# shellcheck source=/dev/null
. "$STEPS"
echo "DONE"
