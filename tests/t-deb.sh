#!/bin/bash
# t-deb: the Debian package.  contrib/build-deb.sh builds it from a copy of
# this source tree (dpkg-buildpackage -us -uc -b); apt-get installs it;
# the test checks what it installed (binaries, man pages, configuration,
# systemd unit with its hardening, the smime-milter system user, postfix
# in its group, the key store directory), runs "smime-milter -n" on the
# shipped configuration, starts the daemon the way the unit does without
# systemd (there is none in CI containers: the runtime directory is made
# as systemd would make it, ExecStart runs with the unit's Group=), checks
# that the socket appears and that the postfix user, and only a member of
# the group, can connect, stops it, purges the package and checks that
# files and user are gone and Postfix is still installed.
#
# It installs a package system-wide, so it is not part of "make check":
# tests/run-all.sh runs it as a step of its own (2-4 minutes, most of it
# compiling), with DEB_BUILD_OPTIONS=nocheck as its earlier steps ran the
# unit tests already.  Run it alone with
#   bash tests/t-deb.sh
. "$(dirname "$0")/lib/common.sh"

[ "$(id -u)" -eq 0 ] || { echo "Bail out! must run as root (it installs a package)"; exit 1; }
for tool in dpkg-buildpackage dh apt-get setpriv perl; do
    command -v "$tool" >/dev/null ||
        { echo "Bail out! $tool not found: run contrib/install-deps.sh (debhelper)"; exit 1; }
done
if dpkg-query -W -f '${Status}' smime-milter 2>/dev/null | grep -q 'installed'; then
    echo "Bail out! a smime-milter package is installed already; this test would purge it"
    exit 1
fi

UNIT=/lib/systemd/system/smime-milter.service
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)
purge() { "${APT[@]}" purge smime-milter >>"$T/purge.log" 2>&1; }

# ---------------------------------------------------------------- build
start=$(date +%s)
# a caller's DEB_BUILD_OPTIONS (run-all.sh: nocheck) are kept
DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$(nproc 2>/dev/null || echo 2)" \
    "$SRCDIR/contrib/build-deb.sh" "$T/out" >"$T/build.log" 2>&1
rc=$?
tap_is "$rc" 0 "contrib/build-deb.sh: dpkg-buildpackage -us -uc -b builds ($(( $(date +%s) - start )) s)"
[ "$rc" -eq 0 ] || { tail -n 30 "$T/build.log" | sed 's/^/#   /'; echo "Bail out! no package"; exit 1; }
deb=$(ls "$T"/out/smime-milter_*_*.deb 2>/dev/null | head -n 1)
case " ${DEB_BUILD_OPTIONS:-} " in
*" nocheck "*) ;;
*) tap_check "the build ran the unit tests" -- grep -q '^# PASS: *[1-9]' "$T/build.log" ;;
esac

# ---------------------------------------------------------------- install
at_exit 'purge'
"${APT[@]}" install "$deb" >"$T/install.log" 2>&1
rc=$?
tap_is "$rc" 0 "apt-get install $(basename "$deb")"
[ "$rc" -eq 0 ] || { tail -n 20 "$T/install.log" | sed 's/^/#   /'; echo "Bail out! not installed"; exit 1; }
for f in /usr/sbin/smime-milter /usr/sbin/smime-milter-ctl; do
    tap_check "installed: $f" -- test -x "$f"
done
for f in /usr/share/man/man8/smime-milter.8.gz /usr/share/man/man8/smime-milter-ctl.8.gz \
    /usr/share/man/man5/smime-milter.conf.5.gz /etc/smime-milter/smime-milter.conf \
    /etc/smime-milter/smime-milter.conf.sample "$UNIT" \
    /usr/share/doc/smime-milter/examples/main.cf.snippet \
    /usr/share/doc/smime-milter/examples/smime-milter.mc; do
    tap_check "installed: $f" -- test -f "$f"
done
tap_check "man smime-milter.conf renders" -- sh -c 'man -l /usr/share/man/man5/smime-milter.conf.5.gz >/dev/null'
tap_is "$(dpkg-query -W -f '${Conffiles}' smime-milter | awk 'NF {print $1}' | sort | tr '\n' ' ')" \
    "/etc/smime-milter/smime-milter.conf /etc/smime-milter/smime-milter.conf.sample " \
    "the configuration files are conffiles"

# the system user
tap_check "user smime-milter exists" -- getent passwd smime-milter
uid=$(id -u smime-milter 2>/dev/null || echo 99999)
tap_check "smime-milter is a system user (uid $uid < 1000)" -- test "$uid" -lt 1000
tap_is "$(getent passwd smime-milter | cut -d: -f7)" /usr/sbin/nologin "smime-milter cannot log in"
tap_check "postfix is in the smime-milter group" -- sh -c 'id -nG postfix | tr " " "\n" | grep -qx smime-milter'
tap_is "$(stat -c '%a %U:%G' /etc/smime-milter/keys 2>&1)" "700 smime-milter:smime-milter" "key store /etc/smime-milter/keys"
tap_is "$(find /etc/smime-milter/keys -mindepth 1 | wc -l)" 0 "the key store is empty"

