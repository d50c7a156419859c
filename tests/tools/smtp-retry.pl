#!/usr/bin/perl
# smtp-retry.pl -- a small SMTP sender that behaves like an upstream MTA:
# it sends COUNT numbered messages over CONCURRENCY parallel connections
# and sends again every message that got a temporary failure (a 4xx reply
# at any stage, a connection refused or dropped, a timeout) until it is
# accepted, a 5xx rejects it, or the deadline passes.  smtp-source and
# swaks send once; the fault tests need the resend, because with a milter
# in smtpd a tempfail is a 4xx to the client and the message never enters
# the Postfix queue.  Only perl-base modules are used.
#
# usage: smtp-retry.pl --port PORT --from ADDR --to ADDR[,ADDR...]
#            --count N --dir DIR [--id PREFIX] [--concurrency C]
#            [--size BYTES] [--deadline SECONDS] [--retry-ms MS]
#            [--io-timeout SECONDS] [--pace-ms MS] [--slow-ms MS]
#            [--host 127.0.0.1]
#
# --pace-ms: a pause between two messages of a worker; --slow-ms: a pause
# between the last RCPT TO and DATA, so that the transaction stays open
# that long (a milter has seen MAIL and RCPT, not yet the message).
#
# Message i (1..N) has the id PREFIX-00000i, carried in Message-ID
# (<ID@fault.test>), X-Fault-Id and Subject, and a text/plain body:
#     fault-id: ID
#     ID line 00001 <filler>        (as many lines as --size asks for)
#     ...
#     fault-end: ID lines=NNNNN
# so that a checker can tell a complete body from a truncated one after
# the milter has signed and encrypted it.
#
# Every attempt is logged, one line each, to DIR/log.W (W = worker):
#     ok ID n=ATTEMPT qid=POSTFIX-QUEUE-ID
#     temp ID n=ATTEMPT stage=STAGE reply=CODE TEXT   (4xx: sent again)
#     neterr ID n=ATTEMPT stage=STAGE error=TEXT      (sent again)
#     perm ID n=ATTEMPT stage=STAGE reply=CODE TEXT   (5xx: not sent again)
#     giveup ID n=ATTEMPTS                            (deadline passed)
# and flushed at once, so a test can follow the run (grep -h '^ok ' DIR/log.*).
# At the end one line goes to stdout:
#     sent=N accepted=A tempfails=T neterrs=E resent=R perm=P giveup=G attempts=X
# (resent: messages that needed more than one attempt).  Exit status 0 when
# every message was accepted, 1 otherwise, 2 on a usage error.
use strict;
use warnings;
use IO::Socket::INET;
use POSIX qw(strftime :sys_wait_h);

my %o = (host => '127.0.0.1', id => 'msg', concurrency => 1, size => 512,
         deadline => 120, 'retry-ms' => 200, 'io-timeout' => 60,
         'pace-ms' => 0, 'slow-ms' => 0);
while (@ARGV) {
    my $k = shift @ARGV;
    $k =~ s/^--// or usage("bad argument $k");
    exists $o{$k} or grep { $_ eq $k } qw(port from to count dir)
        or usage("unknown option --$k");
    @ARGV or usage("--$k needs a value");
    $o{$k} = shift @ARGV;
}
for (qw(port from to count dir)) { defined $o{$_} or usage("--$_ is required") }
$o{$_} =~ /^\d+$/ or usage("--$_ must be a number")
    for qw(port count concurrency size deadline retry-ms io-timeout pace-ms
           slow-ms);
-d $o{dir} or usage("$o{dir}: not a directory");
$o{concurrency} = 1 if $o{concurrency} < 1;

sub usage {
    print STDERR "smtp-retry.pl: $_[0]\n";
    exit 2;
}

my @rcpts = split /\s*,\s*/, $o{to};
my $deadline = time + $o{deadline};

sub msg_id { sprintf '%s-%06d', $o{id}, $_[0] }

sub message {
    my ($id) = @_;
    my $date = strftime('%a, %d %b %Y %H:%M:%S +0000', gmtime);
    my $h = "From: <$o{from}>\r\nTo: " . join(', ', map {"<$_>"} @rcpts) .
        "\r\nSubject: fault test $id\r\nDate: $date\r\n" .
        "Message-ID: <$id\@fault.test>\r\nX-Fault-Id: $id\r\n" .
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
    my $filler = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    # --size counts the body lines, which all have the same length
    my $len = length(sprintf("%s line %05d %s\r\n", $id, 1, $filler));
    my $lines = int($o{size} / $len);
    $lines = 1 if $lines < 1;
    my $b = "fault-id: $id\r\n";
    $b .= sprintf("%s line %05d %s\r\n", $id, $_, $filler) for 1 .. $lines;
    $b .= "fault-end: $id lines=$lines\r\n";
    $b =~ s/^\./../mg;
    return $h . $b;
}

# read one (possibly multi-line) reply: (code, text) or die
sub reply {
    my ($s) = @_;
    my ($code, $text) = ('', '');
    while (1) {
        my $l = <$s>;
        defined $l or die "connection closed\n";
        $l =~ s/\r?\n\z//;
        $l =~ /^(\d{3})([ -])(.*)$/ or die "bad reply line: $l\n";
        ($code, $text) = ($1, $text eq '' ? $3 : "$text $3");
        last if $2 eq ' ';
    }
    return ($code, $text);
}

