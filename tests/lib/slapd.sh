# shellcheck shell=bash
# tests/lib/slapd.sh - private, throw-away OpenLDAP slapd instances on
# loopback for integration tests of smime-milter.  Source it from bash:
#
#     . "$SRCDIR/tests/lib/slapd.sh"
#     ldap_init "$T/ldap"                 # provider, current instance
#     at_exit 'ldap_stop_all'
#     ldap_start
#     sh "$SRCDIR/tests/ldap/mkldif.sh" "$T/pki" "$T/people.ldif"
#     ldap_add "$T/people.ldif"
#     ldapsearch -x -H "$LDAP_URI" -b "$LDAP_BASE" '(mail=alice@example.org)'
#     grep 'filter="(mail=alice@example.org)"' "$LDAP_LOG"
#
#     ldap_init_consumer "$T/ldap2" "$T/ldap"   # now the current instance
#     ldap_start                                # waits for the first refresh
#     ldap_use "$T/ldap"; ldap_add more.ldif    # write on the provider
#     ldap_use "$T/ldap2"; ldap_wait_replicated "uid=x,ou=people,$LDAP_BASE"
#
# Functions (all act on the *current* instance, see ldap_use)
#   ldap_init WORKDIR [NAME]     create a provider instance in WORKDIR (not
#                                started) and make it current.  WORKDIR is
#                                created; an old instance there is replaced
#                                (refused while it runs).  NAME (default
#                                "ldaptest-<basename WORKDIR>") is slapd's
#                                -n service name.
#   ldap_init_consumer WORKDIR PROVIDER_WORKDIR [NAME]
#                                same, but a syncrepl consumer of the
#                                instance in PROVIDER_WORKDIR (whose env
#                                file must exist; it need not run yet)
#   ldap_use WORKDIR             make an instance current again: re-reads
#                                WORKDIR/ldap.env and exports its variables
#   ldap_start                   start slapd; returns once it answers a
#                                search (a consumer: once its base entry has
#                                replicated, if the provider runs).  A port
#                                lost to a race is replaced and the env file
#                                rewritten.  Fails if already running.
#   ldap_stop                    SIGTERM, wait (10 s), SIGKILL leftovers;
#                                returns 0 only when no process of the
#                                instance is left.  No-op when not running.
#   ldap_restart                 ldap_stop + ldap_start (same ports, same
#                                data)
#   ldap_stop_all                ldap_stop every instance this shell has
#                                initialised or used (for an EXIT trap)
#   ldap_running                 true while a slapd of the instance lives
#   ldap_pids                    pids of the instance's slapd (live ones)
#   ldap_add LDIFFILE            ldapadd as the rootdn over $LDAP_URI
#   ldap_modify LDIFFILE         ldapmodify (changetype: records) likewise
#   ldap_search [ldapsearch args]  ldapsearch -x -LLL anonymously over
#                                $LDAP_URI with -b $LDAP_BASE; extra args
#                                (-D/-w, filter, attributes) are appended
#   ldap_wait_replicated DN [TIMEOUT]  poll (as the rootdn, over ldapi)
#                                until DN exists on the current instance;
#                                TIMEOUT seconds, default 10
#   ldap_wait_log REGEX [TIMEOUT]  wait until $LDAP_LOG matches (grep -E)
#
# Exported variables (after ldap_init / ldap_init_consumer / ldap_use)
#   LDAP_WORKDIR   the instance directory        LDAP_NAME  service name
#   LDAP_ROLE      provider | consumer
#   LDAP_PORT LDAPS_PORT                         ports on 127.0.0.1
#   LDAP_URI       ldap://127.0.0.1:$LDAP_PORT   (plain; StartTLS works)
#   LDAPS_URI      ldaps://127.0.0.1:$LDAPS_PORT
#   LDAPI_URI      ldapi://<percent-encoded $LDAPI_SOCKET>
#   LDAPI_SOCKET   $WORKDIR/run/ldapi
#   LDAP_CA_CERT   PEM CA that issued the server certificate (clients:
#                  LDAPTLS_CACERT=$LDAP_CA_CERT)
#   LDAP_LOG       $WORKDIR/slapd.log (slapd -d stats output)
#   LDAP_BASE      dc=example,dc=org
#   LDAP_ROOTDN LDAP_ROOTPW        cn=admin,dc=example,dc=org / secret
#   LDAP_READER_DN LDAP_READER_PW  cn=reader,dc=example,dc=org / readerpw
#   LDAP_CONFDIR   $WORKDIR/slapd.d (cn=config)
#   LDAP_PROVIDER_WORKDIR  (consumer only) the provider's WORKDIR
#
# Design
# ------
# * Layout of WORKDIR: config.ldif (generated cn=config source),
#   slapd.d/ (cn=config, built with `slapadd -n0`), db/ (MDB), tls/ (CA,
#   server certificate, openssl.cnf), run/ (pid file, ldapi socket),
#   slapd.log, ldap.env (the exported variables, sourced by ldap_use).
#   Nothing outside WORKDIR is written; /etc/ldap is only read (schemas).
#   The system slapd (its /etc/ldap/slapd.d, /var/lib/ldap, its init
#   script) is never used.  slapd runs as the calling user (root).
# * Schemas: core, cosine, inetorgperson, nis (from /etc/ldap/schema) and
#   tests/ldap/ad-test.ldif (proxyAddresses + auxiliary adTestUser).
# * Databases: {0}config (the rootdn below may manage it, e.g. over ldapi
#   with -Y EXTERNAL), {1}mdb for dc=example,dc=org, rootdn
#   cn=admin,dc=example,dc=org / "secret" (plain), olcDbNoSync.  Indexes:
#   objectClass, mail, proxyAddresses, uid, cn (eq[,sub]); entryCSN,
#   entryUUID (eq).  A provider gets dc=example,dc=org and
#   cn=reader,dc=example,dc=org (password "readerpw") at init time
#   (slapadd -n1 -w) and the syncprov overlay.  A consumer starts empty and
#   replicates everything (refreshAndPersist, retry every second forever)
#   from the provider's ldapi:// socket, binding simple as the provider's
#   rootdn; so it does not care which TCP ports the provider gets.  Writes
#   to a consumer are only possible as its own rootdn (and diverge).
# * ACLs (mdb): userPassword: reader read, anonymous auth, others none;
#   everything else: read for everyone (anonymous included).
# * SASL EXTERNAL over ldapi: olcAuthzRegexp maps uid 0/gid 0
#   (gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth) to the
#   rootdn, so `ldapwhoami -H $LDAPI_URI -Y EXTERNAL` says
#   dn:cn=admin,dc=example,dc=org.
# * TLS: every instance makes its own small CA (EC P-256) in tls/ and a
#   server certificate for CN=localhost, SAN IP:127.0.0.1, DNS:localhost,
#   EKU serverAuth.  Clients must trust $LDAP_CA_CERT
#   (LDAPTLS_CACERT=...); the system CA list (/etc/ldap/ldap.conf) does
#   not contain it, so verification really happens (libldap's default
#   TLS_REQCERT is "demand").  Client certificates are not asked for.
# * Listeners: ldap://127.0.0.1:$LDAP_PORT/ ldaps://127.0.0.1:$LDAPS_PORT/
#   and $LDAPI_URI.  Ports are picked at random in 20000-32767 (below the
#   ephemeral range) after a bind test; if slapd still loses a race
#   ("Address already in use") ldap_start picks new ports and retries.
#   The ldapi socket path must fit in sun_path: ldap_init refuses a
#   WORKDIR whose run/ldapi path is longer than 100 bytes.
# * Logging: olcLogLevel stats, and slapd runs in the foreground with
#   `-d stats`, its stderr appended to $LDAP_LOG (a restart appends).
#   Lines look like
#     65f0c1d2.1a2b3c4d 0x7f12c8dff6c0 conn=1003 op=1 SRCH base="dc=example,dc=org" scope=2 deref=0 filter="(mail=alice@example.org)"
#     65f0c1d2.1a2b3e01 0x7f12c8dff6c0 conn=1003 op=1 SRCH attr=userSMIMECertificate
#     65f0c1d2.1a2b3f10 0x7f12c8dff6c0 conn=1003 op=1 SEARCH RESULT tag=101 err=0 qtime=0.000011 etime=0.000154 nentries=1 text=
#   i.e. the filter as slapd re-serialised it: a client filter
#   (mail=we\2aird\28\29\5c@x) is logged as filter="(mail=we\2Aird\28\29\5C@x)"
#   (upper-case hex escapes).
#   Stats lines are written unbuffered, so grep right after the client
#   returns sees them.  (Where a syslog daemon listens on /dev/log, slapd
#   also sends them there, tagged with NAME.)
# * Processes are found per instance without name patterns: a process
#   whose /proc/PID/exe is slapd and whose argv has "-F $LDAP_CONFDIR".
#   slapd is started in a subshell, so it is not a child of the test shell
#   (a bare `wait` does not block on it).  Zombies (where PID 1 does not
#   reap) have no exe link and are not counted.
#
# Gotchas
# * Call ldap_init/ldap_init_consumer/ldap_use directly, not in $(...),
#   or the exported variables are lost.
# * The LDAP client tools read /etc/ldap/ldap.conf and ~/.ldaprc; the
#   functions here always pass -H, -b and the bind options explicitly.
# * ldap_stop of a provider leaves its consumer running (it keeps
#   answering from its copy and reconnects within ~1 s once the provider
#   is back).

