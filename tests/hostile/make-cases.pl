#!/usr/bin/perl
# make-cases.pl OUTDIR [PKIDIR] -- the hostile-input corpus of t-hostile.sh,
# generated at test time (nothing large is committed).  One message per
# case, OUTDIR/NAME.eml, CRLF line ends unless the case is about line ends:
# From alice@example.org to bob@example.net, then the case's own header
# fields and body.  With PKIDIR (tests/pki/mkpki.sh) the cases built from
# real CMS (truncated, padded, with junk in the base64) are made too, with
# openssl: enveloped for bob, signed by alice.
#
# Each case is described where it is made; tests/hostile/expected.tsv holds
# the verdicts t-hostile.sh expects for every case and direction.  Only
# perl core is used (no MIME::Base64: the base64 is done here).
use strict;
use warnings;

my ($out, $pki) = @ARGV;
die "usage: make-cases.pl OUTDIR [PKIDIR]\n" unless defined $out;
mkdir $out unless -d $out;

# ------------------------------------------------------------ helpers
sub b64 {    # base64, no line breaks
    my ($s) = @_;
    my $r = join '', map { substr(pack('u', $_), 1, -1) } ($s =~ /(.{1,45})/gs);
    $r =~ tr|` -_|AA-Za-z0-9+/|;
    my $pad = (3 - length($s) % 3) % 3;
    substr($r, -$pad) = '=' x $pad if $pad;
    return $r;
}
sub b64lines {    # base64 in CRLF lines of 76
    my $r = b64($_[0]);
    $r =~ s/(.{1,76})/$1\r\n/g;
    return $r;
}
sub der_len {
    my ($n) = @_;
    return chr($n) if $n < 128;
    my $b = '';
    while ($n > 0) { $b = chr($n & 0xff) . $b; $n >>= 8; }
    return chr(0x80 | length $b) . $b;
}
sub tlv { my ($tag, $c) = @_; return chr($tag) . der_len(length $c) . $c; }
sub seq { return tlv(0x30, join '', @_); }
sub hexb { my $h = shift; $h =~ s/\s+//g; return pack('H*', $h); }

my $OID_ENVELOPED = hexb('06 09 2a 86 48 86 f7 0d 01 07 03');
my $OID_SIGNED    = hexb('06 09 2a 86 48 86 f7 0d 01 07 02');
my $OID_DATA      = hexb('06 09 2a 86 48 86 f7 0d 01 07 01');
my $OID_AES256CBC = hexb('06 09 60 86 48 01 65 03 04 01 2a');
my $OID_SHA256    = hexb('06 09 60 86 48 01 65 03 04 02 01');

my $seed = 20261122;
sub junk {    # deterministic pseudo-random bytes
    my ($n) = @_;
    my $s = '';
    for (1 .. $n) {
        $seed = ($seed * 1103515245 + 12345) % 2147483648;
        $s .= chr(($seed >> 16) & 0xff);
    }
    return $s;
}

# write NAME, HEADER-FIELDS (each "Name: value", CRLF added), BODY
sub write_case {
    my ($name, $hdrs, $body) = @_;
    open(my $fh, '>:raw', "$out/$name.eml") or die "$out/$name.eml: $!";
    print $fh "From: <alice\@example.org>\r\nTo: <bob\@example.net>\r\n";
    print $fh "Subject: hostile $name\r\n"
        unless grep { /^Subject:/i } @$hdrs;
    print $fh "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n";
    print $fh "Message-ID: <$name\@hostile.test>\r\nMIME-Version: 1.0\r\n";
    print $fh "$_\r\n" for @$hdrs;
    print $fh "\r\n", $body;
    close $fh or die "$out/$name.eml: $!";
}
my $P7M_CT = 'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; '
    . 'name="smime.p7m"';
sub p7m {    # an application/pkcs7-mime message carrying DER
    my ($name, $der, $type) = @_;
    my $ct = $P7M_CT;
    $ct =~ s/enveloped-data/$type/ if defined $type;
    write_case($name,
        [$ct, 'Content-Transfer-Encoding: base64',
            'Content-Disposition: attachment; filename="smime.p7m"'],
        b64lines($der));
}
# a multipart/signed message: first part text, second part raw text given
sub signed_msg {
    my ($name, $sigpart, $ctparams) = @_;
    $ctparams //= 'protocol="application/pkcs7-signature"; micalg=sha-256; '
        . 'boundary="sig"';
    write_case($name, ["Content-Type: multipart/signed; $ctparams"],
        "--sig\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n"
            . "--sig\r\n$sigpart\r\n--sig--\r\n");
}
my $SIGHDR = "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
    . "Content-Transfer-Encoding: base64\r\n\r\n";
my $TEXT = "Content-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n";

# ------------------------------------------------------- garbage CMS
# A ContentInfo claiming 32767 bytes, holding 24.
p7m('cms-len-past-end', "\x30\x82\x7f\xff" . $OID_ENVELOPED
        . "\xa0\x82\x7f\xf0\x30\x05\x02\x01\x00\x31\x00");
# Lengths of 2^31 and 2^31-1 at two levels.
p7m('cms-len-2g', "\x30\x84\x80\x00\x00\x00" . $OID_ENVELOPED
        . "\xa0\x84\x7f\xff\xff\xff\x30\x84\x7f\xff\xff\xf0\x02\x01\x00");
# A length field of 8 bytes (2^64-1) and one of 127 bytes.
p7m('cms-len-huge', "\x30\x88" . ("\xff" x 8) . $OID_ENVELOPED
        . "\xa0\xff" . ("\xff" x 127) . "\x30\x00");
# Indefinite lengths opened and never closed (no end-of-contents).
p7m('cms-indef-unclosed', "\x30\x80" . $OID_ENVELOPED
        . "\xa0\x80\x30\x80\x02\x01\x00\x31\x80\x30\x80");
# 100,000 nested indefinite-length SEQUENCEs inside the content.
p7m('cms-deep-indef', "\x30\x80" . $OID_ENVELOPED . "\xa0\x80"
        . ("\x30\x80" x 100000));
# 20,000 nested definite-length SEQUENCEs inside [0] of signed-data.
{
    my $d = "\x05\x00";
    $d = seq($d) for 1 .. 20000;
    p7m('cms-deep-definite', seq($OID_SIGNED, tlv(0xa0, $d)), 'signed-data');
}
# A contentType OID of 100 KB: one arc of 100,000 bytes, and 50,000 arcs.
p7m('cms-oid-100k-arc',
    seq(tlv(0x06, "\x2a" . ("\xff" x 100000) . "\x7f"), tlv(0xa0, "\x30\x00")));
p7m('cms-oid-50k-arcs',
    seq(tlv(0x06, "\x2a" . ("\x81\x01" x 50000)), tlv(0xa0, "\x30\x00")));
# Wrong tags: contentType as an INTEGER, [1] instead of [0], a SET at the
# top, an OCTET STRING where the EnvelopedData SEQUENCE goes.
p7m('cms-tag-integer', seq(tlv(0x02, "\x2a\x86\x48"), tlv(0xa0, "\x30\x00")));
p7m('cms-tag-context1', seq($OID_ENVELOPED, tlv(0xa1, seq("\x02\x01\x00"))));
p7m('cms-tag-set', tlv(0x31, $OID_ENVELOPED . tlv(0xa0, seq("\x02\x01\x00"))));
p7m('cms-tag-octets', seq($OID_ENVELOPED, tlv(0xa0, tlv(0x04, 'x' x 64))));
# An empty SEQUENCE; 4 KB of random bytes; a lone tag byte.
p7m('cms-empty-seq', "\x30\x00");
p7m('cms-random', junk(4096));
p7m('cms-one-byte', "\x30");
# EnvelopedData with no RecipientInfo at all (well-formed otherwise).
p7m('cms-no-recipients',
    seq($OID_ENVELOPED,
        tlv(0xa0,
            seq("\x02\x01\x00", tlv(0x31, ''),
                seq($OID_DATA, seq($OID_AES256CBC, tlv(0x04, "\0" x 16)),
                    tlv(0x80, junk(32)))))));
# SignedData with no signer, carrying content "hello".
p7m('cms-no-signers',
    seq($OID_SIGNED,
        tlv(0xa0,
            seq("\x02\x01\x01", tlv(0x31, seq($OID_SHA256)),
                seq($OID_DATA, tlv(0xa0, tlv(0x04, "hello\r\n"))),
                tlv(0x31, '')))),
    'signed-data');
# application/pkcs7-mime with an empty body, or only line ends.
write_case('pkcs7-empty', [$P7M_CT, 'Content-Transfer-Encoding: base64'], '');
write_case('pkcs7-blank-lines', [$P7M_CT, 'Content-Transfer-Encoding: base64'],
    "\r\n" x 50);
# base64 that is not base64 at all, and a transfer encoding nobody knows.
write_case('pkcs7-not-base64', [$P7M_CT, 'Content-Transfer-Encoding: base64'],
    "this is *not* base64 !!! {}[]\r\n" x 20);
write_case('pkcs7-cte-unknown', [$P7M_CT, 'Content-Transfer-Encoding: x-garbage'],
    b64lines(junk(300)));

# ------------------------------------------------- multipart/signed
write_case('signed-0-parts',
    ['Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
            . 'micalg=sha-256; boundary="sig"'],
    "no delimiter at all\r\n");
write_case('signed-1-part',
    ['Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
            . 'micalg=sha-256; boundary="sig"'],
    "--sig\r\n$TEXT--sig--\r\n");
signed_msg('signed-3-parts', $SIGHDR . b64lines(junk(200)) . "--sig\r\n$TEXT");
signed_msg('signed-no-protocol', $SIGHDR . b64lines(junk(200)),
    'micalg=sha-256; boundary="sig"');
signed_msg('signed-sig-not-cms',
    "Content-Type: application/pkcs7-signature\r\n\r\nnot a signature\r\n");
signed_msg('signed-sig-empty', $SIGHDR);
signed_msg('signed-sig-garbage-der', $SIGHDR . b64lines("\x30\x84\x80\x00\x00\x00"));
signed_msg('signed-sig-deep', $SIGHDR . b64lines("\x30\x80" x 50000));
signed_msg('signed-sig-no-signers', $SIGHDR
        . b64lines(seq($OID_SIGNED,
            tlv(0xa0, seq("\x02\x01\x01", tlv(0x31, ''), seq($OID_DATA),
                tlv(0x31, ''))))));

# ------------------------------------------------------ MIME structure
my $MIX = 'Content-Type: multipart/mixed';
write_case('mime-no-boundary', ["$MIX"], "--x\r\n$TEXT--x--\r\n");
write_case('mime-empty-boundary', ["$MIX; boundary=\"\""], "--\r\n$TEXT----\r\n");
write_case('mime-dup-boundary', ["$MIX; boundary=\"a\"; boundary=\"b\""],
    "--a\r\n$TEXT--b\r\n$TEXT--b--\r\n--a--\r\n");
{
    my $b = 'B' x 85;    # RFC 2046 allows 70
    write_case('mime-long-boundary', ["$MIX; boundary=\"$b\""],
        "--$b\r\n$TEXT--$b\r\n$TEXT--$b--\r\n");
    $b = 'x' x 10000;
    write_case('mime-10k-boundary', ["$MIX; boundary=\"$b\""],
        "--$b\r\n$TEXT--$b--\r\n");
}
# boundaries made of what a boundary should never be: blanks, quotes,
# "--", a prefix of every other line, control characters, 8-bit
write_case('mime-insane-boundary', ["$MIX; boundary=\" -- \\\"q\\\" \""],
    "-- -- \"q\" \r\n$TEXT-- -- \"q\" --\r\n");
write_case('mime-prefix-boundary', ["$MIX; boundary=\"-\""],
    "---\r\n$TEXT---x\r\n----\r\n-----\r\n---\r\n$TEXT----\r\n");
write_case('mime-ctl-boundary', ["$MIX; boundary=\"a\x01\x1b\xff\xfe\""],
    "--a\x01\x1b\xff\xfe\r\n$TEXT--a\x01\x1b\xff\xfe--\r\n");
write_case('mime-boundary-never', ["$MIX; boundary=\"never\""],
    "there is no delimiter line\r\n" x 100);
write_case('mime-no-close', ["$MIX; boundary=\"nc\""],
    "--nc\r\n$TEXT--nc\r\n$TEXT");
# nested 10,000 deep (multipart/mixed and multipart/signed), message/rfc822
# 5,000 deep, 20,000 siblings
{
    my $n = 10000;
    my $s = '';
    $s .= "--b$_\r\nContent-Type: multipart/mixed; boundary=\"b" . ($_ + 1)
        . "\"\r\n\r\n" for 0 .. $n - 1;
    $s .= "--b$n\r\n$TEXT--b$n--\r\n";
    $s .= "--b$_--\r\n" for reverse 0 .. $n - 1;
    write_case('mime-nested-10k', ["$MIX; boundary=\"b0\""], $s);
    $s = '';
    my $sig = "--s%d\r\n${SIGHDR}MIIBAA==\r\n--s%d--\r\n";
    $s .= "--s$_\r\nContent-Type: multipart/signed; "
        . "protocol=\"application/pkcs7-signature\"; boundary=\"s"
        . ($_ + 1) . "\"\r\n\r\n" for 0 .. $n - 1;
    $s .= "--s$n\r\n$TEXT" . sprintf($sig, $n, $n);
    $s .= sprintf($sig, $_, $_) for reverse 0 .. $n - 1;
    write_case('mime-signed-nested-10k',
        ['Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
                . 'micalg=sha-256; boundary="s0"'], $s);
    $s = $TEXT;
    $s = "Subject: level $_\r\nContent-Type: message/rfc822\r\n\r\n$s"
        for 1 .. 5000;
    write_case('mime-rfc822-nested-5k', ['Content-Type: message/rfc822'], $s);
    $s = '';
    $s .= "--p\r\nContent-Type: text/plain\r\n\r\n$_\r\n" for 1 .. 20000;
    write_case('mime-siblings-20k', ["$MIX; boundary=\"p\""], "$s--p--\r\n");
}
# Content-Length lies (outer and in a part)
write_case('content-length-lie', ['Content-Length: 1073741824', "$MIX; boundary=\"cl\""],
    "--cl\r\nContent-Length: 1073741824\r\n$TEXT--cl--\r\n");
# Content-Type garbage and a second Content-Type
write_case('ct-garbage', ['Content-Type: ;;;===;"";/;multipart/;boundary'], "body\r\n");
write_case('ct-duplicate',
    ["$MIX; boundary=\"d\"", 'Content-Type: text/plain; charset=us-ascii'],
    "--d\r\n$TEXT--d--\r\n");
write_case('cte-unknown',
    ['Content-Type: text/plain', 'Content-Transfer-Encoding: x-rot13-please'],
    "uryyb\r\n");

# ------------------------------------------------ bytes and line ends
write_case('nul-body', ['Content-Type: text/plain; charset=us-ascii'],
    "before\0after\r\n" . ("\0" x 1000) . "\r\nend\r\n");
write_case('nul-in-multipart', ["$MIX; boundary=\"n\""],
    "--n\r\nContent-Type: text/plain\r\n\r\na\0b\r\n--n\0--\r\n--n--\r\n");
# the milter protocol carries header values as C strings: the client
# sends "a" (what an MTA can hand over at best)
write_case('nul-header', ["Subject: a\0b", "X-Nul: \0"], "body\r\n");
write_case('bare-cr-header',
    ["Subject: before\rX-Injected: yes", "X-Bare\rName: v", 'Content-Type: text/plain'],
    "body\r\n");
write_case('bare-cr-body', ['Content-Type: text/plain'],
    "line one\rline two\r\rline three\r\n" x 50);
write_case('bare-lf-body', ["$MIX; boundary=\"lf\""],
    "--lf\nContent-Type: text/plain\n\nlf only\n--lf--\n");
{
    my $long = 'x' x 60000;
    write_case('header-60k-line', ["X-Long: $long"], "body\r\n");
    write_case('header-2m-line', ["X-Long: " . ('y' x (2 * 1024 * 1024))], "body\r\n");
    write_case('header-folded-100k', ["X-Folded: start" . ("\r\n z" x 100000)],
        "body\r\n");
    write_case('ct-folded-8k',
        ['Content-Type: text/plain;' . ("\r\n\tp=v;" x 8000) . ' charset=us-ascii'],
        "body\r\n");
    write_case('body-long-line', ['Content-Type: text/plain'],
        ('z' x (2 * 1024 * 1024)) . "\r\n");
}
# 8-bit and broken UTF-8 in header fields
write_case('hdr-8bit',
    ["Subject: caf\xe9 \xff\xfe \xc3\x28 \xed\xa0\x80",
        "X-Latin1: \xe0\xe9\xee\xf5\xfc",
        "Content-Type: text/plain; charset=\"\xff\xfe\"; name=\"\xe9t\xe9.txt\""],
    "8-bit body \xe9\xff\r\n");
write_case('from-8bit',
    ['Subject: from', "Reply-To: \"\xc3\x28\" <x\@example.org>"],
    "body\r\n");
# RFC 2047 encoded-word garbage, also in the address of From
write_case('rfc2047-garbage',
    ['Subject: =?utf-8?B?!!!?= =?x-unknown?Q?=ZZ=?= =?utf-8?q?unterminated =?=?==?'
            . ' =?utf-8*en?b?' . ('QUFB' x 5000) . '?=',
        'Content-Type: text/plain; name="=?utf-8?b?' . ('QUFB' x 100) . '"'],
    "body\r\n");
# base64 bodies with junk characters and broken padding
write_case('base64-junk', ['Content-Type: text/plain', 'Content-Transfer-Encoding: base64'],
    "aGVs*bG8g!d29y\@bGQ=\r\n%%%%\r\nQQ\r\nQQ=\r\nQ===\r\n====\r\nA\r\n");
write_case('base64-multipart-junk', ["$MIX; boundary=\"j\""],
    "--j\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        . "====\r\n!!!!\r\nQ\r\n--j--\r\n");

# ----------------------------------------------- from real CMS (PKIDIR)
exit 0 unless defined $pki;
my $tmp = "$out/.work";
mkdir $tmp unless -d $tmp;
open(my $e, '>:raw', "$tmp/entity") or die;
print $e "Content-Type: text/plain; charset=us-ascii\r\n\r\nreal content\r\n";
close $e;
system('openssl', 'cms', '-encrypt', '-binary', '-aes-256-cbc', '-in', "$tmp/entity",
    '-outform', 'DER', '-out', "$tmp/env.der", "$pki/bob.crt") == 0 or die "openssl encrypt";
system('openssl', 'cms', '-sign', '-binary', '-nodetach', '-md', 'sha256', '-in',
    "$tmp/entity", '-signer', "$pki/alice.crt", '-inkey', "$pki/alice.key",
    '-outform', 'DER', '-out', "$tmp/sig.der") == 0 or die "openssl sign";
system('openssl', 'cms', '-sign', '-binary', '-md', 'sha256', '-in',
    "$tmp/entity", '-signer', "$pki/alice.crt", '-inkey', "$pki/alice.key",
    '-outform', 'DER', '-out', "$tmp/dsig.der") == 0 or die "openssl sign";
sub slurp { local $/; open(my $f, '<:raw', $_[0]) or die "$_[0]: $!"; return <$f>; }
my ($env, $sig, $dsig) = map { slurp("$tmp/$_") } qw(env.der sig.der dsig.der);
p7m('real-env-truncated', substr($env, 0, int(length($env) / 2)));
p7m('real-env-cut-1', substr($env, 0, length($env) - 1));
p7m('real-sig-truncated', substr($sig, 0, int(length($sig) * 2 / 3)), 'signed-data');
p7m('real-env-trailing-junk', $env . junk(100));
# junk characters sprinkled into the base64 of a good EnvelopedData
{
    my $b = b64lines($env);
    $b =~ s/(.{10})/$1*!/g;
    write_case('real-env-b64-junk', [$P7M_CT, 'Content-Transfer-Encoding: base64'], $b);
}
# a multipart/signed whose "signature" is an EnvelopedData, and one whose
# signature is cut
signed_msg('signed-sig-is-enveloped', $SIGHDR . b64lines($env));
signed_msg('signed-sig-truncated', $SIGHDR . b64lines(substr($dsig, 0, 300)));
unlink "$tmp/entity", "$tmp/env.der", "$tmp/sig.der", "$tmp/dsig.der";
rmdir $tmp;
