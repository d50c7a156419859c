#!/bin/bash
# t-sendmail: the real smime-milter behind a real Sendmail.  Debian's
# sendmail-bin and sendmail-cf are not installed (that would remove
# Postfix: both are mail-transport-agent) but unpacked by
# contrib/install-deps.sh into /var/cache/smime-milter-test/sendmail.
# The test makes a private sendmail.cf with m4 from a .mc that contains
# contrib/sendmail/smime-milter.mc (with an inet socket), runs Sendmail as
# root in the foreground (-bD) on two loopback ports named MTA and MSA,
# with a private queue directory, relaying to the capture sink of
# tests/lib/postfix.sh, and checks that
#   - mail through MSA ("OutboundDaemons MSA": Sendmail passes the
#     DAEMON_OPTIONS Name= as {daemon_name}) arrives signed, verifies with
#     openssl cms -verify and is stamped; the milter logs the direction;
#   - mail through MTA (inbound) arrives unsigned;
#   - with the milter down, F=T makes Sendmail answer 4xx instead of
#     relaying unsigned mail;
#   - Postfix is still installed afterwards.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/postfix.sh"
. "$SRCDIR/tests/lib/smime-check.sh"

SM_ROOT=${SENDMAIL_ROOT:-/var/cache/smime-milter-test/sendmail/root}
SENDMAIL=$SM_ROOT/usr/libexec/sendmail/sendmail
CFDIR=$SM_ROOT/usr/share/sendmail/cf
if [ ! -x "$SENDMAIL" ] || [ ! -f "$CFDIR/m4/cf.m4" ]; then
    echo "Bail out! no Sendmail unpacked in $SM_ROOT: run contrib/install-deps.sh (it downloads sendmail-bin and sendmail-cf and unpacks them there; SENDMAIL_ROOT overrides the place)"
    exit 1
fi
for tool in m4 unshare swaks openssl; do
    command -v "$tool" >/dev/null ||
        { echo "Bail out! $tool not found: run contrib/install-deps.sh"; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "Bail out! must run as root (Sendmail -bD)"; exit 1; }

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
keystore_init "$P" alice.p12 || { echo "Bail out! key store"; exit 1; }
# 192.0.2.0/24 (TEST-NET) so that loopback clients are not internal: the
# direction comes from Sendmail's {daemon_name}
printf 'InternalHosts 192.0.2.0/24\nOutboundDaemons MSA\n' >>"$T/smime-milter.conf"
milter_start "$T/smime-milter.conf" || { echo "Bail out! smime-milter did not start"; exit 1; }

# the capture sink (a Postfix instance is configured but never started)
pf_init "$T/pf" >/dev/null || { echo "Bail out! pf_init (capture sink)"; exit 1; }
at_exit 'pf_stop >/dev/null 2>&1'