# the unit
for want in ProtectSystem=strict PrivateTmp=yes NoNewPrivileges=yes \
    RuntimeDirectory=smime-milter Group=smime-milter; do
    tap_check "unit: $want" -- grep -qx "$want" "$UNIT"
done
tap_check "unit: ReadWritePaths has /var/lib/smime-milter" -- \
    grep -q '^ReadWritePaths=.*/var/lib/smime-milter' "$UNIT"
if command -v systemd-analyze >/dev/null; then
    tap_check "systemd-analyze verify" -- systemd-analyze verify "$UNIT"
fi

tap_check "smime-milter -n accepts the shipped configuration" -- /usr/sbin/smime-milter -n

# ---------------------------------------------------------------- start
# what systemd would do: the runtime directory, then ExecStart with Group=
unit_get() { sed -n "s/^$1=//p" "$UNIT" | tail -n 1; }
rundir=/run/$(unit_get RuntimeDirectory)
pidfile=$(unit_get PIDFile)
sock=$(sed -n 's/^Socket unix://p' /etc/smime-milter/smime-milter.conf)
read -r -a exec_start <<<"$(unit_get ExecStart)"
qdir=$(postconf -h queue_directory 2>/dev/null)
[ -n "$qdir" ] || qdir=$(postconf -dh queue_directory) # (no main.cf yet)
snip=$(sed -n 's/^smtpd_milters = unix://p' /usr/share/doc/smime-milter/examples/main.cf.snippet)
tap_is "$sock" "$qdir/$snip" \
    "the socket is where the Postfix snippet's smtpd_milters finds it ($qdir/$snip)"
tap_is "$(stat -c '%a %U:%G' "$(dirname "$sock")" 2>&1)" "750 smime-milter:smime-milter" \
    "the package made its directory inside Postfix's chroot"
if [ -e "$rundir" ]; then
    echo "Bail out! $rundir exists already (another smime-milter?)"
    exit 1
fi
stop_daemon() {
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        alive "$pid" || break
        sleep 0.1
    done
    # systemd removes the runtime directory when the service stops
    rm -rf "$rundir"
}
at_exit 'stop_daemon'
install -d -m "$(unit_get RuntimeDirectoryMode)" -o root -g "$(unit_get Group)" "$rundir"
rm -rf "$(dirname "$sock")" # as if Postfix came after the package: ExecStartPre makes it
pre=$(unit_get ExecStartPre)
eval "${pre#+}"
tap_is "$?/$(stat -c '%a %U:%G' "$(dirname "$sock")" 2>&1)" "0/750 smime-milter:smime-milter" \
    "ExecStartPre makes the socket directory when Postfix is installed"
setpriv --regid "$(unit_get Group)" --clear-groups -- "${exec_start[@]}" >"$T/start.log" 2>&1
tap_is "$?" 0 "ExecStart ($(unit_get ExecStart)) returns (Type=forking)"
for _ in $(seq 1 100); do
    [ -S "$sock" ] && [ -s "$pidfile" ] && break
    sleep 0.1
done
tap_check "the socket appears" -- test -S "$sock"
pid=$(cat "$pidfile" 2>/dev/null)
tap_check "the PID file names a live supervisor" -- alive "${pid:-0}"
tap_is "$(stat -c '%a %U:%G' "$rundir")" "750 root:smime-milter" "$rundir: mode and group"
tap_is "$(stat -c '%a %U:%G' "$sock" 2>&1)" "660 smime-milter:smime-milter" "socket: mode and owner"
worker=$(ps -o pid= --ppid "${pid:-0}" | head -n 1 | tr -d ' ')
tap_is "$(awk '/^Uid:/ {print $2}' "/proc/${worker:-0}/status" 2>/dev/null)" "$uid" \
    "the worker runs as smime-milter"
connect() { # connect USER: can USER (with its groups) connect to the socket?
    setpriv --reuid "$1" --regid "$1" --init-groups -- perl -MIO::Socket::UNIX \
        -e 'IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 1' "$sock"
}
tap_check "the postfix user can connect to the socket" -- connect postfix
tap_not "nobody cannot" -- connect nobody

# ---------------------------------------------------------------- stop
kill -TERM "$pid" 2>/dev/null
for _ in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.1
done
tap_not "SIGTERM stops the daemon" -- alive "$pid"
tap_not "the worker is gone too" -- alive "${worker:-0}"
rm -rf "$rundir"

# ---------------------------------------------------------------- purge
purge
tap_is "$?" 0 "apt-get purge smime-milter"
tap_not "package gone" -- sh -c 'dpkg-query -W -f "\${Status}" smime-milter 2>/dev/null | grep -q installed'
for f in /usr/sbin/smime-milter /usr/sbin/smime-milter-ctl /etc/smime-milter \
    "$UNIT" /var/lib/smime-milter /var/spool/postfix/smime-milter /usr/share/doc/smime-milter \
    /etc/systemd/system/multi-user.target.wants/smime-milter.service; do
    tap_not "gone: $f" -- test -e "$f"
done
tap_not "user smime-milter gone" -- getent passwd smime-milter
tap_not "group smime-milter gone" -- getent group smime-milter
tap_check "Postfix is still installed" -- sh -c 'dpkg-query -W -f "\${Status}" postfix | grep -q "install ok installed"'
tap_done
