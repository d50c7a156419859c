#!/bin/bash
# t-daemon: the daemon's options and process model, -n diagnostics, the
# key store rules as an admin meets them, spooling to disk, size limits,
# temp-directory failure, and smime-milter-ctl keys.
. "$(dirname "$0")/lib/common.sh"
. "$SRCDIR/tests/lib/smime-check.sh"

make_pki "$T/pki" || { echo "Bail out! cannot make the test PKI"; exit 1; }
P=$T/pki
mkdir -p "$T/keys"
install -m 600 "$P/alice.pem" "$T/keys/alice.pem"
conf() {
    cat >"$T/c.conf" <<EOC
KeyStore keys
TrustAnchors pki/trust.pem
TempDirectory $T/tmp
MaxMemoryBody 1k
MaxMessageSize 200k
$*
EOC
}
mkdir -p "$T/tmp"
conf ""

tap_is "$("$MILTER" -V)" "smime-milter $(sed -n 's/^AC_INIT(\[smime-milter\], \[\([^]]*\)\].*/\1/p' "$SRCDIR/configure.ac")" "-V prints the version"
tap_check "-n: good configuration exits 0" -- "$MILTER" -n -c "$T/c.conf"
tap_check "-n: reports the key count" -- bash -c "'$MILTER' -n -c '$T/c.conf' | grep -q 'OK, 1 keys'"

# bad configuration: exit 1, file and line
printf 'KeyStore keys\nStampHeader perhaps\n' >"$T/bad.conf"
"$MILTER" -n -c "$T/bad.conf" >"$T/out" 2>&1
tap_is "$?" "1" "-n: bad value exits 1"
tap_check "-n: names file and line" -- grep -q "$T/bad.conf:2: bad value \"perhaps\" for StampHeader" "$T/out"
"$MILTER" -f -c "$T/bad.conf" >"$T/out" 2>&1
tap_is "$?" "1" "daemon refuses to start on a bad config"
tap_check "daemon says why on the terminal" -- grep -q 'bad.conf:2' "$T/out"
# -n reports every problem in the file, not only the first
printf 'Mode sv\nKeyStore keys\nStampHeader perhaps\nKeyStore other\n' >"$T/bad2.conf"
"$MILTER" -n -c "$T/bad2.conf" >"$T/out" 2>"$T/err"
tap_is "$?" "1" "-n: several problems: exit 1"
tap_is "$(grep -c "^smime-milter: error: $T/bad2.conf:[134]: " "$T/err")" 3 \
    "-n: all three problems named with their lines (unknown key, bad value, duplicate)"
tap_check "-n: the summary line on standard output" -- \
    grep -q "bad2.conf: problems found, 0 keys, 3 errors, 0 warnings" "$T/out"

# key store problems
install -m 644 "$P/bob.pem" "$T/keys/bob.pem"
printf 'garbage\n' >"$T/keys/broken.pem"
chmod 600 "$T/keys/broken.pem"
"$MILTER" -n -c "$T/c.conf" >"$T/out" 2>&1
tap_is "$?" "1" "-n: key store problems exit 1"
tap_check "-n: group/other-readable key refused" -- grep -q "bob.pem: refused: readable by group or others (mode 0644); chmod 600 it" "$T/out"
tap_check "-n: unreadable key file reported" -- grep -q "broken.pem: no certificate or private key found" "$T/out"
rm -f "$T/keys/bob.pem" "$T/keys/broken.pem"
printf 'wrong-pass' >"$T/wrong.pass"
chmod 600 "$T/wrong.pass"
install -m 600 "$P/bob.p12" "$T/keys/bob.p12"
conf "KeyStorePassphraseFile wrong.pass"
"$MILTER" -n -c "$T/c.conf" >"$T/out" 2>&1
tap_check "-n: wrong PKCS#12 passphrase reported" -- grep -q "bob.p12: wrong passphrase" "$T/out"
tap_not "the wrong passphrase itself is never printed" -- grep -q "wrong-pass" "$T/out"
install -m 600 "$P/passphrase" "$T/keys/bob.p12.pass"
"$MILTER" -n -c "$T/c.conf" >"$T/out" 2>&1
tap_is "$?" "0" "per-file <file>.pass passphrase overrides the global one"
"$MILTER" -n -v -c "$T/c.conf" >"$T/out" 2>&1
tap_not "-v (debug): neither passphrase is printed" -- grep -qF -e "wrong-pass" -e "$(cat "$P/passphrase")" "$T/out"
chmod 644 "$T/wrong.pass"
"$MILTER" -n -c "$T/c.conf" >"$T/out" 2>&1
tap_check "passphrase file readable by others is refused" -- grep -q "wrong.pass: refused: readable by group or others" "$T/out"
conf ""
rm -f "$T/keys/bob.p12" "$T/keys/bob.p12.pass"

