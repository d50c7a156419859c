# shellcheck shell=bash
# tests/lib/smime-make.sh -- make S/MIME messages at test time with the
# engines real clients use: NSS cmsutil (Thunderbird) and gpgsm (KMail),
# for the inbound tests.  Every function writes CRLF entities (what SMTP
# carries) and returns non-zero, with a line on stderr, when the engine
# fails.  The PKI is tests/pki/mkpki.sh's (alice signs, bob decrypts).

# smime_norm FILE: CRLF line ends throughout, in place
smime_norm() { sed -i -e 's/\r$//' -e 's/$/\r/' "$1"; }

# smime_wrap_signed ENTITY SIGDER OUT MICALG: multipart/signed entity
smime_wrap_signed() {
    {
        printf 'MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=%s; boundary="b1b1b1"\r\n\r\n' "$4"
        printf 'This is a signed message.\r\n--b1b1b1\r\n'
        cat "$1"
        printf '\r\n--b1b1b1\r\nContent-Type: application/pkcs7-signature; name="smime.p7s"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        base64 -w 76 "$2" | sed 's/$/\r/'
        printf '\r\n--b1b1b1--\r\n'
    } >"$3"
}

# smime_wrap_p7m DER OUT SMIME-TYPE: application/pkcs7-mime entity
smime_wrap_p7m() {
    {
        printf 'MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=%s; name="smime.p7m"\r\nContent-Transfer-Encoding: base64\r\n\r\n' "$3"
        base64 -w 76 "$1" | sed 's/$/\r/'
    } >"$2"
}

# smime_nss_db PKIDIR DIR: an NSS database with alice's key and bob's
# certificate; prints alice's nickname
smime_nss_db() {
    mkdir -p "$2" && cp "$1"/nss/* "$2"/ &&
        pk12util -i "$1/alice.p12" -d "sql:$2" -W "$(cat "$1/passphrase")" -K "" >/dev/null 2>&1 &&
        certutil -A -d "sql:$2" -n bob -t ",," -i "$1/bob.crt" >/dev/null 2>&1 || {
        echo "smime_nss_db: cannot prepare $2" >&2
        return 1
    }
    certutil -L -d "sql:$2" | grep -i alice | sed 's/  *[a-zA-Z,]*$//' | head -n 1
}

# smime_nss_sign ENTITY NSSDB NICK OUT [HASH]: detached, multipart/signed
smime_nss_sign() {
    cmsutil -S -N "$3" -d "sql:$2" -T -H "${5:-SHA256}" -G -P -i "$1" -o "$4.der" >/dev/null 2>&1 ||
        { echo "smime_nss_sign: cmsutil failed" >&2; return 1; }
    smime_wrap_signed "$1" "$4.der" "$4" "sha-$(echo "${5:-SHA256}" | tr -dc 0-9)"
}

# smime_nss_sign_encrypt ENTITY NSSDB NICK OUT: opaque SHA-512 signed-data
# (as an application/pkcs7-mime entity) enveloped for bob
smime_nss_sign_encrypt() {
    cmsutil -S -N "$3" -d "sql:$2" -H SHA512 -G -i "$1" -o "$4.op" >/dev/null 2>&1 &&
        smime_wrap_p7m "$4.op" "$4.opm" signed-data &&
        cmsutil -E -r bob@example.net -d "sql:$2" -i "$4.opm" -o "$4.der" >/dev/null 2>&1 ||
        { echo "smime_nss_sign_encrypt: cmsutil failed" >&2; return 1; }
    smime_wrap_p7m "$4.der" "$4" enveloped-data
}

# _smime_gpgsm PKIDIR ARGS...: gpgsm with the PKI's home and passphrase
_smime_gpgsm() {
    local pki=$1
    shift
    gpgsm --homedir "$pki/gnupg" --batch --no-tty --pinentry-mode loopback \
        --passphrase-fd 4 "$@" 4<"$pki/passphrase"
}

# smime_gpgsm_sign ENTITY PKIDIR OUT: alice's detached signature
smime_gpgsm_sign() {
    _smime_gpgsm "$2" --local-user alice@example.org --detach-sign -o "$3.der" "$1" 2>"$3.err" ||
        { echo "smime_gpgsm_sign: $(head -n 1 "$3.err")" >&2; return 1; }
    smime_wrap_signed "$1" "$3.der" "$3" sha-256
}

# smime_gpgsm_encrypt ENTITY PKIDIR OUT: enveloped for bob
smime_gpgsm_encrypt() {
    _smime_gpgsm "$2" --recipient bob@example.net --encrypt -o "$3.der" "$1" 2>"$3.err" ||
        { echo "smime_gpgsm_encrypt: $(head -n 1 "$3.err")" >&2; return 1; }
    smime_wrap_p7m "$3.der" "$3" enveloped-data
}
