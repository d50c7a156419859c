#!/usr/bin/perl
# fault-check.pl -- what the fault tests need to know about each message
# that arrived at the sink, with one or two `openssl cms` runs per message
# (a shell loop costs ten processes more per message; the tests check
# hundreds).  Only perl-base modules are used.
#
# usage: fault-check.pl [--rcpt CERT KEY] [--cert NAME=PEMFILE]... FILE...
#
# For every FILE (a message as the sink stored it; the sender is
# tests/tools/smtp-retry.pl) one line on stdout, nine fields:
#     FILE ID KIND DEC SIGNER CERTS BODY LEAK STAMP
#   ID      the id from the outer Message-ID <ID@fault.test>, or -
#   KIND    the outer Content-Type: enveloped (application/pkcs7-mime
#           enveloped-data or authEnveloped-data), signed (multipart/signed),
#           opaque (other pkcs7-mime), plain (anything else)
#   DEC     enveloped: ok when `openssl cms -decrypt` opens it with the
#           --rcpt certificate and key, else fail; otherwise -
#   SIGNER  (only with --cert, - otherwise; the content is then taken as
#           it is) the signature of the (decrypted) message checked with
#           `openssl cms -verify -noverify` (the signature itself, not the
#           chain): the NAME of the --cert whose certificate signed it,
#           unknown (another certificate), fail (no good signature), or -
#           (not signed)
#   CERTS   NAMEs of the --cert certificates carried in the signature,
#           comma-separated, or -
#   BODY    complete when the content (after decryption and unwrapping the
#           signature) holds every body line of message ID in order and its
#           end marker; incomplete when it holds some; none otherwise
#   LEAK    yes when the raw FILE of an enveloped message shows body lines
#           in clear, else no
#   STAMP   the X-SMIME-Milter field, blanks replaced by _, or -
use strict;
use warnings;
use File::Temp ();

my ($rcert, $rkey, @certs);
while (@ARGV && $ARGV[0] =~ /^--/) {
    my $o = shift @ARGV;
    if ($o eq '--rcpt') {
        ($rcert, $rkey) = splice(@ARGV, 0, 2);
    } elsif ($o eq '--cert') {
        my ($n, $f) = split /=/, shift(@ARGV), 2;
        push @certs, [$n, pem_bodies(slurp($f))];
    } else {
        die "fault-check.pl: unknown option $o\n";
    }
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    binmode $fh;
    local $/;
    my $d = <$fh>;
    return defined $d ? $d : '';
}

# the base64 of every certificate in a PEM text, white space removed
sub pem_bodies {
    my @b;
    while ($_[0] =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/sg) {
        (my $x = $1) =~ s/\s+//g;
        push @b, $x;
    }
    return @b;
}

sub cert_name {
    my ($b64) = @_;
    for my $c (@certs) {
        return $c->[0] if grep { $_ eq $b64 } @{$c}[1 .. $#$c];
    }
    return undef;
}

# the outer header of a message: name (lower case) -> first value, unfolded
sub header {
    my ($d) = @_;
    my ($h) = $d =~ /\A(.*?)\r?\n\r?\n/s;
    $h = '' unless defined $h;
    $h =~ s/\r?\n([ \t])/$1/g;
    my %h;
    for (split /\r?\n/, $h) {
        my ($n, $v) = /^([^:\s]+):[ \t]*(.*)$/ or next;
        $h{lc $n} = $v unless exists $h{lc $n};
    }
    return \%h;
}

sub body_state {
    my ($d, $id) = @_;
    return 'none' unless defined $id && $d =~ /^fault-id: \Q$id\E\r?$/m;
    my $n = 0;
    my $ok = 1;
    while ($d =~ /^\Q$id\E line (\d+) /mg) {
        $n++;
        $ok = 0 if $1 != $n;
    }
    return 'complete' if $ok && $n > 0 && $d =~ /^fault-end: \Q$id\E lines=$n\r?$/m;
    return 'incomplete';
}

my $tmp = File::Temp->newdir('fault-check.XXXXXX', TMPDIR => 1);
# openssl's complaints go here, not into the test's TAP output
open STDERR, '>', "$tmp/stderr" or die "$tmp/stderr: $!";
for my $f (@ARGV) {
    my $raw = slurp($f);
    my $h = header($raw);
    my ($id) = ($h->{'message-id'} // '') =~ /<([^@>]+)\@fault\.test>/;
    my $ct = $h->{'content-type'} // '';
    my $kind = $ct =~ m{^application/(x-)?pkcs7-mime}i
        ? ($ct =~ /smime-type="?(auth)?enveloped-data/i ? 'enveloped' : 'opaque')
        : $ct =~ m{^multipart/signed}i ? 'signed' : 'plain';
    my ($dec, $signer, $inc, $leak) = ('-', '-', '-', 'no');
    my $content = $raw;
    if ($kind eq 'enveloped') {
        $leak = 'yes' if defined $id && $raw =~ /^\Q$id\E line /m;
        $dec = 'fail';
        if (defined $rcert
            && system('openssl', 'cms', '-decrypt', '-in', $f, '-recip', $rcert,
                      '-inkey', $rkey, '-out', "$tmp/dec") == 0) {
            $dec = 'ok';
            $content = slurp("$tmp/dec");
        } else {
            $content = '';
        }
    }
    # the (decrypted) content: a signature to check?
    my $inner = $kind eq 'signed' ? $raw : $content;
    if (@certs && (header($inner)->{'content-type'} // '') =~
        m{^(multipart/signed|application/(x-)?pkcs7-mime)}i) {
        my $in = "$tmp/in";
        open my $w, '>', $in or die "$in: $!";
        binmode $w;
        print $w $inner;
        close $w;
        unlink "$tmp/signer", "$tmp/certs", "$tmp/out";
        if (system('openssl', 'cms', '-verify', '-noverify', '-in', $in,
                   '-signer', "$tmp/signer", '-certsout', "$tmp/certs",
                   '-out', "$tmp/out") == 0) {
            my ($s) = pem_bodies(slurp("$tmp/signer"));
            $signer = defined $s ? (cert_name($s) // 'unknown') : 'unknown';
            my %seen;
            my @n = grep { defined && !$seen{$_}++ } map { cert_name($_) }
                pem_bodies(slurp("$tmp/certs"));
            $inc = @n ? join(',', @n) : '-';
            $content = slurp("$tmp/out");
        } else {
            $signer = 'fail';
            $content = '';
        }
    }
    my $stamp = $h->{'x-smime-milter'} // '-';
    $stamp =~ s/\s+/_/g;
    print join(' ', $f, $id // '-', $kind, $dec, $signer, $inc,
               body_state($content, $id), $leak, $stamp eq '' ? '-' : $stamp), "\n";
}
