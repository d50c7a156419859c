# shellcheck shell=bash
# tests/lib/postfix.sh - private, throw-away Postfix instance (+ capture
# sink) for integration tests of smime-milter.  Source it from bash:
#
#     . "$(dirname "$0")/lib/postfix.sh"
#     wd=$(mktemp -d); trap 'pf_stop; rm -rf "$wd"' EXIT
#     pf_init "$wd"                      # also starts the sink
#     pf_conf "smtpd_milters = inet:127.0.0.1:$MILTER_PORT"
#     pf_start
#     pf_send alice@example.org bob@example.net,carol@example.net msg.eml
#     pf_wait_sink 1 && f=$(pf_sink_files | head -n1)
#     pf_sink_rcpts "$f"                 # bob@example.net / carol@...
#     grep 'milter' "$(pf_log)"
#
# Functions
#   pf_init WORKDIR        create instance under WORKDIR, start the sink
#   pf_use WORKDIR         switch to another instance (several per script)
#   pf_conf N=V ...        postconf -e; needs pf_reload if running
#   pf_master_conf NAME [-o p=v ...]  extra smtpd listener, $PF_PORT_<NAME>
#   pf_port NAME           port of smtp|submission|sink|<extra listener>
#   pf_start / pf_stop / pf_reload
#   pf_send FROM RCPTS FILE [swaks args]  0 = 2xx, 1 = 4xx, 2 = 5xx, 3 = other
#   pf_wait_sink N [T]     wait (poll) until >= N sink messages (T = 30 s)
#   pf_sink_files          sink messages (*.eml), arrival order
#   pf_sink_count / pf_sink_env F / pf_sink_from F / pf_sink_rcpts F
#   pf_sink_stop / pf_sink_start   stop/restart only the sink (to defer)
#   pf_strip_received F    F minus our Received: header, CRLF -> LF
#   pf_queue_count [Q]     files in maildrop|incoming|active|deferred|hold
#   pf_flush               postqueue -f
#   pf_log                 path of the Postfix log
#   pf_wait_log REGEX [T]  wait until the log matches (grep -E)
#   pf_wait_smtp [PORT]    wait for a 220 greeting
#   pf_procs               pids of the instance (postfix daemons + sink)
#
# Exported variables (after pf_init): PF_WORKDIR PF_CONFDIR PF_QUEUEDIR
#   PF_DATADIR PF_SINKDIR PF_LOGFILE PF_PORT PF_SUB_PORT PF_SINK_PORT
#   PF_SYSLOG_NAME PF_LAST_REPLY PF_LAST_TRANSCRIPT
#
# Design
# ------
# * Everything lives under WORKDIR: etc/ (main.cf, master.cf), queue/,
#   data/, log/maillog, sink/, run/.  /etc/postfix is only *read*
#   (postfix-files via meta_directory); the system queue and syslog are
#   never touched.  main.cf / master.cf are written from scratch (minimal,
#   chroot=n everywhere) rather than patched from main.cf.dist, so the
#   result does not depend on what the package installed.  The instance
#   passes `postfix -c $PF_CONFDIR check` (the self-test checks it).
# * Only 127.0.0.1 is used.  smtpd ports are picked at random in
#   20000-32767 (below the kernel's ephemeral range) after a bind test; if
#   `postfix start` still loses a race for a port ("Address already in
#   use") pf_start picks a new port, rewrites master.cf and retries.
# * Capture sink: a small forking perl SMTP server (perl-base modules only)
#   written to $WORKDIR/sink.pl.  It binds 127.0.0.1:0 (kernel-chosen,
#   race-free port -> $PF_SINK_PORT), advertises PIPELINING, 8BITMIME,
#   SMTPUTF8 (8BITMIME matters: without it Postfix would down-convert 8-bit
#   bodies to quoted-printable) and answers 250 to everything (354 to
#   DATA, 221 to QUIT).  smtp-sink -d was not used: it adds its own X-*
#   headers to the dump.  Per message it writes (tmp file + rename):
#     $WORKDIR/sink/NNNNNN.eml  the exact DATA bytes after dot-unstuffing,
#                               CRLF line ends exactly as Postfix sent them
#     $WORKDIR/sink/NNNNNN.env  envelope, one "key=value" per line:
#                               helo=  from= (empty for <>)  mail_args=
#                               rcpt= (one line per RCPT)  client=  size=
#   NNNNNN is a zero-padded arrival counter (000001, ...), so lexical order
#   is arrival order.  The .env is renamed into place before the .eml.
#   The reply to DATA is "250 2.0.0 Ok: queued as NNNNNN", so Postfix's log
#   line "status=sent (... queued as NNNNNN)" names the sink file.
#   The .eml is what Postfix relayed: it starts with Postfix's Received:
#   header (use pf_strip_received to compare with the input).
# * Logging: maillog_file=$WORKDIR/log/maillog through the postlog service
#   (postlogd, maillog_file_prefixes=$WORKDIR); nothing goes to syslog.
#   Lines carry $PF_SYSLOG_NAME (default "pftest-<basename of WORKDIR>",
#   e.g. "pftest-x/smtpd[123]:", ".../submission/smtpd[..]:").
# * Processes are found per instance without name patterns: every Postfix
#   daemon of the instance has its cwd in $WORKDIR/queue and its binary in
#   daemon_directory; the sink processes have cwd $WORKDIR/run/sinkproc.
#   pf_stop waits for them to exit and kills leftovers by pid.
# * pf_start/pf_reload wait until every listener of master.cf is in LISTEN
#   state (/proc/net/tcp) rather than opening an SMTP session, so that a
#   configured milter does not see extra probe connections.  `postfix
#   start` only returns once the master has bound its sockets.  pf_reload
#   also waits for the master's "reload" log line and for the old smtpd
#   processes to exit, so the next connection sees the new configuration.
#
# Listeners: 127.0.0.1:$PF_PORT      plain smtpd; {daemon_name} =
#                                    $myhostname = pftest.localdomain
#            127.0.0.1:$PF_SUB_PORT  smtpd -o syslog_name=.../submission
#                                    -o milter_macro_daemon_name=ORIGINATING
#                                    ({daemon_name} = ORIGINATING)
#   Note: Postfix 3.7's default milter_connect_macros are
#   "j {daemon_name} {daemon_addr} v _" ({daemon_port} is not sent).
#
# pf_send normalises the input file to CRLF (LF -> CRLF, CRLF kept, bare CR
# untouched, a missing final line end is added), dot-stuffs it itself and
# hands it to swaks with --no-data-fixup, so swaks does no token
# replacement, header rewriting, From_ stripping or trailing-dot removal.
#
# Gotchas
# * Must run as root (postfix start, setpriv).  The "postfix" user must be
#   able to traverse WORKDIR and its parents (the master opens
#   data/master.lock after dropping privileges): pf_init chmods WORKDIR
#   0755 and adds o+x to parents that lack it (with a note on stderr).
# * Postfix sleeps ~1.5 s in every process that reads a main.cf modified
#   within the last second ("being edited" check): pf_init/pf_conf/
#   pf_master_conf backdate main.cf/master.cf.  Edit them only through
#   these functions (or backdate them yourself).
# * Configuration changes need pf_reload (running smtpd processes keep the
#   old settings).
# * local_header_rewrite_clients is empty: Postfix neither adds missing
#   Date:/Message-ID:/From: headers nor rewrites header addresses.
# * Postfix's smtp client folds lines longer than smtp_line_length_limit
#   (998) by inserting CRLF + SPACE.