_LDAP_SLAPD=${LDAP_SLAPD_BIN:-/usr/sbin/slapd}
_LDAP_SLAPADD=${LDAP_SLAPADD_BIN:-/usr/sbin/slapadd}
_LDAP_SCHEMA_DIR=${LDAP_SCHEMA_DIR:-/etc/ldap/schema}
_LDAP_MODULE_DIR=${LDAP_MODULE_DIR:-/usr/lib/ldap}
_LDAP_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_LDAP_TEST_SCHEMA=$_LDAP_SRCDIR/tests/ldap/ad-test.ldif
_LDAP_ENV_VARS="LDAP_WORKDIR LDAP_NAME LDAP_ROLE LDAP_CONFDIR LDAP_LOG
    LDAP_PORT LDAPS_PORT LDAP_URI LDAPS_URI LDAPI_URI LDAPI_SOCKET
    LDAP_CA_CERT LDAP_BASE LDAP_ROOTDN LDAP_ROOTPW LDAP_READER_DN
    LDAP_READER_PW LDAP_PROVIDER_WORKDIR"
_LDAP_KNOWN=()  # every WORKDIR this shell has initialised or used

_ldap_die() { echo "slapd.sh: $*" >&2; return 1; }

_ldap_need_init() {
    [ -n "${LDAP_WORKDIR:-}" ] && [ -f "$LDAP_WORKDIR/ldap.env" ] ||
        _ldap_die "ldap_init has not been called"
}

