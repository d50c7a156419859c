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
      procps psmisc iproute2 clang valgrind libclang-rt-14-dev"

# clang + libclang-rt-14-dev (libFuzzer, ASan, UBSan runtimes): the
# --enable-fuzzing build and `make fuzz-smoke` (docs/FUZZING.md)
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $BUILD $TEST >/dev/null
echo "install-deps.sh: dependencies installed"
