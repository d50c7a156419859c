# shellcheck shell=bash
# tests/lib/common.sh -- TAP output and smime-milter start/stop for the
# shell tests.  Source it first; it sets:
#   SRCDIR BUILDDIR  the source and build trees (make check exports
#                    abs_top_srcdir/abs_top_builddir; fall back to ../)
#   MILTER CTL       the binaries under test
#   T                a fresh work directory, removed at exit
# Tests call tap_ok/tap_is/tap_diag (tap_todo for a known gap), and
# tap_done at the end.

SRCDIR=${abs_top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILDDIR=${abs_top_builddir:-$SRCDIR}
MILTER=$BUILDDIR/milter/smime-milter
CTL=$BUILDDIR/milter/smime-milter-ctl
export SMIME_SPLIT=$BUILDDIR/tests/tools/smime-split
MIME_LEAVES=$BUILDDIR/tests/tools/mime-leaves

T=$(mktemp -d "${TMPDIR:-/tmp}/smm-test.XXXXXX")
_tap_n=0
_tap_fail=0
_cleanups=()

_common_exit() {
    local c
    for c in "${_cleanups[@]}"; do eval "$c" || true; done
    [ -n "${KEEP_TEST_DIR:-}" ] || rm -rf "$T"
}
trap _common_exit EXIT
at_exit() { _cleanups=("$1" "${_cleanups[@]}"); }

tap_ok() { # tap_ok CONDITION-EXIT-STATUS DESCRIPTION
    local rc=$1
    shift
    _tap_n=$((_tap_n + 1))
    if [ "$rc" -eq 0 ]; then
        echo "ok $_tap_n - $*"
    else
        _tap_fail=$((_tap_fail + 1))
        echo "not ok $_tap_n - $*"
    fi
}
tap_check() { # tap_check DESCRIPTION -- COMMAND...
    local d=$1
    shift
    [ "$1" = "--" ] && shift
    if "$@" >"$T/.tap_out" 2>&1; then
        tap_ok 0 "$d"
    else
        tap_ok 1 "$d"
        sed 's/^/#   /' "$T/.tap_out" | head -20
    fi
}
tap_not() { # tap_not DESCRIPTION -- COMMAND...   (command must fail)
    local d=$1
    shift
    [ "$1" = "--" ] && shift
    if "$@" >"$T/.tap_out" 2>&1; then
        tap_ok 1 "$d"
        sed 's/^/#   /' "$T/.tap_out" | head -20
    else
        tap_ok 0 "$d"
    fi
}
tap_is() { # tap_is GOT WANT DESCRIPTION
    if [ "$1" = "$2" ]; then
        tap_ok 0 "$3"
    else
        tap_ok 1 "$3"
        echo "#   got \"$1\", want \"$2\""
    fi
}
tap_todo() { # tap_todo CONDITION-EXIT-STATUS DESCRIPTION REASON: a known gap
    # (TAP "# TODO": reported, not counted as a failure; passing is XPASS)
    _tap_n=$((_tap_n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $_tap_n - $2 # TODO $3"
    else
        echo "not ok $_tap_n - $2 # TODO $3"
    fi
}
tap_diag() { echo "# $*"; }
tap_done() {
    echo "1..$_tap_n"
    [ "$_tap_fail" -eq 0 ]
}

# free_port: a TCP port on 127.0.0.1 nobody listens on now
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# make_pki DIR: the test PKI (tests/pki/mkpki.sh), made once per test
make_pki() {
    sh "$SRCDIR/tests/pki/mkpki.sh" "$1" >"$T/mkpki.log" 2>&1 ||
        { cat "$T/mkpki.log" >&2; return 1; }
}

# keystore_init PKIDIR FILE...: a key store $T/keys holding the FILEs of
# PKIDIR (mode 0600, as the milter wants), the PKCS#12 passphrase in
# $T/keys.pass, and $T/smime-milter.conf started with the lines that use
# them (KeyStore, KeyStorePassphraseFile, TrustAnchors PKIDIR/trust.pem,
# TempDirectory $T): append the test's own settings to it
keystore_init() {
    local pki=$1 f
    shift
    mkdir -p "$T/keys" || return 1
    for f in "$@"; do
        install -m 600 "$pki/$f" "$T/keys/" || return 1
    done
    install -m 600 "$pki/passphrase" "$T/keys.pass" || return 1
    cat >"$T/smime-milter.conf" <<EOC
KeyStore $T/keys
KeyStorePassphraseFile $T/keys.pass
TrustAnchors $pki/trust.pem
TempDirectory $T
EOC
}

# milter_start CONF [extra args]: start smime-milter in the foreground on a
# free inet port; sets MILTER_PORT MILTER_PID MILTER_LOG.  Waits until the
# socket accepts connections.
# AS_ROOT: "-u root" when the tests run as root (the daemon refuses to
# stay root unless told so; the test keys are root's, mode 600)
AS_ROOT=
[ "$(id -u)" = 0 ] && AS_ROOT="-u root"

milter_start() {
    local conf=$1
    shift
    MILTER_PORT=$(free_port)
    MILTER_LOG=$T/milter.log
    at_exit 'milter_stop'
    milter_restart "$conf" "$@"
}

# milter_restart CONF [extra args]: start smime-milter again on the same
# MILTER_PORT and log (after a test has killed it), wait as milter_start.
# With MILTER_LOG_PIPE=1 the log goes through a pipe (cat), so that a
# file size limit (RLIMIT_FSIZE) a test puts on the milter leaves it alone.
milter_restart() {
    local conf=$1
    shift
    if [ -n "${MILTER_LOG_PIPE:-}" ]; then
        # shellcheck disable=SC2086
        "$MILTER" -f -c "$conf" -p "inet:$MILTER_PORT@127.0.0.1" $AS_ROOT "$@" \
            > >(exec cat >>"$MILTER_LOG") 2>&1 &
    else
        # shellcheck disable=SC2086
        "$MILTER" -f -c "$conf" -p "inet:$MILTER_PORT@127.0.0.1" $AS_ROOT "$@" \
            >>"$MILTER_LOG" 2>&1 &
    fi
    MILTER_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$MILTER_PORT") 2>/dev/null; then
            return 0
        fi
        kill -0 "$MILTER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "smime-milter did not start:" >&2
    cat "$MILTER_LOG" >&2
    return 1
}

milter_stop() {
    [ -n "${MILTER_PID:-}" ] || return 0
    kill -TERM "$MILTER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$MILTER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$MILTER_PID" 2>/dev/null || true
    wait "$MILTER_PID" 2>/dev/null || true
    MILTER_PID=
}

# leaves FILE: decoded content of every leaf part (for comparisons)
leaves() { "$MIME_LEAVES" "$1"; }

# alive PID: the process exists and is not a zombie (a detached daemon's
# zombie may linger where PID 1 does not reap)
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
