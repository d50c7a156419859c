#!/bin/sh
# shellcheck disable=SC2317  # cleanup is called from a trap
# mkpki.sh OUTDIR -- create a complete, fresh S/MIME test PKI in OUTDIR.
#
# Nothing generated here is ever checked in: the test suite runs this script
# at test time.  OUTDIR is wiped and recreated (idempotent).  Only `openssl`
# is needed for the PKI itself; the optional stores are built with
# `certutil` (libnss3-tools) and `gpgsm` when those are installed.
#
# Layout (all names exact):
#   root.crt root.key              self-signed root "smime-milter Test Root"
#                                  (CA:true critical, keyCertSign+cRLSign)
#   inter.crt inter.key            intermediate CA, signed by root (pathlen:0)
#   untrusted-root.crt/.key        unrelated second root, trusted by nobody
#   trust.pem                      root.crt only (TrustAnchors)
#   chain.pem                      inter.crt only
#   crl.pem                        CRL issued by the intermediate, revokes
#                                  "revoked" (rita@example.org)
#   root-crl.pem                   (empty) CRL of the root, for -crl_check_all
#   passphrase                     "test-pass" WITHOUT a trailing newline,
#                                  mode 0600 (readers should still strip one
#                                  trailing newline if present)
#   NAME.crt NAME.key NAME.pem NAME.p12   for every end-entity user NAME:
#       .key  PKCS#8 unencrypted PEM, 0600
#       .pem  cert + key + inter.crt, 0600
#       .p12  key + cert + inter.crt, passphrase test-pass, -legacy
#             (RC2/3DES + SHA1 MAC, which gpgsm 2.2 can import), 0600
#   Users (issued by the intermediate unless noted, EKU emailProtection,
#   SAN rfc822Name, CN = address, valid from 1 day ago for 2 years):
#       alice        alice@example.org   RSA2048 dS,nR,kE
#       bob          bob@example.net     RSA2048 dS,nR,kE
#       carol        carol@example.org   ECDSA P-256 dS,kA  (carol.p12 exists,
#                                        but gpgsm 2.2.40 crashes importing EC
#                                        PKCS#12, so it is NOT put in gnupg/)
#       dave-sign    dave@example.org    dS,nR only
#       dave-enc     dave@example.org    kE only
#       domain       SAN email:example.org (no local part),
#                    CN "example.org S/MIME domain key", dS,kE
#       expired      erin@example.org    valid -400d .. -30d
#       notyet       nina@example.org    valid from +30d
#       weak         walter@example.org  RSA 1024
#       untrusted    ursula@example.org  issued by untrusted-root
#       signonly-eku sam@example.org     EKU clientAuth only (dS,nR,kE)
#       revoked      rita@example.org    normal, but revoked in crl.pem
#   nss/      NSS sql: database, empty password; root trusted "C,C,C",
#             intermediate imported ",,".  (needs certutil)
#   gnupg/    GNUPGHOME for gpgsm (0700): root (trustlist.txt "S relax") and
#             intermediate imported; alice, bob and dave-enc keys imported
#             from their .p12.  The imported secret keys are protected in
#             gpg-agent with the passphrase "test-pass": decrypt with
#             `--pinentry-mode loopback --passphrase-fd N` (gpg-agent.conf
#             has allow-loopback-pinentry).  gpgsm.conf: disable-crl-checks,
#             disable-dirmngr.  No gpg-agent is left running on exit.  (needs
#             gpgsm)
#
# Validity: root and intermediate are backdated (root: -800 days .. +3650
# days, intermediate: -790 days .. +3600 days) so that the backdated "expired"
# certificate still nests inside its issuer's validity.
#
# All issuance goes through `openssl ca` with a throwaway configuration in a
# temporary directory (openssl x509 -req cannot backdate).
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

case "$1" in
    /) echo "mkpki.sh: refusing to use / as OUTDIR" >&2; exit 2 ;;
esac

OUT=$1
PASS=test-pass
umask 077

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
chmod 0755 "$OUT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mkpki.XXXXXX")
GNUPG_STARTED=
cleanup() {
    if [ -n "$GNUPG_STARTED" ] && command -v gpgconf >/dev/null 2>&1; then
        GNUPGHOME="$OUT/gnupg" gpgconf --kill all >/dev/null 2>&1 || :
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# ---------------------------------------------------------------- helpers

now=$(date -u +%s)
# ts DAYS -> GeneralizedTime of now + DAYS days (DAYS may be negative)
ts() {
    date -u -d "@$((now + $1 * 86400))" +%Y%m%d%H%M%SZ
}

die() { echo "mkpki.sh: $*" >&2; exit 1; }

# keygen FILE rsa BITS | keygen FILE ec
keygen() {
    case "$2" in
        rsa) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$3" \
                 -out "$1" 2>/dev/null ;;
        ec)  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
                 -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null ;;
    esac || die "key generation failed for $1"
    chmod 0600 "$1"
}

