#!/bin/bash
# t-docs: every configuration key in the code is documented in
# smime-milter.conf(5) and in the sample configuration (and nothing else
# is), the sample's defaults are accepted by "smime-milter -n", and the
# man pages render without warnings.
. "$(dirname "$0")/lib/common.sh"

# the key table: {"Name", K_TYPE, OFF(field), "default"}, possibly wrapped
table=$(perl -0777 -ne 'while (/\{"(\w+)",\s*K_\w+,\s*OFF\(\w+\),\s*"([^"]*)"\s*(?:,\s*\w+)?\s*\}/g) { print "$1=$2\n" }' "$SRCDIR/lib/smm_config.c")
keys_code=$(echo "$table" | cut -d= -f1)
keys_man=$(awk 'prev == ".TP" && /^\.B [A-Z][A-Za-z0-9]* / {print $2} {prev = $0}' "$SRCDIR/docs/smime-milter.conf.5")
keys_sample=$(sed -n 's/^#\([A-Z][A-Za-z0-9]*\)\( .*\)\{0,1\}$/\1/p' "$SRCDIR/contrib/smime-milter.conf.sample")
tap_ok "$([ "$(echo "$keys_code" | wc -l)" -ge 15 ]; echo $?)" "found the key table in the code ($(echo "$keys_code" | wc -l) keys)"
tap_is "$(echo "$keys_man" | sort | tr '\n' ' ')" "$(echo "$keys_code" | sort | tr '\n' ' ')" "smime-milter.conf(5) documents exactly the keys in the code"
tap_is "$(echo "$keys_sample" | sort | tr '\n' ' ')" "$(echo "$keys_code" | sort | tr '\n' ' ')" "the sample configuration lists exactly the keys in the code"

# every default in the sample is the code's default, and -n accepts them
mkdir -p "$T/keys"
sed -e 's/^#\([A-Z][A-Za-z0-9]*\)/\1/' -e "s|^KeyStore .*|KeyStore $T/keys|" \
    "$SRCDIR/contrib/smime-milter.conf.sample" >"$T/sample.conf"
tap_check "smime-milter -n accepts the sample with every default uncommented" -- \
    "$MILTER" -n -c "$T/sample.conf"
for k in $keys_code; do
    code_def=$(echo "$table" | sed -n "s/^$k=//p")
    sample_def=$(sed -n "s/^#$k\( \+\(.*\)\)\{0,1\}$/\2/p" "$SRCDIR/contrib/smime-milter.conf.sample")
    tap_is "$sample_def" "$code_def" "sample default for $k"
done

# options in the usage text are documented in smime-milter(8)
for opt in c p u P f n v V; do
    tap_check "smime-milter(8) documents -$opt" -- grep -q "^\.B \\\\-$opt\b\|^\.BI \\\\-$opt " "$SRCDIR/docs/smime-milter.8"
done
for cmd in process keys; do
    tap_check "smime-milter-ctl(8) documents $cmd" -- grep -qw "$cmd" "$SRCDIR/docs/smime-milter-ctl.8"
done

for m in smime-milter.8 smime-milter.conf.5 smime-milter-ctl.8; do
    groff -man -Tutf8 -ww -z "$SRCDIR/docs/$m" >"$T/groff.out" 2>&1
    tap_check "$m renders without groff warnings" -- test ! -s "$T/groff.out"
done
tap_check "the Postfix snippet is valid main.cf syntax" -- bash -c "
    mkdir -p '$T/pf' && cp '$SRCDIR/contrib/postfix/main.cf.snippet' '$T/pf/main.cf' && : >'$T/pf/master.cf' &&
    postconf -c '$T/pf' -n >/dev/null 2>'$T/pc.err' && ! grep -q warning '$T/pc.err'"
tap_done