_ldap_remember() {
    local d
    for d in "${_LDAP_KNOWN[@]}"; do [ "$d" = "$1" ] && return 0; done
    _LDAP_KNOWN+=("$1")
}

# _ldap_pct STRING: percent-encode everything but [A-Za-z0-9._~-]
_ldap_pct() {
    local LC_ALL=C s=$1 out='' c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        [A-Za-z0-9._~-]) out+=$c ;;
        *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

# _ldap_free_port [EXCLUDE...]: a currently free 127.0.0.1 TCP port
_ldap_free_port() {
    local p i x bad
    for i in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
        bad=
        for x in "$@"; do [ "$x" = "$p" ] && bad=1; done
        [ -n "$bad" ] && continue
        if perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(LocalAddr=>"127.0.0.1",
              LocalPort=>$ARGV[0], Proto=>"tcp", Listen=>1, ReuseAddr=>1) ? 0 : 1)' "$p"; then
            echo "$p"
            return 0
        fi
    done
    _ldap_die "no free port found"
}

_ldap_save_env() {
    local v
    for v in $_LDAP_ENV_VARS; do export "$v=${!v:-}"; done
    # shellcheck disable=SC2086
    declare -p $_LDAP_ENV_VARS | sed 's/^declare -x /export /' \
        >"$LDAP_WORKDIR/ldap.env.tmp" &&
        mv -f "$LDAP_WORKDIR/ldap.env.tmp" "$LDAP_WORKDIR/ldap.env"
}