# smime-milter-ctl keys, and the 20%-lifetime renewal warning
tap_check "ctl keys lists alice" -- bash -c "'$CTL' -c '$T/c.conf' keys | grep -q '^alice@example.org .*sign,encrypt'"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/keys/soon.key" -out "$T/keys/soon.crt" \
    -subj "/CN=sam" -addext "subjectAltName=email:sam@example.org" \
    -addext "keyUsage=digitalSignature,keyEncipherment" -days 30 >/dev/null 2>&1
chmod 600 "$T/keys/soon.key"
"$CTL" -c "$T/c.conf" keys --now "$(( $(date +%s) + 27 * 86400 ))" >"$T/out" 2>"$T/err"
tap_is "$?" "1" "ctl keys exits 1 when a certificate needs renewal"
tap_check "ctl keys warns at less than 20% lifetime left" -- grep -q "sam@example.org (.*soon.*): less than 20% of its lifetime left" "$T/err"
"$CTL" -c "$T/c.conf" keys >"$T/out" 2>"$T/err"
tap_is "$?" "0" "ctl keys exits 0 when nothing needs renewal"
rm -f "$T/keys/soon.key" "$T/keys/soon.crt"

# spooling: a body larger than MaxMemoryBody goes through a temp file
{ printf 'From: alice@example.org\nSubject: big\n\n'; for i in $(seq 1 2000); do echo "line $i of a message that is larger than MaxMemoryBody"; done; } >"$T/big.eml"
"$CTL" -c "$T/c.conf" process --outbound --from alice@example.org --rcpt bob@example.net <"$T/big.eml" >"$T/big.out" 2>"$T/err"
tap_is "$?" "0" "large message (spooled to disk) is signed"
tap_check "spooled message verifies" -- smime_verify_openssl "$T/big.out" "$P"
tap_is "$(find "$T/tmp" -type f | wc -l)" "0" "no temp files left behind"
# over MaxMessageSize: passed on untouched, not read into memory
{ printf 'From: alice@example.org\nSubject: huge\n\n'; head -c 300000 /dev/zero | tr '\0' 'y' | fold -w 70; } >"$T/huge.eml"
"$CTL" -c "$T/c.conf" process --outbound --from alice@example.org --rcpt bob@example.net <"$T/huge.eml" >"$T/huge.out" 2>"$T/err"
tap_check "over MaxMessageSize: skipped=too-large" -- grep -q 'X-SMIME-Milter: skipped=too-large' "$T/huge.out"
# TempDirectory not writable: tempfail (never lose mail, never send half)
conf "" && sed -i "s|^TempDirectory .*|TempDirectory $T/missing-dir|" "$T/c.conf"
"$CTL" -c "$T/c.conf" process --outbound --from alice@example.org --rcpt bob@example.net <"$T/big.eml" >"$T/out" 2>"$T/err"
tap_is "$?" "75" "TempDirectory missing: tempfail (exit 75)"
conf ""