_PF_DAEMON_DIR=/usr/lib/postfix/sbin

_pf_die() { echo "postfix.sh: $*" >&2; return 1; }

# Postfix's config reader (dict_load_file) treats a main.cf modified within
# the last second as "being edited" and sleeps/retries for ~1.5 s in every
# process that reads it (postconf, postfix start, every new daemon).  Our
# writes are complete, so backdate the files by a few seconds.
_pf_backdate_conf() {
    touch -d "@$(( $(date +%s) - 5 ))" "$PF_CONFDIR/main.cf" "$PF_CONFDIR/master.cf" 2>/dev/null
    return 0
}

_pf_need_init() {
    [ -n "${PF_WORKDIR:-}" ] && [ -f "$PF_CONFDIR/main.cf" ] ||
        _pf_die "pf_init has not been called"
}

# _pf_free_port: print a currently free 127.0.0.1 TCP port that is not
# yet used by this instance.
_pf_free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12768 ))
        if [ -f "$PF_WORKDIR/ports" ] && grep -q " $p\$" "$PF_WORKDIR/ports"; then
            continue
        fi
        if perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(LocalAddr=>"127.0.0.1",
              LocalPort=>$ARGV[0], Proto=>"tcp", Listen=>1, ReuseAddr=>1) ? 0 : 1)' "$p"
        then
            echo "$p"
            return 0
        fi
    done
    _pf_die "no free port found"
}

# _pf_set_port VAR PORT: remember and export a port variable
_pf_set_port() {
    local var=$1 port=$2
    touch "$PF_WORKDIR/ports"
    sed -i "/^$var /d" "$PF_WORKDIR/ports"
    echo "$var $port" >>"$PF_WORKDIR/ports"
    export "$var=$port"
}

# _pf_load_ports: re-export the port variables (e.g. in a subshell that
# lost them, or after pf_start had to change one)
_pf_load_ports() {
    local var port
    [ -f "$PF_WORKDIR/ports" ] || return 0
    while read -r var port; do
        [ -n "$var" ] && export "$var=$port"
    done <"$PF_WORKDIR/ports"
    return 0
}

# port_answers PORT: true when an SMTP greeting (220) is read on PORT
_pf_port_answers() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr=>"127.0.0.1", PeerPort=>$ARGV[0],
                                      Proto=>"tcp", Timeout=>2) or exit 1;
        local $SIG{ALRM} = sub { exit 1 }; alarm 5;
        my $l = <$s>; defined $l && $l =~ /^220/ or exit 1;
        print $s "QUIT\r\n"; <$s>; exit 0' "$1" 2>/dev/null
}