# _ldap_set_ports PLAIN TLS: set the ports and the URIs derived from them
_ldap_set_ports() {
    LDAP_PORT=$1
    LDAPS_PORT=$2
    LDAP_URI=ldap://127.0.0.1:$LDAP_PORT
    LDAPS_URI=ldaps://127.0.0.1:$LDAPS_PORT
    _ldap_save_env
}

_ldap_new_ports() {
    local p1 p2
    p1=$(_ldap_free_port) || return 1
    p2=$(_ldap_free_port "$p1") || return 1
    _ldap_set_ports "$p1" "$p2"
}

# _ldap_pids_of CONFDIR: live slapd processes started with -F CONFDIR
_ldap_pids_of() {
    perl -e '
        my ($conf, $bin) = @ARGV;
        opendir my $d, "/proc" or exit 0;
        for my $pid (grep { /^\d+$/ } readdir $d) {
            my $exe = readlink "/proc/$pid/exe";
            next unless defined $exe && $exe eq $bin;
            open my $f, "<", "/proc/$pid/cmdline" or next;
            local $/; my @a = split /\0/, <$f>; close $f;
            for my $i (0 .. $#a - 1) {
                if ($a[$i] eq "-F" && $a[$i + 1] eq $conf) { print "$pid\n"; last }
            }
        }' "$1" "$(readlink -f "$_LDAP_SLAPD")"
}

ldap_pids() {
    [ -n "${LDAP_CONFDIR:-}" ] || return 0
    _ldap_pids_of "$LDAP_CONFDIR"
}

ldap_running() {
    [ -n "$(ldap_pids)" ]
}