cat >"$WORK/req.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt             = no
string_mask        = utf8only
utf8               = yes
[ req_dn ]
CN = placeholder
EOF

# One CA configuration; the issuing CA is selected with -name, the profile
# with -extensions, and per-certificate values come from the environment.
cat >"$WORK/ca.cnf" <<'EOF'
[ ca ]
default_ca = root_ca

[ root_ca ]
dir             = $ENV::CA_WORK/root
database        = $dir/index.txt
serial          = $dir/serial
crlnumber       = $dir/crlnumber
new_certs_dir   = $dir/new
certificate     = $ENV::CA_WORK/root.crt
private_key     = $ENV::CA_WORK/root.key
default_md      = sha256
default_crl_days = 3650
policy          = policy_any
unique_subject  = no
email_in_dn     = no
copy_extensions = none
preserve        = yes

[ inter_ca ]
dir             = $ENV::CA_WORK/inter
database        = $dir/index.txt
serial          = $dir/serial
crlnumber       = $dir/crlnumber
new_certs_dir   = $dir/new
certificate     = $ENV::CA_WORK/inter.crt
private_key     = $ENV::CA_WORK/inter.key
default_md      = sha256
default_crl_days = 3650
policy          = policy_any
unique_subject  = no
email_in_dn     = no
copy_extensions = none
preserve        = yes

[ untrusted_ca ]
dir             = $ENV::CA_WORK/untrusted
database        = $dir/index.txt
serial          = $dir/serial
crlnumber       = $dir/crlnumber
new_certs_dir   = $dir/new
certificate     = $ENV::CA_WORK/untrusted-root.crt
private_key     = $ENV::CA_WORK/untrusted-root.key
default_md      = sha256
default_crl_days = 3650
policy          = policy_any
unique_subject  = no
email_in_dn     = no
copy_extensions = none
preserve        = yes

[ policy_any ]
organizationName = optional
commonName       = supplied

[ ext_root ]
basicConstraints       = critical, CA:true
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ ext_inter ]
basicConstraints       = critical, CA:true, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ ext_user ]
basicConstraints       = critical, CA:false
keyUsage               = critical, $ENV::CA_KU
extendedKeyUsage       = $ENV::CA_EKU
subjectAltName         = email:$ENV::CA_SAN
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ crl_ext ]
authorityKeyIdentifier = keyid:always
EOF

CA_WORK=$WORK
CA_KU=digitalSignature
CA_EKU=emailProtection
CA_SAN=unused@example.invalid
export CA_WORK CA_KU CA_EKU CA_SAN

for ca in root inter untrusted; do
    mkdir -p "$WORK/$ca/new"
    : >"$WORK/$ca/index.txt"
    # Serials are random (-rand_serial): every PKI generation has the same
    # issuer names, and gpgsm finds the signer by issuer+serial, so a
    # keybox that has seen an older generation's certificate would
    # otherwise pick the wrong one.
    echo 01 >"$WORK/$ca/crlnumber"
done

# issue CANAME EXTSECTION SUBJECT KEYFILE CERTOUT STARTDAYS ENDDAYS [selfsign]
issue() {
    _ca=$1 _ext=$2 _subj=$3 _key=$4 _crt=$5 _start=$6 _end=$7
    _csr="$WORK/$(basename "$_crt").csr"
    openssl req -new -config "$WORK/req.cnf" -key "$_key" -subj "$_subj" \
        -out "$_csr" 2>"$WORK/err" || { cat "$WORK/err" >&2; die "req failed: $_subj"; }
    if [ "${8:-}" = selfsign ]; then
        set -- -selfsign -keyfile "$_key"
    else
        set --
    fi
    openssl ca -config "$WORK/ca.cnf" -name "${_ca}_ca" -batch -notext -rand_serial \
        -extensions "$_ext" -startdate "$(ts "$_start")" \
        -enddate "$(ts "$_end")" -in "$_csr" -out "$_crt" "$@" \
        >"$WORK/err" 2>&1 || { cat "$WORK/err" >&2; die "ca failed: $_subj"; }
    chmod 0644 "$_crt"
}

# ---------------------------------------------------------------- keys
# Key generation dominates the run time; do it in parallel.

USERS_RSA="alice bob dave-sign dave-enc domain expired notyet untrusted signonly-eku revoked"
pids=
for k in root inter untrusted-root $USERS_RSA; do
    keygen "$WORK/$k.key" rsa 2048 &
    pids="$pids $!"
