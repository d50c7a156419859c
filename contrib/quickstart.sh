#!/bin/bash
# quickstart.sh -- install the dependencies, build smime-milter, and show it
# working: a demo PKI, the milter behind a private loopback Postfix, a
# sample mail from alice@example.org signed and encrypted on its way out
# (the recipient's certificate found in a local store; others in a
# loopback slapd), decrypted and verified with OpenSSL as the recipient's
# client would, then decrypted and verified by the milter itself when it
# arrives inbound (Authentication-Results), a signed mail from a new
# correspondent harvested, and the stamps and log lines an admin would see.
# Run as root on Debian 12.  Touches nothing outside the build directory
# and a demo directory (DEMO_DIR, default /tmp/smime-milter-demo); the
# system Postfix is neither configured nor started.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
DEMO_DIR=${DEMO_DIR:-/tmp/smime-milter-demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing dependencies (apt-get)"
./contrib/install-deps.sh

say "building"
autoreconf -fi >/dev/null 2>&1
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure --enable-werror >/dev/null; } && make -j"$(nproc)" >/dev/null)
MILTER=$top/build/milter/smime-milter
CTL=$top/build/milter/smime-milter-ctl
"$MILTER" -V

say "demo PKI and key store in $DEMO_DIR"
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR/keys"
chmod 711 "$DEMO_DIR"
sh tests/pki/mkpki.sh "$DEMO_DIR/pki" >/dev/null 2>&1
install -m 600 "$DEMO_DIR/pki/alice.p12" "$DEMO_DIR/keys/alice.p12"
install -m 600 "$DEMO_DIR/pki/bob.p12" "$DEMO_DIR/keys/bob.p12"
mkdir -p "$DEMO_DIR/harvest"
install -m 600 "$DEMO_DIR/pki/passphrase" "$DEMO_DIR/keys.pass"
# shellcheck source=../tests/lib/postfix.sh
. tests/lib/postfix.sh
# shellcheck source=../tests/lib/slapd.sh
. tests/lib/slapd.sh
milter_pid=
cleanup() {
    [ -n "${PF_WORKDIR:-}" ] && pf_stop >/dev/null 2>&1
    ldap_stop_all >/dev/null 2>&1
    [ -n "$milter_pid" ] && kill "$milter_pid" 2>/dev/null
    wait 2>/dev/null
    return 0
}
trap cleanup EXIT

say "a loopback slapd holding recipient certificates (as Outlook publishes them)"
sh tests/ldap/mkldif.sh "$DEMO_DIR/pki" "$DEMO_DIR/people.ldif" >/dev/null 2>&1
ldap_init "$DEMO_DIR/ldap" >/dev/null
ldap_start >/dev/null
ldap_add "$DEMO_DIR/people.ldif" >/dev/null
echo "slapd on $LDAP_URI, base dc=example,dc=org"
mkdir -p "$DEMO_DIR/certs"
cp "$DEMO_DIR/pki/bob.crt" "$DEMO_DIR/certs/bob@example.net.pem"
cat "$DEMO_DIR/pki/root.crt" "$DEMO_DIR/pki/inter.crt" >"$DEMO_DIR/anchors.pem"
cat >"$DEMO_DIR/smime-milter.conf" <<EOC
# smime-milter demo configuration
KeyStore               $DEMO_DIR/keys
KeyStorePassphraseFile $DEMO_DIR/keys.pass
TrustAnchors           $DEMO_DIR/anchors.pem
CRLs                   $DEMO_DIR/pki/crl.pem
# mail submitted on port 587 (Postfix sets {daemon_name}=ORIGINATING) is
# outbound; everything arriving on port 25 is inbound
InternalHosts          192.0.2.0/24
OutboundDaemons        ORIGINATING
AuthservID             mx.example.net
Harvest                yes
HarvestStore           $DEMO_DIR/harvest
StatsFile              $DEMO_DIR/stats
CertificateStore       $DEMO_DIR/certs
LDAPURI                $LDAP_URI
LDAPBase               dc=example,dc=org
LDAPFilter             (mail=%s)
EOC
cat "$DEMO_DIR/smime-milter.conf"
"$MILTER" -n -c "$DEMO_DIR/smime-milter.conf"
"$CTL" -c "$DEMO_DIR/smime-milter.conf" keys

say "recipient certificates: local store, then LDAP (smime-milter-ctl lookup)"
for a in bob@example.net carol@example.org rita@example.org; do
    "$CTL" -c "$DEMO_DIR/smime-milter.conf" lookup "$a" | grep -v '^    ' || true
done

say "starting smime-milter and a private Postfix on 127.0.0.1"
port=$(( 20000 + RANDOM % 10000 ))
# -u root: the demo's keys are root's; an installed gateway runs as its
# own user (UserID smime-milter in the Debian package)
"$MILTER" -f -c "$DEMO_DIR/smime-milter.conf" -p "inet:$port@127.0.0.1" -u root \
    >"$DEMO_DIR/milter.log" 2>&1 &