# _ldap_make_tls DIR NAME: small CA + server certificate for 127.0.0.1
_ldap_make_tls() {
    local d=$1 name=$2 k
    mkdir -p "$d" || return 1
    cat >"$d/openssl.cnf" <<'EOF'
# generated by tests/lib/slapd.sh
[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = placeholder
[ ca_ext ]
basicConstraints       = critical, CA:true
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ server_ext ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectAltName         = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
EOF
    for k in ca server; do
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
            -pkeyopt ec_param_enc:named_curve -out "$d/$k.key" 2>"$d/err" ||
            { cat "$d/err" >&2; return 1; }
        chmod 600 "$d/$k.key"
    done
    openssl req -x509 -new -config "$d/openssl.cnf" -extensions ca_ext \
        -key "$d/ca.key" -subj "/O=smime-milter Test/CN=slapd.sh test CA $name" \
        -days 3650 -sha256 -out "$d/ca.crt" 2>"$d/err" || { cat "$d/err" >&2; return 1; }
    openssl req -new -config "$d/openssl.cnf" -key "$d/server.key" \
        -subj "/O=smime-milter Test/CN=localhost" -out "$d/server.csr" 2>"$d/err" ||
        { cat "$d/err" >&2; return 1; }
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 3650 -sha256 \
        -extfile "$d/openssl.cnf" -extensions server_ext -out "$d/server.crt" \
        2>"$d/err" || { cat "$d/err" >&2; return 1; }
    rm -f "$d/err" "$d/server.csr"
}

# _ldap_write_config ROLE [PROVIDER_LDAPI_URI]: WORKDIR/config.ldif
_ldap_write_config() {
    local role=$1 prov=${2:-} wd=$LDAP_WORKDIR modules ov=
    modules="olcModuleLoad: {0}back_mdb"
    if [ "$role" = provider ]; then
        modules="$modules
olcModuleLoad: {1}syncprov"
        ov="
dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
olcSpCheckpoint: 100 10
olcSpSessionLog: 1000
"
    else
        ov="olcSyncrepl: {0}rid=001 provider=\"$prov\" bindmethod=simple
  binddn=\"$LDAP_ROOTDN\" credentials=\"$LDAP_ROOTPW\"
  searchbase=\"$LDAP_BASE\" scope=sub type=refreshAndPersist
  retry=\"1 +\" timeout=1 network-timeout=5 schemachecking=on
"
    fi
    cat >"$wd/config.ldif" <<EOF
# generated by tests/lib/slapd.sh ($role) - loaded with slapadd -n0
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $wd/run/slapd.pid
olcArgsFile: $wd/run/slapd.args
olcLogLevel: stats
olcTLSCACertificateFile: $wd/tls/ca.crt
olcTLSCertificateFile: $wd/tls/server.crt
olcTLSCertificateKeyFile: $wd/tls/server.key
olcAuthzRegexp: {0}"^gidNumber=0\\+uidNumber=0,cn=peercred,cn=external,cn=auth\$" "$LDAP_ROOTDN"

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $_LDAP_MODULE_DIR
$modules

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://$_LDAP_SCHEMA_DIR/core.ldif

include: file://$_LDAP_SCHEMA_DIR/cosine.ldif

include: file://$_LDAP_SCHEMA_DIR/inetorgperson.ldif

include: file://$_LDAP_SCHEMA_DIR/nis.ldif

include: file://$_LDAP_TEST_SCHEMA

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=Subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact="$LDAP_ROOTDN" manage by dn.exact="gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth" manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $wd/db
olcSuffix: $LDAP_BASE
olcRootDN: $LDAP_ROOTDN
olcRootPW: $LDAP_ROOTPW
olcDbMaxSize: 268435456
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: mail eq,sub
olcDbIndex: proxyAddresses eq,sub
olcDbIndex: uid eq
olcDbIndex: cn eq,sub
olcDbIndex: entryCSN eq
olcDbIndex: entryUUID eq
olcAccess: {0}to attrs=userPassword by dn.exact="$LDAP_READER_DN" read by anonymous auth by * none
olcAccess: {1}to * by dn.exact="$LDAP_READER_DN" read by * read
$ov
EOF
}

_ldap_base_ldif() {
    cat <<EOF
dn: $LDAP_BASE
objectClass: dcObject
objectClass: organization
dc: example
o: smime-milter test directory

dn: $LDAP_READER_DN
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
description: read-only bind account of the test suite
userPassword: $LDAP_READER_PW
EOF
}

# _ldap_init_common WORKDIR NAME ROLE [PROVIDER_WORKDIR]
_ldap_init_common() {
    local wd=$1 name=$2 role=$3 pwd_=${4:-} prov_uri='' out v
    mkdir -p "$wd" || return 1
    wd=$(cd "$wd" && pwd -P) || return 1
    if [ -d "$wd/slapd.d" ] && [ -n "$(_ldap_pids_of "$wd/slapd.d")" ]; then
        _ldap_die "an instance is still running in $wd (ldap_stop it first)"
        return 1
    fi
    if [ "$role" = consumer ]; then
        pwd_=$(cd "$pwd_" 2>/dev/null && pwd -P) && [ -f "$pwd_/ldap.env" ] ||
            { _ldap_die "no provider instance in ${4:-?}"; return 1; }
        [ "$pwd_" != "$wd" ] || { _ldap_die "consumer and provider must differ"; return 1; }
        # shellcheck disable=SC1091
        prov_uri=$(. "$pwd_/ldap.env" && echo "$LDAPI_URI")
    fi
    for v in $_LDAP_ENV_VARS; do unset "$v"; done
    LDAP_WORKDIR=$wd
    LDAP_NAME=${name:-ldaptest-$(basename "$wd" | tr -c 'A-Za-z0-9._\n-' '_')}
    LDAP_ROLE=$role
    LDAP_CONFDIR=$wd/slapd.d
    LDAP_LOG=$wd/slapd.log
    LDAPI_SOCKET=$wd/run/ldapi
    if [ "${#LDAPI_SOCKET}" -gt 100 ]; then
        _ldap_die "$LDAPI_SOCKET is too long for a unix socket; use a shorter WORKDIR"
        return 1
    fi
    LDAPI_URI=ldapi://$(_ldap_pct "$LDAPI_SOCKET")
    # shellcheck disable=SC2034  # exported by _ldap_save_env
    LDAP_CA_CERT=$wd/tls/ca.crt
    LDAP_BASE=dc=example,dc=org
    LDAP_ROOTDN=cn=admin,dc=example,dc=org
    LDAP_ROOTPW=secret
    LDAP_READER_DN=cn=reader,dc=example,dc=org
    LDAP_READER_PW=readerpw
    LDAP_PROVIDER_WORKDIR=$pwd_
    rm -rf "$wd/slapd.d" "$wd/db" "$wd/run" "$wd/tls" "$wd/config.ldif" \
        "$wd/ldap.env" "$LDAP_LOG"
    mkdir -p "$wd/slapd.d" "$wd/db" "$wd/run" || return 1
    chmod 700 "$wd/slapd.d" "$wd/db"
    : >"$LDAP_LOG"
    _ldap_new_ports || return 1
    _ldap_remember "$wd"
    _ldap_make_tls "$wd/tls" "$LDAP_NAME" || { _ldap_die "TLS setup failed"; return 1; }
    _ldap_write_config "$role" "$prov_uri"
    out=$("$_LDAP_SLAPADD" -n0 -F "$LDAP_CONFDIR" -l "$wd/config.ldif" 2>&1) ||
        { echo "$out" >&2; _ldap_die "slapadd -n0 failed"; return 1; }
    if [ "$role" = provider ]; then
        _ldap_base_ldif >"$wd/base.ldif"
        out=$("$_LDAP_SLAPADD" -w -F "$LDAP_CONFDIR" -b "$LDAP_BASE" -l "$wd/base.ldif" 2>&1) ||
            { echo "$out" >&2; _ldap_die "slapadd of the base entries failed"; return 1; }
    fi
    return 0
}

ldap_init() {
    local wd=${1:?usage: ldap_init WORKDIR [NAME]}
    _ldap_init_common "$wd" "${2:-}" provider
}

ldap_init_consumer() {
    local wd=${1:?usage: ldap_init_consumer WORKDIR PROVIDER_WORKDIR [NAME]}
    local pw=${2:?usage: ldap_init_consumer WORKDIR PROVIDER_WORKDIR [NAME]}
    _ldap_init_common "$wd" "${3:-}" consumer "$pw"
}

ldap_use() {
    local wd=${1:?usage: ldap_use WORKDIR} v
    wd=$(cd "$wd" 2>/dev/null && pwd -P) && [ -f "$wd/ldap.env" ] ||
        { _ldap_die "${1}: no instance"; return 1; }
    for v in $_LDAP_ENV_VARS; do unset "$v"; done
    # shellcheck disable=SC1091
    . "$wd/ldap.env"
    _ldap_remember "$wd"
    return 0
}

# _ldap_answers: the instance answers a root DSE search over ldapi
_ldap_answers() {
    ldapsearch -x -H "$LDAPI_URI" -b "" -s base -LLL -o nettimeout=2 \
        namingContexts </dev/null >/dev/null 2>&1
}

# _ldap_exists DN: DN exists (searched as the rootdn over ldapi)
_ldap_exists() {
    ldapsearch -x -H "$LDAPI_URI" -D "$LDAP_ROOTDN" -w "$LDAP_ROOTPW" -b "$1" \
        -s base -LLL -o nettimeout=2 1.1 </dev/null >/dev/null 2>&1
}

ldap_start() {
    _ldap_need_init || return 1
    ldap_use "$LDAP_WORKDIR" || return 1
    local attempt i pid ok mark lines
    if ldap_running; then
        _ldap_die "instance $LDAP_WORKDIR already running"
        return 1
    fi
    for attempt in 1 2 3 4 5; do
        rm -f "$LDAP_WORKDIR/run/slapd.pid" "$LDAPI_SOCKET"
        lines=$(wc -l <"$LDAP_LOG")
        echo "# slapd.sh: start $(date -u +%Y-%m-%dT%H:%M:%SZ) $LDAP_URI $LDAPS_URI $LDAPI_URI" >>"$LDAP_LOG"
        # in a subshell: slapd is not a child of the caller's shell
        (
            cd "$LDAP_WORKDIR/run" || exit 1
            exec "$_LDAP_SLAPD" -d stats -n "$LDAP_NAME" -F "$LDAP_CONFDIR" \
                -h "$LDAP_URI/ $LDAPS_URI/ $LDAPI_URI/" </dev/null >>"$LDAP_LOG" 2>&1 &
            echo $! >"$LDAP_WORKDIR/run/launch.pid"
        )
        read -r pid <"$LDAP_WORKDIR/run/launch.pid"
        ok=
        for i in $(seq 1 200); do
            if _ldap_answers; then ok=1; break; fi
            [ -r "/proc/$pid/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" || break
            sleep 0.05
        done
        [ -n "$ok" ] && break
        # lost a race for a port?  pick new ones and retry
        mark=$(tail -n +"$((lines + 1))" "$LDAP_LOG")
        if [ "$attempt" != 5 ] && [ -z "$(ldap_pids)" ] &&
            echo "$mark" | grep -q 'Address already in use'; then
            _ldap_new_ports || return 1
            continue
        fi
        echo "$mark" | tail -n 20 >&2
        ldap_stop >/dev/null 2>&1
        _ldap_die "slapd did not start ($LDAP_WORKDIR)"
        return 1
    done
    if [ "$LDAP_ROLE" = consumer ] &&
        [ -n "$(_ldap_pids_of "$LDAP_PROVIDER_WORKDIR/slapd.d")" ]; then
        ldap_wait_replicated "$LDAP_BASE" 10 ||
            { _ldap_die "consumer: $LDAP_BASE did not replicate within 10 s"; return 1; }
    fi
    return 0
}

ldap_stop() {
    [ -n "${LDAP_CONFDIR:-}" ] && [ -d "$LDAP_CONFDIR" ] || return 0
    local pids pid i
    pids=$(ldap_pids)
    [ -n "$pids" ] || return 0
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
    for i in $(seq 1 200); do
        pids=$(ldap_pids)
        [ -z "$pids" ] && break
        sleep 0.05
    done
    if [ -n "$pids" ]; then
        echo "slapd.sh: slapd $pids ignored SIGTERM, killing" >&2
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
        for i in $(seq 1 40); do
            pids=$(ldap_pids)
            [ -z "$pids" ] && break
            sleep 0.05
        done
    fi
    rm -f "$LDAPI_SOCKET"
    [ -z "$pids" ]
}

ldap_restart() {
    _ldap_need_init || return 1
    ldap_stop || return 1
    ldap_start
}

# ldap_stop_all: stop every instance this shell knows; the current
# instance stays current.  Returns non-zero if any could not be stopped.
ldap_stop_all() {
    local cur=${LDAP_WORKDIR:-} d rc=0
    for d in "${_LDAP_KNOWN[@]}"; do
        [ -f "$d/ldap.env" ] || continue
        ldap_use "$d" && { ldap_stop || rc=1; }
    done
    if [ -n "$cur" ] && [ -f "$cur/ldap.env" ]; then ldap_use "$cur"; fi
    return $rc
}

ldap_add() {
    _ldap_need_init || return 1
    local f=${1:?usage: ldap_add LDIFFILE}
    ldapadd -x -H "$LDAP_URI" -D "$LDAP_ROOTDN" -w "$LDAP_ROOTPW" -f "$f" </dev/null
}

ldap_modify() {
    _ldap_need_init || return 1
    local f=${1:?usage: ldap_modify LDIFFILE}
    ldapmodify -x -H "$LDAP_URI" -D "$LDAP_ROOTDN" -w "$LDAP_ROOTPW" -f "$f" </dev/null
}

ldap_search() {
    _ldap_need_init || return 1
    ldapsearch -x -LLL -H "$LDAP_URI" -b "$LDAP_BASE" "$@" </dev/null
}

ldap_wait_replicated() {
    _ldap_need_init || return 1
    local dn=${1:?usage: ldap_wait_replicated DN [TIMEOUT]} timeout=${2:-10} end
    end=$(($(date +%s) + timeout))
    while :; do
        _ldap_exists "$dn" && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

ldap_wait_log() {
    _ldap_need_init || return 1
    local re=${1:?usage: ldap_wait_log REGEX [TIMEOUT]} timeout=${2:-10} end
    end=$(($(date +%s) + timeout))
    while :; do
        grep -Eq -- "$re" "$LDAP_LOG" 2>/dev/null && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

# ldap_people_pair PKIDIR DIR: the test people (tests/ldap/mkldif.sh over
# PKIDIR) on a provider in DIR/ldap1 and a syncrepl consumer of it in
# DIR/ldap2, waiting until the last entry has replicated.  Sets PROV_URI
# PROV_LDAPS PROV_LDAPI PROV_LOG PROV_CA (the provider's) and CONS_URI;
# the consumer is the current instance afterwards.  The LDIF is left in
# DIR/people.ldif.  Returns non-zero (with a line on stderr) on failure.
ldap_people_pair() {
    local pki=${1:?usage: ldap_people_pair PKIDIR DIR} dir=${2:?usage: ldap_people_pair PKIDIR DIR}
    local last
    sh "$(dirname "${BASH_SOURCE[0]}")/../ldap/mkldif.sh" "$pki" "$dir/people.ldif" \
        >"$dir/mkldif.log" 2>&1 || { _ldap_die "mkldif: $(tail -n 1 "$dir/mkldif.log")"; return 1; }
    ldap_init "$dir/ldap1" >/dev/null && ldap_start >/dev/null &&
        ldap_add "$dir/people.ldif" >/dev/null || { _ldap_die "provider slapd"; return 1; }
    PROV_URI=$LDAP_URI PROV_LDAPS=$LDAPS_URI PROV_LDAPI=$LDAPI_URI PROV_LOG=$LDAP_LOG
    PROV_CA=$LDAP_CA_CERT
    ldap_init_consumer "$dir/ldap2" "$dir/ldap1" >/dev/null && ldap_start >/dev/null ||
        { _ldap_die "consumer slapd"; return 1; }
    CONS_URI=$LDAP_URI
    last=$(sed -n 's/^dn: //p' "$dir/people.ldif" | tail -n 1)
    ldap_wait_replicated "$last" 30 >/dev/null || { _ldap_die "replication of $last"; return 1; }
}