_pf_write_sink_pl() {
    cat >"$PF_WORKDIR/sink.pl" <<'PERL'
#!/usr/bin/perl
# Capture SMTP sink for tests/lib/postfix.sh - see the comment there.
# usage: sink.pl SINKDIR PROCDIR PORTFILE [PORT]
use strict;
use warnings;
use IO::Socket::INET;
use POSIX qw(setsid :sys_wait_h);
use Fcntl qw(:flock O_RDWR O_CREAT);

my ($dir, $procdir, $portfile, $port) = @ARGV;
$port ||= 0;
chdir $procdir or die "chdir $procdir: $!";
setsid();
$0 = "pf-sink $dir";
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
    Proto => 'tcp', Listen => 128, ReuseAddr => 1)
    or die "sink: cannot listen on 127.0.0.1:$port: $!\n";
mkdir "$dir/.tmp";
{
    open my $pf, '>', "$portfile.tmp" or die "$portfile.tmp: $!";
    print $pf $$, " ", $srv->sockport, "\n";
    close $pf;
    rename "$portfile.tmp", $portfile or die "rename $portfile: $!";
}

my %kids;
my $stop = 0;
$SIG{CHLD} = sub { while ((my $p = waitpid(-1, WNOHANG)) > 0) { delete $kids{$p} } };
$SIG{TERM} = $SIG{INT} = $SIG{HUP} = sub { $stop = 1 };

my $rin = '';
vec($rin, fileno($srv), 1) = 1;
while (!$stop) {
    # poll with a timeout so a TERM arriving just before accept() is seen
    next unless select(my $rout = $rin, undef, undef, 0.5) > 0;
    my $c = $srv->accept;
    next unless $c;
    my $pid = fork;
    if (!defined $pid) { close $c; next }
    if ($pid == 0) {
        $SIG{TERM} = $SIG{INT} = $SIG{HUP} = 'DEFAULT';
        $SIG{CHLD} = 'DEFAULT';
        close $srv;
        session($c);
        exit 0;
    }
    $kids{$pid} = 1;
    close $c;
}
kill 'TERM', keys %kids;
exit 0;

sub store {
    my ($env, $data) = @_;
    my $tmp = "$dir/.tmp/$$." . int(rand(1e9));
    open my $e, '>', "$tmp.env" or die "$tmp.env: $!";
    print $e $env; close $e or die;
    open my $m, '>', "$tmp.eml" or die "$tmp.eml: $!";
    binmode $m; print $m $data; close $m or die;
    sysopen my $l, "$dir/.seq", O_RDWR | O_CREAT or die "$dir/.seq: $!";
    flock $l, LOCK_EX or die;
    my $n = <$l>; $n = 0 unless defined $n && $n =~ /^\d+/; $n += 0; $n++;
    seek $l, 0, 0; truncate $l, 0; print $l "$n\n";
    my $id = sprintf '%06d', $n;
    rename "$tmp.env", "$dir/$id.env" or die;
    rename "$tmp.eml", "$dir/$id.eml" or die;
    close $l;
    return $id;
}