done
keygen "$WORK/weak.key" rsa 1024 &
pids="$pids $!"
keygen "$WORK/carol.key" ec &
pids="$pids $!"
for p in $pids; do
    wait "$p" || die "key generation failed"
done

# ---------------------------------------------------------------- CAs

issue root ext_root "/O=smime-milter Test/CN=smime-milter Test Root" \
    "$WORK/root.key" "$WORK/root.crt" -800 3650 selfsign
issue root ext_inter "/O=smime-milter Test/CN=smime-milter Test Intermediate" \
    "$WORK/inter.key" "$WORK/inter.crt" -790 3600
issue untrusted ext_root "/O=Unrelated Test/CN=Untrusted Test Root" \
    "$WORK/untrusted-root.key" "$WORK/untrusted-root.crt" -800 3650 selfsign

for f in root inter untrusted-root; do
    cp "$WORK/$f.crt" "$OUT/$f.crt"
    cp "$WORK/$f.key" "$OUT/$f.key"
    chmod 0644 "$OUT/$f.crt"
    chmod 0600 "$OUT/$f.key"
done
cp "$OUT/root.crt" "$OUT/trust.pem"
cp "$OUT/inter.crt" "$OUT/chain.pem"
chmod 0644 "$OUT/trust.pem" "$OUT/chain.pem"
printf '%s' "$PASS" >"$OUT/passphrase"
chmod 0600 "$OUT/passphrase"

# ---------------------------------------------------------------- users

# user NAME EMAIL KEYUSAGE [EKU] [STARTDAYS] [ENDDAYS] [CA] [CN]
user() {
    _n=$1 _mail=$2
    CA_KU=$3
    CA_EKU=${4:-emailProtection}
    CA_SAN=$_mail
    _start=${5:--1} _end=${6:-730} _ca=${7:-inter} _cn=${8:-$2}
    issue "$_ca" ext_user "/O=smime-milter Test/CN=$_cn" \
        "$WORK/$_n.key" "$OUT/$_n.crt" "$_start" "$_end"
    cp "$WORK/$_n.key" "$OUT/$_n.key"
    chmod 0600 "$OUT/$_n.key"
    if [ "$_ca" = untrusted ]; then _chain=$OUT/untrusted-root.crt
    else _chain=$OUT/inter.crt; fi
    cat "$OUT/$_n.crt" "$OUT/$_n.key" "$_chain" >"$OUT/$_n.pem"
    chmod 0600 "$OUT/$_n.pem"
    openssl pkcs12 -export -legacy -inkey "$OUT/$_n.key" -in "$OUT/$_n.crt" \
        -certfile "$_chain" -name "$_mail" -passout "pass:$PASS" \
        -out "$OUT/$_n.p12" 2>"$WORK/err" || { cat "$WORK/err" >&2; die "pkcs12 failed: $_n"; }
    chmod 0600 "$OUT/$_n.p12"
}

KU_STD="digitalSignature, nonRepudiation, keyEncipherment"
user alice        alice@example.org  "$KU_STD"
user bob          bob@example.net    "$KU_STD"
user carol        carol@example.org  "digitalSignature, keyAgreement"
user dave-sign    dave@example.org   "digitalSignature, nonRepudiation"
user dave-enc     dave@example.org   "keyEncipherment"
user domain       example.org        "digitalSignature, keyEncipherment" \
                  emailProtection -1 730 inter 'example.org S\/MIME domain key'
user expired      erin@example.org   "$KU_STD" emailProtection -400 -30
user notyet       nina@example.org   "$KU_STD" emailProtection 30 760
user weak         walter@example.org "$KU_STD"
user untrusted    ursula@example.org "$KU_STD" emailProtection -1 730 untrusted
user signonly-eku sam@example.org    "$KU_STD" clientAuth
user revoked      rita@example.org   "$KU_STD"

# ---------------------------------------------------------------- CRLs

openssl ca -config "$WORK/ca.cnf" -name inter_ca -batch \
    -revoke "$OUT/revoked.crt" -crl_reason keyCompromise >"$WORK/err" 2>&1 \
    || { cat "$WORK/err" >&2; die "revoke failed"; }
openssl ca -config "$WORK/ca.cnf" -name inter_ca -batch -gencrl \
    -crlexts crl_ext -out "$OUT/crl.pem" >"$WORK/err" 2>&1 \
    || { cat "$WORK/err" >&2; die "gencrl (inter) failed"; }