# ---------------------------------------------------------------- sendmail.cf
S=$T/sm
mkdir -p "$S/queue"
chmod 700 "$S" "$S/queue"
printf 'hosts files\naliases files\n' >"$S/service.switch"
printf '127.0.0.1 smtest.localdomain localhost\n::1 smtest.localdomain localhost\n' >"$S/hosts"
# sm_configure: fresh ports, sendmail.mc and sendmail.cf (m4's status)
sm_configure() {
    MTA_PORT=$(free_port)
    MSA_PORT=$(free_port)
    while [ "$MSA_PORT" = "$MTA_PORT" ]; do MSA_PORT=$(free_port); done
    {
        cat <<EOF
divert(-1)
# private Sendmail configuration written by tests/t-sendmail.sh
divert(0)dnl
VERSIONID(\`smime-milter t-sendmail')dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`smtest.localdomain')dnl
define(\`QUEUE_DIR', \`$S/queue')dnl
define(\`confPID_FILE', \`$S/sendmail.pid')dnl
define(\`STATUS_FILE', \`$S/statistics')dnl
define(\`ALIAS_FILE', \`')dnl
define(\`confSERVICE_SWITCH_FILE', \`$S/service.switch')dnl
define(\`confHOSTS_FILE', \`$S/hosts')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`confTO_IDENT', \`0')dnl
define(\`confDELIVERY_MODE', \`interactive')dnl
define(\`confAUTH_MECHANISMS', \`')dnl
define(\`SMART_HOST', \`relay:[127.0.0.1]')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $PF_SINK_PORT')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`no_default_msa')dnl
FEATURE(\`promiscuous_relay')dnl
FEATURE(\`accept_unresolvable_domains')dnl
DAEMON_OPTIONS(\`Port=$MTA_PORT, Addr=127.0.0.1, Name=MTA')dnl
DAEMON_OPTIONS(\`Port=$MSA_PORT, Addr=127.0.0.1, Name=MSA')dnl
EOF
        # the contrib snippet as shipped, only the socket is ours
        sed "s|S=local:[^,]*|S=inet:$MILTER_PORT@127.0.0.1|" \
            "$SRCDIR/contrib/sendmail/smime-milter.mc"
        echo "MAILER(\`smtp')dnl"
    } >"$S/sendmail.mc"
    m4 -D_CF_DIR_="$CFDIR/" "$CFDIR/m4/cf.m4" "$S/sendmail.mc" >"$S/sendmail.cf" 2>"$S/m4.err"
}

# Sendmail looks its own host name up at start (and sleeps 60 s when it
# has no domain part), before reading sendmail.cf: it runs in its own UTS
# and mount namespaces with an FQDN and a private /etc/hosts naming it, so
# that neither the sleep nor a DNS query happens.  It logs to syslog; -X
# records the SMTP traffic instead.
sm_start() {
    unshare --uts --mount sh -c "mount --bind '$S/hosts' /etc/hosts &&
        hostname smtest.localdomain && exec '$SENDMAIL' \
        -C'$S/sendmail.cf' -bD -X '$S/traffic.log'" >>"$S/sendmail.out" 2>&1 &
    SM_PID=$!
    local i
    for i in $(seq 1 100); do
        kill -0 "$SM_PID" 2>/dev/null || break
        if _pf_listening "$MTA_PORT" && _pf_listening "$MSA_PORT"; then
            return 0
        fi
        sleep 0.1
    done
    cat "$S/sendmail.out" >&2
    return 1
}
# sm_stop: the daemon and whatever it forked (by parent pid, not by name)
sm_stop() {
    [ -n "${SM_PID:-}" ] || return 0
    local kids
    kids=$(ps -o pid= --ppid "$SM_PID" 2>/dev/null)
    kill -TERM "$SM_PID" $kids 2>/dev/null
    for _ in $(seq 1 50); do
        kill -0 "$SM_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SM_PID" $kids 2>/dev/null
    wait "$SM_PID" 2>/dev/null
    SM_PID=
    return 0
}
at_exit 'sm_stop'
started=
for attempt in 1 2 3; do
    sm_configure
    m4_rc=$?
    [ "$m4_rc" -eq 0 ] || break
    if sm_start; then started=1; break; fi
    sm_stop # lost a port to someone else? new ports, new sendmail.cf
done
tap_is "$m4_rc" 0 "m4 builds sendmail.cf from a .mc including contrib/sendmail/smime-milter.mc"
tap_check "sendmail.cf has the filter with F=T and the snippet's timeouts" -- \
    grep -qx "Xsmime-milter, S=inet:$MILTER_PORT@127.0.0.1, F=T, T=C:30s;S:1m;R:2m;E:10m" "$S/sendmail.cf"
[ -n "$started" ] || { cat "$S/m4.err"; echo "Bail out! Sendmail did not start"; exit 1; }
tap_ok 0 "Sendmail listens on 127.0.0.1:$MTA_PORT (MTA) and :$MSA_PORT (MSA)"

headers_of() { sed -e 's/\r$//' -e '/^$/q' "$1"; }
hdr() { headers_of "$2" | grep -i "^$1:" | head -n 1 | sed 's/^[^:]*: *//'; }
cat >"$T/msg.eml" <<'EOF'
From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: through Sendmail
Date: Mon, 1 Jan 2024 10:00:00 +0000
Message-ID: <t-sendmail-1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello Bob,
this went through Sendmail and smime-milter.
EOF

# ---------------------------------------------------------------- outbound
n=$(pf_sink_count)
pf_send alice@example.org bob@example.net "$T/msg.eml" --port "$MSA_PORT" >/dev/null
rc=$?
tap_is "$rc" 0 "MSA: Sendmail accepts the message (reply: $(tr -d '\r\n' <"$PF_LAST_REPLY"))"
pf_wait_sink $((n + 1)) 30
out=$(pf_sink_files | tail -n 1)
tap_is "$(pf_sink_count)" $((n + 1)) "MSA: relayed to the sink"
if [ -n "$out" ]; then
    tap_check "MSA: relayed by Sendmail" -- grep -q 'by smtest.localdomain (8\.[0-9.]*' "$out"
    tap_is "$(pf_sink_rcpts "$out")" "bob@example.net" "MSA: envelope recipient"
    ct=$(hdr Content-Type "$out")
    case $ct in
    multipart/signed*application/pkcs7-signature*) tap_ok 0 "MSA: multipart/signed" ;;
    *) tap_ok 1 "MSA: multipart/signed (got: $ct)" ;;
    esac
    tap_check "MSA: openssl cms -verify -purpose smimesign" -- \
        smime_verify_openssl "$out" "$P" "$T/content.eml"
    tap_check "MSA: the signed content is the original text" -- \
        grep -q 'this went through Sendmail and smime-milter' "$T/content.eml"
    tap_is "$(smime_signer_openssl "$out" "$P")" "alice@example.org" "MSA: signer"
    tap_is "$(hdr X-SMIME-Milter "$out")" \
        "signed=alice@example.org; encrypted=no (missing-certificate)" "MSA: stamp"
else
    for i in 1 2 3 4 5 6 7; do tap_ok 1 "MSA: (no message in the sink)"; done
fi
tap_check "milter log: outbound because of {daemon_name} MSA, signed" -- \
    grep -q 'outbound (daemon) .*from=<alice@example.org>.* result=signed' "$MILTER_LOG"

# ---------------------------------------------------------------- inbound
n=$(pf_sink_count)
sed 's/^Message-ID: .*/Message-ID: <t-sendmail-2@example.org>/' "$T/msg.eml" >"$T/msg2.eml"
pf_send alice@example.org bob@example.net "$T/msg2.eml" --port "$MTA_PORT" >/dev/null
tap_is "$?" 0 "MTA: Sendmail accepts the message"
pf_wait_sink $((n + 1)) 30
out=$(pf_sink_files | tail -n 1)
tap_is "$(pf_sink_count)" $((n + 1)) "MTA: relayed to the sink"
case $(hdr Content-Type "$out") in
text/plain*) tap_ok 0 "MTA (inbound): not signed" ;;
*) tap_ok 1 "MTA (inbound): not signed (got: $(hdr Content-Type "$out"))" ;;
esac
tap_check "milter log: inbound" -- grep -q 'inbound (external)' "$MILTER_LOG"

# ---------------------------------------------------------------- milter down
milter_stop
n=$(pf_sink_count)
pf_send alice@example.org bob@example.net "$T/msg.eml" --port "$MSA_PORT" >/dev/null
rc=$?
tap_is "$rc" 1 "milter down: F=T makes Sendmail answer 4xx (reply: $(tr -d '\r\n' <"$PF_LAST_REPLY"))"
sleep 1
tap_is "$(pf_sink_count)" "$n" "milter down: nothing relayed unsigned"

sm_stop
tap_is "$(find "$S/queue" -type f -name 'qf*' | wc -l)" 0 "nothing left in the private queue"
tap_check "Postfix is still installed" -- dpkg -s postfix
tap_done