sub session {
    my ($c) = @_;
    binmode $c;
    $c->autoflush(1);
    local $SIG{ALRM} = sub { exit 0 };
    alarm 600;
    my $client = $c->peerhost . ':' . $c->peerport;
    my ($helo, $from, $margs, @rcpt) = ('', undef, '');
    print $c "220 sink.invalid ESMTP pf-sink\r\n";
    while (defined(my $line = <$c>)) {
        (my $cmd = $line) =~ s/\r?\n\z//;
        my ($verb, $arg) = $cmd =~ /^(\S*)\s*(.*)$/s;
        $verb = uc($verb // '');
        if ($verb eq 'EHLO') {
            $helo = $arg;
            print $c "250-sink.invalid\r\n250-PIPELINING\r\n250-8BITMIME\r\n",
                     "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 0\r\n";
        } elsif ($verb eq 'HELO') {
            $helo = $arg;
            print $c "250 sink.invalid\r\n";
        } elsif ($verb eq 'MAIL') {
            ($from, $margs) = $arg =~ /^FROM:\s*<([^>]*)>\s*(.*)$/i ? ($1, $2) : ($arg, '');
            @rcpt = ();
            print $c "250 2.1.0 Ok\r\n";
        } elsif ($verb eq 'RCPT') {
            push @rcpt, $arg =~ /^TO:\s*<([^>]*)>/i ? $1 : $arg;
            print $c "250 2.1.5 Ok\r\n";
        } elsif ($verb eq 'DATA') {
            print $c "354 End data with <CR><LF>.<CR><LF>\r\n";
            my $data = '';
            my $complete = 0;
            while (defined(my $d = <$c>)) {
                if ($d eq ".\r\n" || $d eq ".\n") { $complete = 1; last }
                $d =~ s/^\.//;
                $data .= $d;
            }
            last unless $complete;
            my $env = "helo=$helo\nfrom=" . ($from // '') . "\nmail_args=$margs\n"
                . join('', map { "rcpt=$_\n" } @rcpt)
                . "client=$client\nsize=" . length($data) . "\n";
            my $id = store($env, $data);
            print $c "250 2.0.0 Ok: queued as $id\r\n";
            ($from, $margs, @rcpt) = (undef, '');
        } elsif ($verb eq 'RSET') {
            ($from, $margs, @rcpt) = (undef, '');
            print $c "250 2.0.0 Ok\r\n";
        } elsif ($verb eq 'QUIT') {
            print $c "221 2.0.0 Bye\r\n";
            last;
        } else {
            print $c "250 2.0.0 Ok\r\n";
        }
    }
    close $c;
}
PERL
}

# _pf_start_sink [PORT]: start the sink (on PORT, or on a kernel-chosen one)
_pf_start_sink() {
    local port=${1:-0} portfile="$PF_WORKDIR/run/sink.pid" i pid sport
    mkdir -p "$PF_SINKDIR" "$PF_WORKDIR/run/sinkproc"
    rm -f "$portfile"
    : >"$PF_WORKDIR/run/sink.log"
    # double fork: the sink must not be a child of the test shell (a bare
    # `wait` in a test would block on it); no fd of the caller is kept open
    ( perl "$PF_WORKDIR/sink.pl" "$PF_SINKDIR" "$PF_WORKDIR/run/sinkproc" \
        "$portfile" "$port" </dev/null >>"$PF_WORKDIR/run/sink.log" 2>&1 & )
    for i in $(seq 1 100); do
        [ -s "$portfile" ] && break
        grep -q 'cannot listen' "$PF_WORKDIR/run/sink.log" && break
        sleep 0.05
    done
    [ -s "$portfile" ] || { _pf_die "sink did not start: $(tail -n 3 "$PF_WORKDIR/run/sink.log")"; return 1; }
    read -r pid sport <"$portfile"
    _pf_set_port PF_SINK_PORT "$sport"
}

# _pf_is_sink_pid PID: PID is a live sink process of this instance
_pf_is_sink_pid() {
    [ -n "$1" ] && [ "$(readlink "/proc/$1/cwd" 2>/dev/null)" = "$PF_WORKDIR/run/sinkproc" ]
}

_pf_sink_running() {
    local pid sport
    [ -s "$PF_WORKDIR/run/sink.pid" ] || return 1
    read -r pid sport <"$PF_WORKDIR/run/sink.pid"
    _pf_is_sink_pid "$pid"
}

_pf_write_master_cf() {
    local name=$PF_SYSLOG_NAME
    cat >"$PF_CONFDIR/master.cf" <<EOF
# generated by tests/lib/postfix.sh - private test instance, chroot=n
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$PF_PORT inet n       -       n       -       -       smtpd
127.0.0.1:$PF_SUB_PORT inet n       -       n       -       -       smtpd
  -o syslog_name=$name/submission
  -o milter_macro_daemon_name=ORIGINATING
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# _pf_fix_traverse DIR: let the postfix user traverse DIR's parents;
# adds o+x (not o+r) where needed, refuses for / and $HOME-like dirs
_pf_fix_traverse() {
    local d=$1
    while [ "$d" != / ] && [ -n "$d" ]; do
        d=$(dirname "$d")
        if ! setpriv --reuid=postfix --regid=postfix --clear-groups test -x "$d" 2>/dev/null; then
            case $d in
            /|/root|/home|/home/*/*) ;;
            *)  chmod o+x "$d" &&
                    echo "postfix.sh: note: chmod o+x $d (the postfix user must traverse it)" >&2
                continue ;;
            esac
            _pf_die "the postfix user cannot traverse $d; use a work directory under /tmp"
            return 1
        fi
    done
    return 0
}

# pf_init WORKDIR
pf_init() {
    local wd=${1:?usage: pf_init WORKDIR}
    mkdir -p "$wd" || return 1
    wd=$(cd "$wd" && pwd -P) || return 1
    if [ -f "$wd/pf.env" ] && [ -n "$(PF_WORKDIR=$wd PF_QUEUEDIR=$wd/queue pf_procs)" ]; then
        _pf_die "an instance is still running in $wd (pf_stop it first)"
        return 1
    fi
    unset "${!PF_PORT_@}"
    export PF_WORKDIR=$wd
    export PF_CONFDIR=$wd/etc
    export PF_QUEUEDIR=$wd/queue
    export PF_DATADIR=$wd/data
    export PF_SINKDIR=$wd/sink
    export PF_LOGFILE=$wd/log/maillog
    export PF_LAST_REPLY=$wd/last_reply
    export PF_LAST_TRANSCRIPT=$wd/last_transcript
    local base
    base=$(basename "$wd" | tr -c 'A-Za-z0-9._\n-' '_')
    export PF_SYSLOG_NAME=${PF_SYSLOG_NAME_OVERRIDE:-pftest-$base}

    # Postfix daemons run as the "postfix" user and open files under
    # data_directory/queue_directory by absolute path: the user must be able
    # to traverse WORKDIR and all its parents (mktemp -d creates 0700).
    chmod 755 "$wd"
    _pf_fix_traverse "$wd" || return 1
    mkdir -p "$PF_CONFDIR" "$PF_QUEUEDIR" "$PF_DATADIR" "$PF_SINKDIR" \
        "$wd/log" "$wd/run" "$wd/send" || return 1
    chown postfix "$PF_DATADIR"
    rm -f "$wd/ports"
    : >"$PF_LAST_REPLY"

    _pf_write_sink_pl
    _pf_start_sink || return 1
    local port
    port=$(_pf_free_port) && _pf_set_port PF_PORT "$port" || return 1
    port=$(_pf_free_port) && _pf_set_port PF_SUB_PORT "$port" || return 1

    cat >"$PF_CONFDIR/main.cf" <<EOF
# generated by tests/lib/postfix.sh - private test instance
compatibility_level = 3.6
queue_directory = $PF_QUEUEDIR
data_directory = $PF_DATADIR
command_directory = /usr/sbin
daemon_directory = $_PF_DAEMON_DIR
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = $PF_SYSLOG_NAME
maillog_file = $PF_LOGFILE
maillog_file_prefixes = $wd
myhostname = pftest.localdomain
mydomain = localdomain
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$PF_SINK_PORT
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
smtpd_banner = \$myhostname ESMTP Postfix test instance
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled in test instance
biff = no
append_dot_mydomain = no
smtputf8_enable = no
notify_classes =
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_host_lookup = native
smtp_dns_support_level = disabled
milter_default_action = tempfail
milter_protocol = 6
milter_connect_timeout = 10s
milter_command_timeout = 30s
milter_content_timeout = 60s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 1d
bounce_queue_lifetime = 1d
delay_warning_time = 0h
smtp_connect_timeout = 5s
smtpd_error_sleep_time = 0s
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_client_connection_count_limit = 0
in_flow_delay = 0s
# do not add missing Date:/Message-ID:/From:/To: headers and do not
# rewrite header addresses: the relayed message stays as sent (apart from
# Postfix's own Received: header)
local_header_rewrite_clients =
EOF
    _pf_write_master_cf
    declare -p PF_WORKDIR PF_CONFDIR PF_QUEUEDIR PF_DATADIR PF_SINKDIR \
        PF_LOGFILE PF_LAST_REPLY PF_LAST_TRANSCRIPT PF_SYSLOG_NAME \
        | sed 's/^declare -x /export /' >"$wd/pf.env"
    _pf_backdate_conf
    # validate main.cf/master.cf (cheap).  `postfix -c $PF_CONFDIR check`
    # passes too but takes ~1-3 s (it scans the whole installation); the
    # queue directories are created by `postfix start` (post-install
    # create-missing), i.e. by pf_start.
    postconf -c "$PF_CONFDIR" -n >/dev/null &&
        postconf -c "$PF_CONFDIR" -M >/dev/null ||
        _pf_die "invalid generated configuration"
}

# pf_use WORKDIR: make an instance created earlier by pf_init the current
# one (to drive several instances from one script)
pf_use() {
    local wd=${1:?usage: pf_use WORKDIR}
    [ -f "$wd/pf.env" ] || { _pf_die "$wd: no instance"; return 1; }
    unset "${!PF_PORT_@}"
    . "$wd/pf.env"
    _pf_load_ports
    return 0
}

# pf_conf NAME=VALUE ...
pf_conf() {
    _pf_need_init || return 1
    [ $# -gt 0 ] || return 0
    postconf -c "$PF_CONFDIR" -e "$@" || return 1
    _pf_backdate_conf
}

# pf_master_conf NAME [smtpd args ...]
#   Add another smtpd listener on a fresh free port; the port is exported
#   as PF_PORT_<NAME> (upper case, non-alnum -> _; also `pf_port NAME`).
#   Always gets -o syslog_name=$PF_SYSLOG_NAME/NAME; further args are
#   param=value pairs, each optionally preceded by -o, e.g.
#     pf_master_conf inbound -o milter_macro_daemon_name=INBOUND
#   "submission" always exists already ($PF_SUB_PORT).  Needs pf_reload (or
#   pf_start) to take effect.  Call it directly, not in $(...), or the
#   export is lost (pf_use / pf_send / pf_reload re-load it anyway).
pf_master_conf() {
    _pf_need_init || return 1
    local name=${1:?usage: pf_master_conf NAME [smtpd args...]}; shift
    local var port a
    var=PF_PORT_$(echo "$name" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9\n' '_')
    port=$(_pf_free_port) || return 1
    _pf_set_port "$var" "$port"
    {
        echo "127.0.0.1:$port inet n       -       n       -       -       smtpd"
        echo "  -o syslog_name=$PF_SYSLOG_NAME/$name"
        for a in "$@"; do
            [ "$a" = "-o" ] && continue
            echo "  -o $a"
        done
    } >>"$PF_CONFDIR/master.cf"
    _pf_backdate_conf
}

# pf_port NAME: port of a listener added with pf_master_conf NAME
# (also: pf_port smtp -> $PF_PORT, pf_port submission -> $PF_SUB_PORT,
# pf_port sink -> $PF_SINK_PORT)
pf_port() {
    _pf_need_init || return 1
    local var
    case $1 in
    smtp) var=PF_PORT ;;
    submission) var=PF_SUB_PORT ;;
    sink) var=PF_SINK_PORT ;;
    *) var=PF_PORT_$(echo "$1" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9\n' '_') ;;
    esac
    awk -v v="$var" '$1 == v { print $2 }' "$PF_WORKDIR/ports"
}

# pf_procs: pids of this instance's Postfix daemons and sink processes
# (live ones; zombies have no cwd and are not listed)
pf_procs() {
    [ -n "${PF_WORKDIR:-}" ] || return 0
    perl -e '
        my ($q, $s, $dd) = @ARGV;
        opendir my $d, "/proc" or exit 0;
        for my $pid (grep { /^\d+$/ } readdir $d) {
            my $cwd = readlink "/proc/$pid/cwd";
            next unless defined $cwd;
            if ($cwd eq $s) { print "$pid\n"; next }
            next unless $cwd eq $q;
            my $exe = readlink "/proc/$pid/exe";
            print "$pid\n" if defined $exe && index($exe, "$dd/") == 0;
        }' "$PF_QUEUEDIR" "$PF_WORKDIR/run/sinkproc" "$_PF_DAEMON_DIR"
}

_pf_master_running() {
    postfix -c "$PF_CONFDIR" status >/dev/null 2>&1
}

# pf_start: start sink (if needed) and Postfix, wait until smtpd answers
pf_start() {
    _pf_need_init || return 1
    _pf_load_ports
    local attempt out bad var port
    if _pf_master_running; then
        _pf_die "instance already running"
        return 1
    fi
    pf_sink_start || return 1
    for attempt in 1 2 3 4 5; do
        if out=$(postfix -c "$PF_CONFDIR" start 2>&1); then
            break
        fi
        # lost a race for a port?  pick a new one and retry
        bad=$( { echo "$out"; tail -n 20 "$PF_LOGFILE" 2>/dev/null; } |
            sed -n 's/.*bind 127\.0\.0\.1 port \([0-9]*\): Address already in use.*/\1/p' | tail -n1) || true
        if [ -z "$bad" ] || [ "$attempt" = 5 ]; then
            echo "$out" >&2
            _pf_die "postfix start failed"
            return 1
        fi
        var=$(awk -v p="$bad" '$2 == p { print $1 }' "$PF_WORKDIR/ports")
        [ -n "$var" ] || { echo "$out" >&2; _pf_die "postfix start failed"; return 1; }
        port=$(_pf_free_port) || return 1
        _pf_set_port "$var" "$port"
        sed -i "s/^127\.0\.0\.1:$bad /127.0.0.1:${!var} /" "$PF_CONFDIR/master.cf"
        _pf_backdate_conf
    done
    _pf_wait_listeners
}

# _pf_listening PORT: true if something listens on 127.0.0.1:PORT
# (from /proc/net/tcp; no connection is made)
_pf_listening() {
    local hex
    hex=$(printf '%04X' "$1")
    grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A " /proc/net/tcp
}

# wait until all inet listeners of master.cf listen.  This deliberately
# does not open an SMTP session: with smtpd_milters configured that would
# show up as an extra connection at the milter.  `postfix start` (master -w)
# only returns after the master has bound its sockets, so a listening port
# means connections are served.  Use pf_wait_smtp PORT for a 220 probe.
_pf_wait_listeners() {
    local port i ok
    for port in $(sed -n 's/^127\.0\.0\.1:\([0-9]*\)[[:space:]]\{1,\}inet[[:space:]].*/\1/p' "$PF_CONFDIR/master.cf"); do
        ok=
        for i in $(seq 1 100); do
            if _pf_listening "$port"; then ok=1; break; fi
            sleep 0.1
        done
        [ -n "$ok" ] || { _pf_die "nothing listens on 127.0.0.1:$port"; return 1; }
    done
}

# pf_wait_smtp [PORT [TIMEOUT]]: wait until PORT (default $PF_PORT) sends
# an SMTP 220 greeting (opens and QUITs one SMTP session)
pf_wait_smtp() {
    local port=${1:-$PF_PORT} timeout=${2:-10} end
    end=$(( $(date +%s) + timeout ))
    while :; do
        _pf_port_answers "$port" && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

# pf_stop: stop Postfix and the sink; waits until all processes are gone
pf_stop() {
    [ -n "${PF_WORKDIR:-}" ] && [ -d "$PF_WORKDIR" ] || return 0
    local pids pid i sinkpid sport
    if [ -f "$PF_CONFDIR/main.cf" ]; then
        postfix -c "$PF_CONFDIR" stop >/dev/null 2>&1 || true
    fi
    if [ -s "$PF_WORKDIR/run/sink.pid" ]; then
        read -r sinkpid sport <"$PF_WORKDIR/run/sink.pid"
        _pf_is_sink_pid "$sinkpid" && kill -TERM "$sinkpid" 2>/dev/null
    fi
    for i in $(seq 1 100); do
        pids=$(pf_procs)
        [ -z "$pids" ] && break
        sleep 0.1
    done
    if [ -n "$pids" ]; then
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
        sleep 0.2
        pids=$(pf_procs)
    fi
    [ -z "$pids" ]
}

# pf_reload: re-read main.cf/master.cf.  Postfix lets old smtpd processes
# finish at their convenience; this waits until the listeners answer.
pf_reload() {
    _pf_need_init || return 1
    local before old pid i alive
    before=$(grep -c '/master\[[0-9]*\]: reload' "$PF_LOGFILE" 2>/dev/null) || true
    old=$(for pid in $(pf_procs); do
              [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = smtpd ] && echo "$pid"
          done; true)
    postfix -c "$PF_CONFDIR" reload >/dev/null 2>&1 || { _pf_die "postfix reload failed"; return 1; }
    # the master logs "reload -- version ..." once it has re-read the
    # configuration; old smtpd processes are then told to terminate
    for i in $(seq 1 100); do
        [ "$(grep -c '/master\[[0-9]*\]: reload' "$PF_LOGFILE" 2>/dev/null)" -gt "${before:-0}" ] && break
        sleep 0.1
    done
    for i in $(seq 1 100); do
        alive=
        for pid in $old; do
            [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = smtpd ] && alive=1
        done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    _pf_load_ports
    _pf_wait_listeners
}

# pf_send FROM RCPTS FILE [extra swaks args...]
#   returns 0: accepted (2xx after DATA), 1: 4xx, 2: 5xx, 3: other failure.
#   The final reply (to end-of-DATA, or the failing MAIL/RCPT/DATA/banner
#   reply) is written to $PF_LAST_REPLY, swaks's transcript to
#   $PF_LAST_TRANSCRIPT.
pf_send() {
    _pf_need_init || return 1
    local from=$1 rcpts=$2 file=$3
    shift 3 || { _pf_die "usage: pf_send FROM RCPTS FILE [swaks args]"; return 3; }
    [ -r "$file" ] || { _pf_die "cannot read $file"; return 3; }
    # swaks would prompt (and spin on EOF) for an empty --to
    [ -n "${rcpts//[, ]/}" ] || { _pf_die "pf_send: no recipients"; return 3; }
    _pf_load_ports
    [ -n "$from" ] || from='<>'
    local data rc code
    data=$(mktemp "$PF_WORKDIR/send/data.XXXXXX") || return 3
    # CRLF line ends, final line end, dot-stuffing, closing dot (swaks adds
    # the CRLF after it)
    perl -e 'local $/; binmode STDIN; binmode STDOUT; my $d = <STDIN>; $d = "" unless defined $d;
             $d =~ s/\r?\n/\r\n/g; $d .= "\r\n" if length($d) && $d !~ /\r\n\z/;
             $d =~ s/^\./../mg; print $d, ".";' <"$file" >"$data" || return 3
    rc=0
    timeout 600 swaks --server 127.0.0.1 --port "$PF_PORT" --helo client.pftest.invalid \
        --from "$from" --to "$rcpts" --data "@$data" --no-data-fixup \
        --suppress-data --timeout 120 "$@" >"$PF_LAST_TRANSCRIPT" 2>&1 </dev/null || rc=$?
    rm -f "$data"
    # last complete server reply before swaks's QUIT (or the very last one)
    perl -ne '
        s/\r?\n\z//;
        if (/^ [-~]> QUIT$/) { $final = $last; $done = 1; next }
        next if $done;
        if (/^<(?:- |~ |\*\*|~\*) ?(\d{3})([- ]|$)(.*)$/) {
            $cur .= "$1$2$3\n";
            if ($2 ne "-") { $last = $cur; $cur = "" }
        }
        END { $final = $last unless defined $final; print $final if defined $final }
    ' "$PF_LAST_TRANSCRIPT" >"$PF_LAST_REPLY"
    code=$(tail -n1 "$PF_LAST_REPLY" | cut -c1)
    if [ "$rc" = 0 ]; then
        [ "$code" = 2 ] && return 0
        return 3
    fi
    case $code in
    4) return 1 ;;
    5) return 2 ;;
    *) return 3 ;;
    esac
}

