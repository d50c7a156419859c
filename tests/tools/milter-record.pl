#!/usr/bin/perl
# milter-record.pl -- a milter that only writes down what the MTA sends,
# to compare the packets of a real MTA with those of the benchmark's load
# generator.  Only perl-base modules are used.
#
# usage: milter-record.pl SOCKET-PATH LOG
#
# It listens on the unix socket SOCKET-PATH (mode 0777) and negotiates
# as smime-milter does: the same protocol steps skipped and left
# unanswered (SMFIP_NOHELO, NOUNKNOWN, NODATA, NOEOH, NR_MAIL, NR_RCPT,
# NR_HDR, NR_BODY) and the same macro lists (connect "{daemon_name}
# {client_addr}", MAIL "{auth_authen} i", end of message "i").  It answers
# "continue" to every step that wants an answer and "accept" at end of
# message.  Each packet received is one word appended to LOG: its command
# letter, or for macros D and the letter of the step they belong to (DM,
# DR, DL, ...); every connection ends with a newline.  It runs until it
# is killed.
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

@ARGV == 2 or die "usage: milter-record.pl SOCKET-PATH LOG\n";
my ($path, $logfile) = @ARGV;
unlink $path;
my $srv = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $path,
    Listen => 16) or die "milter-record.pl: $path: $!\n";
chmod 0777, $path;

# SMFIP_* (libmilter/mfdef.h)
my $proto = 0x2 | 0x100 | 0x200 | 0x40 | 0x4000 | 0x8000 | 0x80 | 0x80000;
my @symlists = ([0, "{daemon_name} {client_addr}"], [2, "{auth_authen} i"],
    [5, "i"]);
my %noreply = map { $_ => 1 } qw(D M R L B A);

sub packet { my ($cmd, $data) = @_; pack('Na*', 1 + length $data) . $cmd . $data }

while (my $c = $srv->accept) {
    open my $log, '>>', $logfile or die "milter-record.pl: $logfile: $!\n";
    my $buf = '';
    my @words;
    my $fill = sub {
        my ($n) = @_;
        while (length $buf < $n) {
            my $r = sysread $c, $buf, 65536, length $buf;
            return 0 unless $r;
        }
        return 1;
    };
    while ($fill->(4)) {
        my $len = unpack 'N', $buf;
        last unless $len > 0 && $fill->(4 + $len);
        my $cmd = substr $buf, 4, 1;
        my $data = substr $buf, 5, $len - 1;
        substr($buf, 0, 4 + $len) = '';
        push @words, $cmd eq 'D' ? 'D' . substr($data, 0, 1) : $cmd;
        my $out = '';
        if ($cmd eq 'O') {
            my $opt = pack 'NNN', 6, 0x1ff, $proto;
            $opt .= pack('N', $_->[0]) . $_->[1] . "\0" for @symlists;
            $out = packet('O', $opt);
        } elsif ($cmd eq 'E') {
            $out = packet('a', '');
        } elsif ($cmd eq 'Q') {
            last;
        } elsif (!$noreply{$cmd}) {
            $out = packet('c', '');
        }
        syswrite $c, $out if length $out;
    }
    print $log "@words\n";
    close $log;
    close $c;
}
