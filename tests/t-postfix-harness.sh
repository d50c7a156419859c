#!/bin/bash
# Self-test of tests/lib/postfix.sh: private Postfix instance + capture sink,
# no milter (except a deliberately unreachable one).  TAP output.
set -u

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/postfix.sh"

ntests=34
echo "1..$ntests"
n=0
failed=0
ok() {   # ok COND-EXIT-STATUS DESCRIPTION
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failed=$((failed + 1))
    fi
}
check() { # check DESCRIPTION COMMAND...
    local d=$1; shift
    "$@"
    ok $? "$d"
}
diag() { sed 's/^/# /'; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pfharness.XXXXXX") || exit 1
wd1=$tmp/a
wd2=$tmp/b
cleanup() {
    local d
    for d in "$wd2" "$wd1"; do
        [ -f "$d/pf.env" ] && { pf_use "$d"; pf_stop; }
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- setup ---------------------------------------------------------------
pf_init "$wd1" >"$tmp/init.out" 2>&1
ok $? "pf_init creates an instance"
[ -s "$tmp/init.out" ] && diag <"$tmp/init.out"

postfix -c "$PF_CONFDIR" check >"$tmp/check.out" 2>&1 && ! grep -q . "$tmp/check.out"
ok $? "postfix check passes without warnings"
diag <"$tmp/check.out"

echo "# ports: smtpd=$PF_PORT submission=$PF_SUB_PORT sink=$PF_SINK_PORT"
[ "$(postconf -c "$PF_CONFDIR" -h relayhost)" = "[127.0.0.1]:$PF_SINK_PORT" ] &&
    [ "$(postconf -c "$PF_CONFDIR" -h queue_directory)" = "$wd1/queue" ] &&
    [ "$(postconf -c "$PF_CONFDIR" -h inet_interfaces)" = "127.0.0.1" ]
ok $? "main.cf points to private queue, loopback and the sink"

check "pf_start starts the instance" pf_start
pf_wait_smtp "$PF_PORT"
ok $? "smtpd answers on 127.0.0.1:\$PF_PORT"
pf_wait_smtp "$PF_SUB_PORT"
ok $? "submission smtpd answers on 127.0.0.1:\$PF_SUB_PORT"

# --- plain message -------------------------------------------------------
cat >"$tmp/plain.eml" <<'EOF'
From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: plain test
Date: Mon, 01 Jan 2024 00:00:00 +0000
Message-ID: <plain@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello Bob,
this is a plain test message.
EOF
pf_send alice@example.org bob@example.net "$tmp/plain.eml"
ok $? "pf_send of a plain message returns 0 ($(tail -n1 "$PF_LAST_REPLY"))"
check "plain message reaches the sink" pf_wait_sink 1
f=$(pf_sink_files | tail -n1)
pf_strip_received "$f" | cmp -s - "$tmp/plain.eml"
ok $? "plain message is byte-identical (minus Received:, CRLF->LF)"
perl -ne 'exit 1 if !/\r\n\z/; END { exit 0 }' "$f"
ok $? "sink file keeps CRLF line ends"
[ "$(pf_sink_from "$f")" = alice@example.org ] &&
    [ "$(pf_sink_rcpts "$f")" = bob@example.net ]
ok $? "envelope recorded in $(basename "$(pf_sink_env "$f")")"

# --- leading dots, CRLF input ---------------------------------------------
printf 'From: a@example.org\r\nTo: b@example.net\r\nSubject: dots\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <dots@example.org>\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n...\r\n. space\r\nafter the lone dot\r\n.' >"$tmp/dots.eml"
pf_send a@example.org b@example.net "$tmp/dots.eml"
ok $? "pf_send of a CRLF message with leading-dot lines returns 0"
pf_wait_sink 2 && f=$(pf_sink_files | tail -n1) &&
    pf_strip_received "$f" | cmp -s - <(perl -pe 's/\r\n/\n/g; $_ .= "\n" if eof && !/\n\z/' "$tmp/dots.eml")
ok $? "leading-dot lines and a lone '.' line survive (no early end of DATA)"

# --- 8-bit ---------------------------------------------------------------
cat >"$tmp/utf8.eml" <<'EOF'
From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.org>
To: bob@example.net
Subject: 8bit
Date: Mon, 01 Jan 2024 00:00:00 +0000
Message-ID: <utf8@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße aus Köln — ünïcödé ✓ 日本語
EOF
printf 'raw high bytes: \xff\xfe\x80\n' >>"$tmp/utf8.eml"
pf_send juergen@example.org bob@example.net "$tmp/utf8.eml"
ok $? "pf_send of an 8-bit message returns 0"
pf_wait_sink 3 && f=$(pf_sink_files | tail -n1) &&
    pf_strip_received "$f" | cmp -s - "$tmp/utf8.eml"
ok $? "8-bit body survives unchanged (not down-converted)"
grep -q '^mail_args=.*BODY=8BITMIME' "$(pf_sink_env "$f")"
ok $? "Postfix relays it with BODY=8BITMIME"

# --- long line -----------------------------------------------------------
{
    printf 'From: a@example.org\nTo: b@example.net\nSubject: long\nDate: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <long@example.org>\n\n'
    perl -e 'print "x" x 2000, "\n"; print "end\n"'
} >"$tmp/long.eml"
pf_send a@example.org b@example.net "$tmp/long.eml"
ok $? "pf_send of a message with a 2000-character line returns 0"
pf_wait_sink 4 && f=$(pf_sink_files | tail -n1)
pf_strip_received "$f" >"$tmp/long.out"
perl -ne 'chomp; printf "# long-line test: sink line %d has %d chars\n", $., length if length > 100' "$tmp/long.out"
echo "# smtp_line_length_limit = $(postconf -c "$PF_CONFDIR" -h smtp_line_length_limit)," \
    "line_length_limit = $(postconf -c "$PF_CONFDIR" -h line_length_limit)"
# Postfix (smtp client, smtp_line_length_limit = 998) folds the line: after
# 998 characters it inserts CRLF + SPACE (the space counts), i.e.
# 998 x | " " + 997 x | " " + 5 x
expect=$(perl -e 'print "x" x 998, "\n ", "x" x 997, "\n ", "x" x 5, "\nend\n"')
[ "$(sed -n '/^$/,$p' "$tmp/long.out" | tail -n +2)" = "$expect" ]
ok $? "2000-char line arrives folded at 998 chars with CRLF+SPACE"

# --- two recipients --------------------------------------------------------
before=$(pf_sink_count)
pf_send alice@example.org bob@example.net,carol@example.com "$tmp/plain.eml"
ok $? "pf_send to two recipients returns 0"
pf_wait_sink $((before + 1)) && sleep 1 && [ "$(pf_sink_count)" = $((before + 1)) ]
ok $? "two recipients give exactly one sink message"
f=$(pf_sink_files | tail -n1)
[ "$(pf_sink_rcpts "$f" | sort | tr '\n' ' ')" = "bob@example.net carol@example.com " ]
ok $? "both RCPTs recorded"

# --- submission listener ---------------------------------------------------
pf_send alice@example.org bob@example.net "$tmp/plain.eml" --port "$PF_SUB_PORT" &&
    pf_wait_log "$PF_SYSLOG_NAME/submission/smtpd\\[[0-9]+\\]: [0-9A-F]+: client=" 10
ok $? "mail via the submission listener is logged as $PF_SYSLOG_NAME/submission"
pf_wait_sink $((before + 2))
ok $? "... and relayed to the sink"

# --- queue ------------------------------------------------------------------
for i in $(seq 1 50); do [ "$(pf_queue_count)" = 0 ] && break; sleep 0.1; done
[ "$(pf_queue_count)" = 0 ]
ok $? "queue is empty after delivery"

pf_sink_stop
before=$(pf_sink_count)
pf_send alice@example.org bob@example.net "$tmp/plain.eml" &&
    for i in $(seq 1 100); do [ "$(pf_queue_count deferred)" = 1 ] && break; sleep 0.1; done
[ "$(pf_queue_count deferred)" = 1 ]
ok $? "with the sink down the message is deferred"
pf_sink_start && pf_flush && pf_wait_sink $((before + 1)) 15
ok $? "after restarting the sink, pf_flush delivers it"

# --- unreachable milter ------------------------------------------------------
closed=$(_pf_free_port)
pf_conf "smtpd_milters = inet:127.0.0.1:$closed" milter_default_action=tempfail && pf_reload
ok $? "configure smtpd_milters=inet:127.0.0.1:$closed (closed) and reload"
before=$(pf_sink_count)
pf_send alice@example.org bob@example.net "$tmp/plain.eml"
rc=$?
[ "$rc" = 1 ] && grep -Eq '^451 4\.[0-9]+\.[0-9]+ ' "$PF_LAST_REPLY"
ok $? "unreachable milter + tempfail: pf_send returns 1 (rc=$rc, $(tail -n1 "$PF_LAST_REPLY"))"
sleep 2
[ "$(pf_sink_count)" = "$before" ] && [ "$(pf_queue_count)" = 0 ]
ok $? "nothing queued, nothing reached the sink"
grep -Eq "warning: connect to Milter service inet:127\\.0\\.0\\.1:$closed: Connection refused" "$(pf_log)"
ok $? "Postfix log records the milter connect failure"
pf_conf "smtpd_milters =" && pf_reload

# --- second instance in parallel ------------------------------------------
(
    pf_init "$wd2" >/dev/null 2>&1 && pf_start && pf_send x@example.org y@example.net "$tmp/plain.eml" &&
        pf_wait_sink 1 && [ "$(pf_sink_count)" = 1 ] &&
        [ "$PF_PORT" != "$(. "$wd1/pf.env"; _pf_load_ports; echo "$PF_PORT")" ]
)
ok $? "a second instance runs in parallel, with its own ports and sink"
before=$(pf_sink_count)
pf_send alice@example.org bob@example.net "$tmp/plain.eml" && pf_wait_sink $((before + 1)) &&
    (pf_use "$wd2"; [ "$(pf_sink_count)" = 1 ])
ok $? "first instance still works and does not deliver into the second's sink"

# --- stop ----------------------------------------------------------------------
pids="$(pf_procs) $(pf_use "$wd2"; pf_procs)"
echo "# instance processes:" $pids
(pf_use "$wd2"; pf_stop) && pf_stop
ok $? "pf_stop stops both instances"
left=
for p in $pids; do
    # zombies (state Z) are dead already; PID 1 here may reap them late
    st=$(ps -o stat= -p "$p" 2>/dev/null)
    [ -n "$st" ] && [ "${st#Z}" = "$st" ] && left="$left $p"
done
[ -z "$left" ] && [ -z "$(pf_procs)" ] && [ -z "$(pf_use "$wd2"; pf_procs)" ]
ok $? "no postfix/sink processes remain${left:+ (left:$left)}"

[ "$n" = "$ntests" ] || echo "# planned $ntests tests but ran $n"
[ "$failed" = 0 ] && [ "$n" = "$ntests" ]