openssl ca -config "$WORK/ca.cnf" -name root_ca -batch -gencrl \
    -crlexts crl_ext -out "$OUT/root-crl.pem" >"$WORK/err" 2>&1 \
    || { cat "$WORK/err" >&2; die "gencrl (root) failed"; }
chmod 0644 "$OUT/crl.pem" "$OUT/root-crl.pem"

# ---------------------------------------------------------------- NSS

if command -v certutil >/dev/null 2>&1; then
    mkdir -p "$OUT/nss"
    certutil -N --empty-password -d "sql:$OUT/nss" >"$WORK/err" 2>&1 \
        || { cat "$WORK/err" >&2; die "certutil -N failed"; }
    certutil -A -d "sql:$OUT/nss" -n "smime-milter Test Root" -t "C,C,C" \
        -a -i "$OUT/root.crt" >"$WORK/err" 2>&1 \
        || { cat "$WORK/err" >&2; die "certutil -A root failed"; }
    certutil -A -d "sql:$OUT/nss" -n "smime-milter Test Intermediate" -t ",," \
        -a -i "$OUT/inter.crt" >"$WORK/err" 2>&1 \
        || { cat "$WORK/err" >&2; die "certutil -A inter failed"; }
else
    echo "mkpki.sh: certutil not found, skipping nss/" >&2
fi

# ---------------------------------------------------------------- gpgsm

if command -v gpgsm >/dev/null 2>&1; then
    G=$OUT/gnupg
    mkdir -p "$G"
    chmod 0700 "$G"
    printf '%s\n' disable-crl-checks disable-dirmngr >"$G/gpgsm.conf"
    # small s2k count: importing/protecting the test keys is otherwise slow
    printf '%s\n' allow-loopback-pinentry 's2k-count 65536' >"$G/gpg-agent.conf"
    fpr=$(openssl x509 -in "$OUT/root.crt" -noout -fingerprint -sha1 | sed 's/.*=//')
    printf '%s S relax\n' "$fpr" >"$G/trustlist.txt"
    GNUPG_STARTED=1

    # gpgsm_import FILE [p12]: judge success by status lines, not exit code
    gpgsm_import() {
        if [ "${2:-}" = p12 ]; then
            # need the secret key to have arrived: IMPORT_RES fields 11/12
            # (sec_imported / sec_dups) -- gpgsm does not set IMPORT_OK's
            # secret-key flag (16).  gpgsm 2.2.40 now and then decrypts a
            # valid -legacy PKCS#12 key bag to garbage ("decryption failed;
            # trying charset ..."), and always for that same file: export
            # it again (new salt and IV), restart the agent, try again.
            for try in 1 2 3 4 5; do
                if [ "$try" -gt 1 ]; then
                    openssl pkcs12 -export -legacy -inkey "${1%.p12}.key" \
                        -in "${1%.p12}.crt" -certfile "$OUT/inter.crt" \
                        -passout "pass:$PASS" -out "$1" 2>>"$WORK/err" || :
                    chmod 0600 "$1"
                fi
                gpgsm --homedir "$G" --batch --status-fd 1 \
                    --pinentry-mode loopback --passphrase-fd 0 \
                    --import "$1" <"$OUT/passphrase" \
                    >"$WORK/gst" 2>"$WORK/err" || :
                awk '$1=="[GNUPG:]" && $2=="IMPORT_RES" && $13+$14>0 {f=1}
                     END {exit !f}' "$WORK/gst" && break
                GNUPGHOME=$G gpgconf --kill gpg-agent 2>/dev/null || :
            done
            if ! awk '$1=="[GNUPG:]" && $2=="IMPORT_RES" && $13+$14>0 {f=1}
                      END {exit !f}' "$WORK/gst"; then
                cat "$WORK/gst" "$WORK/err" >&2
                die "gpgsm could not import the secret key from $1"
            fi
        else
            gpgsm --homedir "$G" --batch --status-fd 1 --import "$1" \
                >"$WORK/gst" 2>"$WORK/err" || :
            if ! grep -q '^\[GNUPG:\] IMPORT_OK ' "$WORK/gst"; then
                cat "$WORK/gst" "$WORK/err" >&2
                die "gpgsm could not import $1"
            fi
        fi
    }
    gpgsm_import "$OUT/root.crt"
    gpgsm_import "$OUT/inter.crt"
    # carol (EC) is deliberately absent: gpgsm 2.2.40 crashes on EC PKCS#12.
    for u in alice bob dave-enc; do
        gpgsm_import "$OUT/$u.p12" p12
    done
    GNUPGHOME=$G gpgconf --kill all >/dev/null 2>&1 || :
    GNUPG_STARTED=
else
    echo "mkpki.sh: gpgsm not found, skipping gnupg/" >&2
fi

exit 0