# one attempt: ('ok', qid) | ('temp'|'perm', stage, reply) | ('neterr', stage, error)
sub attempt {
    my ($id) = @_;
    my $stage = 'connect';
    my @r = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        local $SIG{PIPE} = 'IGNORE';
        alarm $o{'io-timeout'};
        my $s = IO::Socket::INET->new(PeerAddr => $o{host}, PeerPort => $o{port},
                                      Proto => 'tcp', Timeout => 10)
            or die "connect: $!\n";
        binmode $s;
        my $step = sub {    # send a command (undef: none), expect a class
            my ($cmd, $want, $name) = @_;
            $stage = $name;
            print $s $cmd if defined $cmd;
            my ($c, $t) = reply($s);
            return () if substr($c, 0, 1) eq $want;
            return (substr($c, 0, 1) eq '5' ? 'perm' : 'temp', $stage, "$c $t");
        };
        my @f;
        @f = $step->(undef, '2', 'greeting') and return @f;
        @f = $step->("EHLO client.fault.test\r\n", '2', 'ehlo') and return @f;
        @f = $step->("MAIL FROM:<$o{from}>\r\n", '2', 'mail') and return @f;
        for my $r (@rcpts) {
            @f = $step->("RCPT TO:<$r>\r\n", '2', 'rcpt') and return @f;
        }
        select(undef, undef, undef, $o{'slow-ms'} / 1000) if $o{'slow-ms'};
        @f = $step->("DATA\r\n", '3', 'data') and return @f;
        $stage = 'dot';
        print $s message($id), ".\r\n";
        my ($c, $t) = reply($s);
        my $first = substr($c, 0, 1);
        if ($first eq '2') {
            print $s "QUIT\r\n";
            my $qid = $t =~ /queued as (\S+)/ ? $1 : '-';
            close $s;
            return ('ok', $qid);
        }
        return ($first eq '5' ? 'perm' : 'temp', $stage, "$c $t");
    };
    alarm 0;
    if (!@r) {
        my $e = $@ || 'no result';
        $e =~ s/\s+\z//;
        $e =~ s/\s+/ /g;
        @r = ('neterr', $stage, $e);
    }
    return @r;
}

sub worker {
    my ($w) = @_;
    open my $log, '>>', "$o{dir}/log.$w" or die "$o{dir}/log.$w: $!";
    select((select($log), $| = 1)[0]);
    my $fail = 0;
    for (my $i = $w + 1; $i <= $o{count}; $i += $o{concurrency}) {
        my $id = msg_id($i);
        my $n = 0;
        while (1) {
            if (time > $deadline) {
                print $log "giveup $id n=$n\n";
                $fail = 1;
                last;
            }
            $n++;
            my @r = attempt($id);
            if ($r[0] eq 'ok') {
                print $log "ok $id n=$n qid=$r[1]\n";
                last;
            }
            if ($r[0] eq 'neterr') {
                print $log "neterr $id n=$n stage=$r[1] error=$r[2]\n";
            } else {
                print $log "$r[0] $id n=$n stage=$r[1] reply=$r[2]\n";
            }
            if ($r[0] eq 'perm') {
                $fail = 1;
                last;
            }
            # back off like an MTA, but in tenths of seconds: a little
            # longer after each failure, capped at 5 x --retry-ms
            my $ms = $o{'retry-ms'} * ($n < 5 ? $n : 5);
            select(undef, undef, undef, $ms / 1000);
        }
        select(undef, undef, undef, $o{'pace-ms'} / 1000) if $o{'pace-ms'};
    }
    close $log;
    return $fail;
}

my %kids;
for my $w (0 .. $o{concurrency} - 1) {
    my $pid = fork;
    defined $pid or die "fork: $!";
    if ($pid == 0) {
        exit(worker($w) ? 1 : 0);
    }
    $kids{$pid} = $w;
}
my $rc = 0;
while (%kids) {
    my $pid = waitpid(-1, 0);
    last if $pid < 0;
    delete $kids{$pid};
    $rc = 1 if $? != 0;
}

my %c = map { $_ => 0 } qw(accepted tempfails neterrs resent perm giveup attempts);
for my $w (0 .. $o{concurrency} - 1) {
    open my $l, '<', "$o{dir}/log.$w" or next;
    while (<$l>) {
        my ($what, $n) = /^(\S+) \S+ n=(\d+)/ or next;
        if ($what eq 'ok') {
            $c{accepted}++;
            $c{resent}++ if $n > 1;
        }
        $c{tempfails}++ if $what eq 'temp';
        $c{neterrs}++ if $what eq 'neterr';
        $c{perm}++ if $what eq 'perm';
        $c{giveup}++ if $what eq 'giveup';
        $c{attempts}++ unless $what eq 'giveup';
    }
}
printf "sent=%d accepted=%d tempfails=%d neterrs=%d resent=%d perm=%d giveup=%d attempts=%d\n",
    $o{count}, @c{qw(accepted tempfails neterrs resent perm giveup attempts)};
exit($rc || $c{accepted} != $o{count} ? 1 : 0);