# pf_sink_files: sink message files, arrival order
pf_sink_files() {
    _pf_need_init || return 1
    local f
    for f in "$PF_SINKDIR"/[0-9]*.eml; do
        [ -e "$f" ] && echo "$f"
    done
    return 0
}

# pf_sink_count: number of messages in the sink
pf_sink_count() {
    pf_sink_files | wc -l
}

# pf_sink_env FILE.eml: path of the envelope file of a sink message
pf_sink_env() { echo "${1%.eml}.env"; }

# pf_sink_from FILE.eml / pf_sink_rcpts FILE.eml: envelope sender / rcpts
pf_sink_from() { sed -n 's/^from=//p' "$(pf_sink_env "$1")"; }
pf_sink_rcpts() { sed -n 's/^rcpt=//p' "$(pf_sink_env "$1")"; }

# pf_wait_sink N [TIMEOUT_SECONDS]: wait until >= N messages are in the sink
pf_wait_sink() {
    _pf_need_init || return 1
    local n=${1:?usage: pf_wait_sink N [TIMEOUT]} timeout=${2:-30} end
    end=$(( $(date +%s) + timeout ))
    while :; do
        [ "$(pf_sink_count)" -ge "$n" ] && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

# pf_queue_count [hold|deferred|active|incoming|maildrop]: messages in the
# instance's queue (default: all of them), by counting queue files
pf_queue_count() {
    _pf_need_init || return 1
    local q qs
    if [ $# -gt 0 ]; then qs=$*; else qs="maildrop incoming active deferred hold"; fi
    for q in $qs; do
        case $q in
        maildrop|incoming|active|deferred|hold) ;;
        *) _pf_die "unknown queue $q"; return 1 ;;
        esac
        if [ -d "$PF_QUEUEDIR/$q" ]; then find "$PF_QUEUEDIR/$q" -type f; fi
    done | wc -l
}

