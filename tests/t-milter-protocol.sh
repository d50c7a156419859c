#!/bin/bash
# t-milter-protocol: the real smime-milter driven over the milter protocol
# (v6) by tests/tools/milter-client acting as the MTA, for what a test
# Postfix cannot easily show: SMTP AUTH ({auth_authen}) and {daemon_name}
# making a message outbound, an external unauthenticated client never
# getting mail signed, the modifications on the wire, and SIGTERM letting
# a message already in flight finish.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/smime-check.sh"
CLIENT=$BUILDDIR/tests/tools/milter-client

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
mkdir -p "$T/keys"
install -m 600 "$T/pki/alice.pem" "$T/keys/alice.pem"
cat >"$T/c.conf" <<EOC
KeyStore keys
TrustAnchors pki/trust.pem
InternalHosts 127.0.0.0/8 ::1
OutboundDaemons ORIGINATING
EOC
milter_start "$T/c.conf" || { echo "Bail out! milter"; exit 1; }
cat >"$T/msg.eml" <<'EOM'
From: Alice <alice@example.org>
To: bob@example.net
Subject: protocol test
X-SMIME-Milter: signed=forged@example.org
Content-Type: text/plain; charset=us-ascii

Hello over the milter protocol.
EOM

# run NAME [client args...]: one message through the milter
run() {
    local name=$1
    shift
    "$CLIENT" -s "inet:$MILTER_PORT@127.0.0.1" -f alice@example.org \
        -r bob@example.net -E "i=QID$name" "$@" <"$T/msg.eml" \
        >"$T/$name.out" 2>"$T/$name.mods"
}
is_signed() { # is_signed NAME: the wire changes and the result verify
    grep -q '^reply=continue' "$T/$1.mods" &&
        grep -q '^change Content-Type\[1\]: multipart/signed' "$T/$1.mods" &&
        grep -q '^add X-SMIME-Milter: signed=alice@example.org' "$T/$1.mods" &&
        grep -q '^delete X-SMIME-Milter\[1\]' "$T/$1.mods" &&
        grep -q '^body [0-9]* bytes' "$T/$1.mods" &&
        smime_verify_openssl "$T/$1.out" "$T/pki"
}
is_untouched() { # inbound plain mail: forged stamp removed, our stamp and
    # "smime=none" added, the body and other fields untouched
    grep -q '^reply=continue' "$T/$1.mods" &&
        grep -q '^delete X-SMIME-Milter\[1\]' "$T/$1.mods" &&
        grep -q '^add X-SMIME-Milter: decrypted=no (not-encrypted); verified=none' "$T/$1.mods" &&
        grep -q '^insert\[0\] Authentication-Results: .*; smime=none' "$T/$1.mods" &&
        ! grep -q '^body \|^change ' "$T/$1.mods"
}

run external -i 198.51.100.7
tap_check "external client, no AUTH: inbound, untouched but for the stamps" -- is_untouched external
tap_check "log: inbound (external) with the client address" -- grep -q 'QIDexternal: inbound (external) client=198.51.100.7' "$MILTER_LOG"

run auth -i 198.51.100.7 -M '{auth_authen}=alice'
tap_check "external client with SMTP AUTH ({auth_authen}): signed, verifies" -- is_signed auth
tap_check "log: outbound (auth)" -- grep -q 'QIDauth: outbound (auth)' "$MILTER_LOG"

run daemon -i 198.51.100.7 -C '{daemon_name}=ORIGINATING'
tap_check "{daemon_name} listed in OutboundDaemons: signed, verifies" -- is_signed daemon
tap_check "log: outbound (daemon)" -- grep -q 'QIDdaemon: outbound (daemon)' "$MILTER_LOG"

run otherdaemon -i 198.51.100.7 -C '{daemon_name}=mx-in'
tap_check "{daemon_name} not listed: inbound, untouched" -- is_untouched otherdaemon

run internal -i 127.0.0.1
tap_check "client in InternalHosts: signed, verifies" -- is_signed internal

run ipv6 -i ::1
tap_check "IPv6 loopback client in InternalHosts (::1): signed" -- is_signed ipv6

# the steps the milter asks the MTA not to wait for: MAIL, RCPT, header
# fields, body; none from an MTA that does not offer them (libmilter
# answers for the milter); RCPT is answered again once SplitRecipients
# (whose 452 needs the reply) is on
tap_check "no-reply steps agreed: MAIL, RCPT, header fields, body" -- \
    grep -qx 'noreply=mail,rcpt,header,body' "$T/internal.mods"
run oldmta -A -i 127.0.0.1
tap_check "an MTA without no-reply steps: every step answered, still signed" -- \
    sh -c "grep -qx 'noreply=' '$T/oldmta.mods' && grep -q '^reply=continue' '$T/oldmta.mods' && grep -q '^change Content-Type\[1\]: multipart/signed' '$T/oldmta.mods'"
echo "SplitRecipients yes" >>"$T/c.conf"
kill -HUP "$MILTER_PID"
for _ in $(seq 1 100); do grep -q ': reloaded ' "$MILTER_LOG" && break; sleep 0.1; done
run split -i 127.0.0.1
tap_check "SplitRecipients on after a reload: RCPT answered again, the rest not" -- \
    grep -qx 'noreply=mail,header,body' "$T/split.mods"

# SIGTERM while a message is in flight: it still completes, signed.  The
# in-flight message comes from an MTA without the no-reply steps (-A), so
# the milter has surely started it when -x runs; the -x command opens a
# second connection, sends SIGTERM once the milter accepted it and then
# MAIL, which is not answered (SMFIP_NR_MAIL): the drain answers it at end
# of message; a third connection, opened during the drain, is refused.
second="$CLIENT -s inet:$MILTER_PORT@127.0.0.1 -f alice@example.org -r bob@example.net"
run drain -A -i 127.0.0.1 -x "$second -y 'kill -TERM $MILTER_PID; sleep 0.5' <'$T/msg.eml' >/dev/null 2>'$T/second.mods'; echo \$? >'$T/second.rc'; $second <'$T/msg.eml' >/dev/null 2>'$T/third.mods'; echo \$? >'$T/third.rc'"
tap_check "SIGTERM during a message: the message still completes, signed" -- is_signed drain
tap_is "$(cat "$T/second.rc")" "1" "MAIL on an open connection during the drain is tempfailed (the MTA retries)"
tap_check "... with 451 4.3.2, gateway restarting" -- grep -q '^reply=tempfail 451 4.3.2 S/MIME gateway restarting' "$T/second.mods"
tap_is "$(cat "$T/third.rc")" "1" "a new connection during the drain is tempfailed (the MTA retries)"
for _ in $(seq 1 150); do alive "$MILTER_PID" || break; sleep 0.1; done
tap_not "then the daemon stops" -- alive "$MILTER_PID"
tap_check "the drained message was logged as signed" -- grep -q 'QIDdrain: outbound (internal-host).*result=signed' "$MILTER_LOG"
tap_check "the worker logged a clean stop" -- grep -q ': stopped' "$MILTER_LOG"
tap_done