# process model: pidfile, worker restart, SIGTERM, privilege drop
# (a core size limit that the daemon must lower itself)
(ulimit -c unlimited 2>/dev/null; exec "$MILTER" -f -c "$T/c.conf" -p "inet:$(free_port)@127.0.0.1" -P "$T/m.pid" -u nobody) >"$T/d.log" 2>&1 &
sup=$!
at_exit "kill $sup 2>/dev/null"
for _ in $(seq 1 50); do grep -q listening "$T/d.log" && break; sleep 0.1; done
tap_check "daemon starts and logs where it listens" -- grep -q 'listening on inet:' "$T/d.log"
tap_is "$(cat "$T/m.pid" 2>/dev/null)" "$sup" "PID file holds the supervisor's pid"
worker=$(pgrep -P "$sup" | head -n 1)
tap_is "$(awk '/^Uid:/ {print $2 "," $3 "," $4 "," $5}' "/proc/$worker/status")" "$(id -u nobody),$(id -u nobody),$(id -u nobody),$(id -u nobody)" "worker dropped privileges to -u nobody (real, effective, saved, fs uid)"
tap_is "$(awk '/^Max core file size/ {print $5 "/" $6}' "/proc/$worker/limits")" "0/0" "no core dumps: RLIMIT_CORE 0 (AllowCoreDumps no)"
tap_is "$(stat -c %U "/proc/$worker/status")" "root" "worker not dumpable after the change of user (its /proc files stay root's)"
kill -KILL "$worker"
for _ in $(seq 1 50); do [ "$(grep -c listening "$T/d.log")" -ge 2 ] && break; sleep 0.1; done
tap_check "a killed worker is restarted" -- test "$(grep -c listening "$T/d.log")" -ge 2
tap_check "the restart is logged" -- grep -q 'worker died (signal 9); restarting' "$T/d.log"
kill -TERM "$sup"
for _ in $(seq 1 50); do kill -0 "$sup" 2>/dev/null || break; sleep 0.1; done
tap_not "SIGTERM stops the daemon" -- kill -0 "$sup"
tap_not "PID file removed at exit" -- test -e "$T/m.pid"
tap_check "worker logged a clean stop" -- grep -q ': stopped' "$T/d.log"
# detached mode: the starting process returns once the PID file exists;
# a relative -c still works after the daemon changes to /
# shellcheck disable=SC2086
(cd "$T" && "$MILTER" -c c.conf -p "inet:$(free_port)@127.0.0.1" -P "$T/bg.pid" $AS_ROOT)
tap_is "$?" "0" "detached start exits 0"
bgpid=$(cat "$T/bg.pid" 2>/dev/null)
tap_check "PID file exists when the start command returns" -- test -n "$bgpid"
at_exit "kill $bgpid 2>/dev/null"
sleep 1
tap_check "detached daemon (relative -c) is running" -- kill -0 "$bgpid"
tap_check "detached worker is running" -- test -n "$(pgrep -P "$bgpid")"
kill -TERM "$bgpid"
for _ in $(seq 1 150); do alive "$bgpid" || break; sleep 0.1; done
tap_not "detached daemon stops on SIGTERM" -- alive "$bgpid"

# least privilege: root without UserID is refused; AllowCoreDumps yes
if [ "$(id -u)" = 0 ]; then
    "$MILTER" -f -c "$T/c.conf" -p "inet:$(free_port)@127.0.0.1" >"$T/root.log" 2>&1 &
    rp=$!
    for _ in $(seq 1 50); do alive "$rp" || break; sleep 0.1; done
    tap_not "as root without UserID or -u: refuses to start" -- alive "$rp"
    wait "$rp"
    tap_check "... and exits non-zero" -- test "$?" != 0
    tap_check "... saying why and what to set" -- grep -q 'refusing to run as root: set UserID (or -u)' "$T/root.log"
    echo "UserID nobody" >>"$T/c.conf"
    echo "AllowCoreDumps yes" >>"$T/c.conf"
    (ulimit -c 4096 2>/dev/null; exec "$MILTER" -f -c "$T/c.conf" -p "inet:$(free_port)@127.0.0.1") >"$T/cd.log" 2>&1 &
    cp=$!
    at_exit "kill $cp 2>/dev/null"
    for _ in $(seq 1 50); do grep -q listening "$T/cd.log" && break; sleep 0.1; done
    cw=$(pgrep -P "$cp" | head -n 1)
    tap_is "$(awk '/^Uid:/ {print $3}' "/proc/$cw/status" 2>/dev/null)" "$(id -u nobody)" "UserID in the file: worker runs as nobody"
    if [ -n "${SMM_SAN_CFLAGS:-}" ]; then
        # AddressSanitizer sets the core size to 0 itself (disable_coredump)
        tap_ok 0 "AllowCoreDumps yes: the core size limit is left alone # SKIP ASan sets it to 0"
    else
        tap_is "$(awk '/^Max core file size/ {print $5}' "/proc/$cw/limits" 2>/dev/null)" "4194304" "AllowCoreDumps yes: the core size limit is left alone"
    fi
    tap_is "$(stat -c %U "/proc/$cw/status" 2>/dev/null)" "nobody" "AllowCoreDumps yes: worker dumpable"
    kill -TERM "$cp"
    wait "$cp" 2>/dev/null
    conf ""
fi
tap_done