# pf_flush: attempt to deliver all queued mail now
pf_flush() {
    _pf_need_init || return 1
    postqueue -c "$PF_CONFDIR" -f
}

# pf_log: path of the Postfix log file (made readable)
pf_log() {
    _pf_need_init || return 1
    if [ -f "$PF_LOGFILE" ]; then chmod 644 "$PF_LOGFILE" 2>/dev/null || true; fi
    echo "$PF_LOGFILE"
}

# pf_wait_log REGEX [TIMEOUT]: wait until the Postfix log matches (grep -E)
pf_wait_log() {
    _pf_need_init || return 1
    local re=$1 timeout=${2:-30} end
    end=$(( $(date +%s) + timeout ))
    while :; do
        grep -Eq -- "$re" "$PF_LOGFILE" 2>/dev/null && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

# pf_sink_file_of_last [TIMEOUT]: the sink file of the message pf_send
# last submitted, found by identity, not by arrival order (a delivery that
# was deferred under load may arrive after a later one): the DATA reply
# names Postfix's queue id, and Postfix's log line for that id names the
# sink file ("status=sent (250 2.0.0 Ok: queued as NNNNNN)").
pf_sink_file_of_last() {
    _pf_need_init || return 1
    local qid n
    qid=$(sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' "$PF_LAST_REPLY" | tail -n 1)
    [ -n "$qid" ] || { _pf_die "no queue id in the last reply"; return 1; }
    pf_wait_log "$qid: to=<.*status=sent \(250 2\.0\.0 Ok: queued as [0-9]+\)" "${1:-30}" || return 1
    n=$(grep -E "$qid: to=<.*status=sent" "$PF_LOGFILE" | sed -n 's/.*queued as \([0-9]*\)).*/\1/p' | tail -n 1)
    [ -n "$n" ] && [ -f "$PF_SINKDIR/$n.eml" ] || { _pf_die "sink file $n for $qid missing"; return 1; }
    echo "$PF_SINKDIR/$n.eml"
}

# pf_sink_stop / pf_sink_start: stop / restart only the capture sink (to
# make deliveries defer); the sink keeps its port when it can.
pf_sink_stop() {
    _pf_need_init || return 1
    local pid sport i
    [ -s "$PF_WORKDIR/run/sink.pid" ] || return 0
    read -r pid sport <"$PF_WORKDIR/run/sink.pid"
    _pf_is_sink_pid "$pid" && kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do
        [ -z "$(pf_procs_sink)" ] && return 0
        sleep 0.1
    done
    return 1
}
pf_sink_start() {
    _pf_need_init || return 1
    _pf_load_ports
    _pf_sink_running && return 0
    if ! _pf_start_sink "$PF_SINK_PORT" 2>/dev/null; then
        _pf_start_sink || return 1
        pf_conf "relayhost = [127.0.0.1]:$PF_SINK_PORT"
        _pf_master_running && pf_reload
    fi
    return 0
}
pf_procs_sink() {
    [ -n "${PF_WORKDIR:-}" ] || return 0
    perl -e 'opendir my $d, "/proc" or exit 0;
        for (grep { /^\d+$/ } readdir $d) {
            my $c = readlink "/proc/$_/cwd"; print "$_\n" if defined $c && $c eq $ARGV[0] }' \
        "$PF_WORKDIR/run/sinkproc"
}

# pf_strip_received FILE: print FILE with CRLF -> LF and with the leading
# Received: header(s) added by this instance ("by $myhostname (Postfix)")
# removed, for comparing a sink file with what was sent.
pf_strip_received() {
    local h=pftest.localdomain
    [ -n "${PF_CONFDIR:-}" ] && h=$(postconf -c "$PF_CONFDIR" -h myhostname 2>/dev/null)
    PF_STRIP_HOST=$h perl -e 'local $/; binmode STDIN; binmode STDOUT; my $d = <STDIN>; $d = "" unless defined $d;
             $d =~ s/\r\n/\n/g;
             while ($d =~ /\A(Received:[^\n]*\n(?:[ \t][^\n]*\n)*)/) {
                 my $h = $1;
                 last unless $h =~ /\bby \Q$ENV{PF_STRIP_HOST}\E \(Postfix\)/;
                 substr($d, 0, length($h)) = "";
             }
             print $d;' <"$1"
}