milter_pid=$!
for _ in $(seq 1 50); do grep -q listening "$DEMO_DIR/milter.log" && break; sleep 0.1; done
pf_init "$DEMO_DIR/postfix" >/dev/null
pf_conf "smtpd_milters=inet:127.0.0.1:$port" "milter_default_action=tempfail"
pf_start >/dev/null
echo "Postfix listens on 127.0.0.1:$PF_PORT (MX, inbound) and :$PF_SUB_PORT (submission, outbound),"
echo "and relays to a capture sink on :$PF_SINK_PORT"

say "alice@example.org submits a mail to bob@example.net (port $PF_SUB_PORT: outbound)"
cat >"$DEMO_DIR/sample.eml" <<'EOM'
From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: Quarterly figures
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hi Bob,

the figures are attached in spirit. Grüße, Alice
EOM
pf_send alice@example.org bob@example.net "$DEMO_DIR/sample.eml" --port "$PF_SUB_PORT" >/dev/null
echo "SMTP reply: $(cat "$PF_LAST_REPLY")"
cp "$(pf_sink_file_of_last 30)" "$DEMO_DIR/to-bob.eml"

say "what Bob receives ($DEMO_DIR/to-bob.eml, shortened): signed, then encrypted to his certificate"
tr -d '\r' <"$DEMO_DIR/to-bob.eml" | sed -n '1,/^$/p'
tr -d '\r' <"$DEMO_DIR/to-bob.eml" | sed '1,/^$/d' | head -n 3
echo "[...]"

say "Bob's client: decrypt with his key, then check Alice's signature"
openssl cms -decrypt -recip "$DEMO_DIR/pki/bob.crt" -inkey "$DEMO_DIR/pki/bob.key" \
    -in "$DEMO_DIR/to-bob.eml" -out "$DEMO_DIR/to-bob.decrypted.eml"
echo "decrypted: $(grep -m1 -i '^Content-Type:' "$DEMO_DIR/to-bob.decrypted.eml")"
openssl cms -verify -purpose smimesign -CAfile "$DEMO_DIR/pki/trust.pem" \
    -in "$DEMO_DIR/to-bob.decrypted.eml" -out "$DEMO_DIR/to-bob.content.txt"
sed 's/^/    | /' "$DEMO_DIR/to-bob.content.txt"

say "a mail to someone without a certificate goes out signed only"
sed 's/^To: .*/To: Nina <nocert@example.org>/' "$DEMO_DIR/sample.eml" >"$DEMO_DIR/sample2.eml"
pf_send alice@example.org nocert@example.org "$DEMO_DIR/sample2.eml" --port "$PF_SUB_PORT" >/dev/null
cp "$(pf_sink_file_of_last 30)" "$DEMO_DIR/to-nocert.eml"
grep -i '^Content-Type:' "$DEMO_DIR/to-nocert.eml" | head -n 1 | tr -d '\r'
openssl cms -verify -purpose smimesign -CAfile "$DEMO_DIR/pki/trust.pem" \
    -in "$DEMO_DIR/to-nocert.eml" -out /dev/null

say "the encrypted mail reaches Bob's gateway (port 25: inbound): decrypted and verified"
pf_send alice@example.org bob@example.net "$DEMO_DIR/to-bob.eml" >/dev/null
cp "$(pf_sink_file_of_last 30)" "$DEMO_DIR/bob-inbox.eml"
tr -d '\r' <"$DEMO_DIR/bob-inbox.eml" | sed -n '1,/^$/p' | grep -v '^Received:\|^\s*by \|^\s*for \|^\s*(using'
tr -d '\r' <"$DEMO_DIR/bob-inbox.eml" | sed '1,/^$/d' | sed -n '1,/^$/!p' | head -n 12 | sed 's/^/    | /'

say "carol@example.org signs a mail in her own client: verified, her certificate harvested"
openssl cms -sign -md sha256 -signer "$DEMO_DIR/pki/carol.crt" -inkey "$DEMO_DIR/pki/carol.key" \
    -certfile "$DEMO_DIR/pki/chain.pem" -in "$DEMO_DIR/sample.eml" >"$DEMO_DIR/carol.signed"
{ printf 'From: Carol <carol@example.org>\nTo: Bob <bob@example.net>\nSubject: Hello from Carol\n'
  cat "$DEMO_DIR/carol.signed"; } >"$DEMO_DIR/from-carol.eml"
pf_send carol@example.org bob@example.net "$DEMO_DIR/from-carol.eml" >/dev/null
cp "$(pf_sink_file_of_last 30)" "$DEMO_DIR/bob-inbox-2.eml"
tr -d '\r' <"$DEMO_DIR/bob-inbox-2.eml" | sed -n '1,/^$/p' | grep -A4 '^Authentication-Results:'
echo "harvested: $(ls "$DEMO_DIR/harvest" | tr '\n' ' ')"

say "the stamps"
grep -h -i '^X-SMIME-Milter:' "$DEMO_DIR/to-bob.eml" "$DEMO_DIR/to-nocert.eml" \
    "$DEMO_DIR/bob-inbox.eml" "$DEMO_DIR/bob-inbox-2.eml" | tr -d '\r'

say "the milter's log lines"
grep 'result=' "$DEMO_DIR/milter.log"

say "Postfix's log"
grep -E 'status=sent' "$(pf_log)" | tail -n 2

say "done: the demo files are in $DEMO_DIR"
