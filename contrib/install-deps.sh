#!/bin/sh
# install-deps.sh -- install everything smime-milter needs to build, run its
# quick-start demo and run its whole test suite on Debian 12 (bookworm).
# Run as root.  Safe to run again.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: must run as root (apt-get install)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Postfix and slapd ask questions at install time; we only want the binaries,
# the tests and the demo run private instances with their own configuration.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections

BUILD="build-essential autoconf automake libtool pkg-config
       libmilter-dev libgmime-3.0-dev libssl-dev libldap2-dev openssl"
TEST="postfix slapd ldap-utils libnss3-tools gpgsm gnupg swaks miltertest
      perl procps psmisc iproute2 clang valgrind libclang-rt-14-dev
      opendkim opendkim-tools debhelper
      m4 libdb5.3 liblockfile1 libnsl2 libsasl2-2 libwrap0"
# (m4 and the libraries on the last line are what sendmail-bin and
# sendmail-cf need to run from the unpacked copy below.)
# make bench and profiling (docs/PERFORMANCE.md); smtp-source/smtp-sink
# come with postfix
BENCH="linux-perf"

# clang + libclang-rt-14-dev (libFuzzer, ASan, UBSan runtimes): the
# --enable-fuzzing build and `make fuzz-smoke` (docs/FUZZING.md)
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $BUILD $TEST $BENCH >/dev/null

# Sendmail for tests/t-sendmail.sh.  Installing sendmail-bin would remove
# Postfix (both provide mail-transport-agent), so the packages are only
# downloaded and unpacked into a private directory; the test runs that
# copy with its own configuration.
SENDMAIL_CACHE=${SENDMAIL_CACHE:-/var/cache/smime-milter-test/sendmail}
want=$(apt-cache policy sendmail-bin sendmail-cf | sed -n 's/^ *Candidate: //p' | tr '\n' ' ')
if [ ! -x "$SENDMAIL_CACHE/root/usr/libexec/sendmail/sendmail" ] ||
   [ "$(cat "$SENDMAIL_CACHE/versions" 2>/dev/null)" != "$want" ]; then
    rm -rf "$SENDMAIL_CACHE"
    mkdir -p "$SENDMAIL_CACHE/debs" "$SENDMAIL_CACHE/root"
    # apt drops privileges to _apt for downloads
    chown _apt "$SENDMAIL_CACHE/debs" 2>/dev/null || true
    (cd "$SENDMAIL_CACHE/debs" && apt-get download -qq sendmail-bin sendmail-cf) 2>&1 |
        grep -v 'unsandboxed' || true
    for deb in "$SENDMAIL_CACHE"/debs/*.deb; do
        dpkg -x "$deb" "$SENDMAIL_CACHE/root"
    done
    [ -x "$SENDMAIL_CACHE/root/usr/libexec/sendmail/sendmail" ] || {
        echo "install-deps.sh: could not unpack sendmail-bin into $SENDMAIL_CACHE" >&2
        exit 1
    }
    echo "$want" >"$SENDMAIL_CACHE/versions"
fi
dpkg -s postfix >/dev/null 2>&1 || {
    echo "install-deps.sh: postfix is not installed (did something remove it?)" >&2
    exit 1
}
echo "install-deps.sh: dependencies installed"
