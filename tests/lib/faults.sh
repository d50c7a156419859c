# shellcheck shell=bash
# tests/lib/faults.sh -- what the fault-injection tests (t-fault-*.sh)
# share: a sender that resends like an upstream MTA, and a checker that
# accounts for every message at the sink.  Source it after common.sh and
# postfix.sh.
#
# Sending (tests/tools/smtp-retry.pl, see its header for the message
# format and the log lines):
#   fault_send DIR [smtp-retry args...]   send through Postfix ($PF_PORT);
#                    DIR is created, its summary line in DIR/summary, the
#                    exit status is the sender's.  Bounded: the sender
#                    gives up at its --deadline, and `timeout` stops it 60 s
#                    after that in any case.  Run it with & to inject faults
#                    meanwhile.
#   fault_count DIR WHAT [REGEX]   how many log lines of kind WHAT (ok, temp,
#                    neterr, perm, giveup) so far, optionally matching REGEX
#   fault_wait DIR WHAT N [TIMEOUT [REGEX]]   poll (0.1 s) until fault_count
#                    reaches N; 1 after TIMEOUT seconds (default 60)
#   fault_field DIR NAME   a field of the summary line (accepted, resent, ...)
#
# Checking the sink (tests/tools/fault-check.pl, see its header for the
# nine fields it reports per message):
#   fault_verify PREFIX COUNT CLASSIFY GOOD...
#                    every sink message whose Message-ID is
#                    <PREFIX-NNNNNN@fault.test> is examined (with
#                    $FAULT_CHECK_ARGS, e.g. --rcpt CERT KEY --cert NAME=FILE)
#                    and its fields handed to the shell function CLASSIFY
#                    ID KIND DEC SIGNER CERTS BODY LEAK STAMP, which sets
#                    VERDICT; the message is good when VERDICT is one of
#                    GOOD.  Prints "delivered=N unique=U duplicates=D
#                    missing=M good=G bad=B" and up to 10 "#   " lines naming
#                    bad, duplicate and missing messages; returns 0 only
#                    when each of PREFIX-000001 .. PREFIX-COUNT arrived
#                    exactly once and every copy is good.  The fields and
#                    verdicts are kept in $T/verify.PREFIX.  Two checkers run
#                    at a time.
#   fault_encrypted_ok ...   a CLASSIFY: "ok" for an enveloped-data that
#                    decrypts with the --rcpt key and holds the complete body
#                    of the message its outer Message-ID names; else
#                    "plaintext", "leak", "undecryptable", "incomplete"
# Sanitizers:
#   fault_sanitizer_check   a TAP check: the milter's log holds no report
#                    of AddressSanitizer, LeakSanitizer or UBSan (a build
#                    with --enable-sanitizers writes them there)
#
# Processes:
#   fault_worker     pid of the running milter worker (the supervisor's
#                    child), empty if there is none
#   fault_wait_worker OLDPID [TIMEOUT]   wait until a worker other than
#                    OLDPID runs and the milter socket accepts connections

FAULT_SENDER=$SRCDIR/tests/tools/smtp-retry.pl

fault_send() {
    local dir=$1 deadline=120 a prev=
    shift
    mkdir -p "$dir" || return 2
    for a in "$@"; do
        [ "$prev" = --deadline ] && deadline=$a
        prev=$a
    done
    timeout -k 5 $((deadline + 60)) perl "$FAULT_SENDER" --port "$PF_PORT" \
        --dir "$dir" "$@" >"$dir/summary" 2>"$dir/stderr"
}

fault_count() {
    local dir=$1 what=$2 re=${3:-}
    cat "$dir"/log.* 2>/dev/null | grep "^$what " | grep -Ec -- "${re:-.}"
}

fault_wait() {
    local dir=$1 what=$2 n=$3 timeout=${4:-60} re=${5:-} end
    end=$(($(date +%s) + timeout))
    while [ "$(fault_count "$dir" "$what" "$re")" -lt "$n" ]; do
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

fault_field() {
    sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" "$1/summary" 2>/dev/null
}

fault_encrypted_ok() { # ID KIND DEC SIGNER CERTS BODY LEAK STAMP
    if [ "$2" != enveloped ]; then
        VERDICT=plaintext
    elif [ "$7" != no ]; then
        VERDICT=leak
    elif [ "$3" != ok ]; then
        VERDICT=undecryptable
    elif [ "$6" != complete ]; then
        VERDICT=incomplete
    else
        VERDICT=ok
    fi
}

fault_verify() {
    local prefix=$1 count=$2 classify=$3 out=$T/verify.$1 lst
    local f id kind dec signer certs body leak stamp
    shift 3
    lst=$T/verify.$prefix.files
    grep -l "^Message-I[Dd]: <$prefix-[0-9]*@fault\.test>" "$PF_SINKDIR"/*.eml 2>/dev/null |
        sort >"$lst"
    # shellcheck disable=SC2086  # FAULT_CHECK_ARGS is a list of words
    awk 'NR % 2 == 1' "$lst" | xargs -r perl "$SRCDIR/tests/tools/fault-check.pl" \
        ${FAULT_CHECK_ARGS:-} >"$out.1" &
    # shellcheck disable=SC2086
    awk 'NR % 2 == 0' "$lst" | xargs -r perl "$SRCDIR/tests/tools/fault-check.pl" \
        ${FAULT_CHECK_ARGS:-} >"$out.2"
    wait $!
    sort "$out.1" "$out.2" | while read -r f id kind dec signer certs body leak stamp; do
        VERDICT=
        "$classify" "$id" "$kind" "$dec" "$signer" "$certs" "$body" "$leak" "$stamp"
        echo "$VERDICT $id $kind $dec $signer $certs $body $leak $stamp $f"
    done >"$out"
    rm -f "$out.1" "$out.2"
    awk -v prefix="$prefix" -v count="$count" -v good="$*" '
        BEGIN { n = split(good, g, " "); for (i = 1; i <= n; i++) ok[g[i]] = 1 }
        {
            files++; seen[$2]++; v[$1]++
            if ($1 in ok) ngood++
            else { nbad++; if (shown++ < 10) print "#   bad: " $0 }
        }
        END {
            for (id in seen) {
                uniq++
                if (seen[id] > 1) { dup += seen[id] - 1; if (shown++ < 10) print "#   duplicate: " id " x" seen[id] }
            }
            for (i = 1; i <= count; i++) {
                id = sprintf("%s-%06d", prefix, i)
                if (!(id in seen)) { miss++; if (shown++ < 10) print "#   missing: " id }
            }
            printf "delivered=%d unique=%d duplicates=%d missing=%d good=%d bad=%d\n",
                files, uniq, dup, miss, ngood, nbad
            exit !(files == count && uniq == count && dup == 0 && miss == 0 && nbad == 0)
        }' "$out"
}

fault_worker() {
    [ -n "${MILTER_PID:-}" ] || return 0
    pgrep -P "$MILTER_PID" -x smime-milter | head -n 1
}

fault_wait_worker() {
    local old=$1 timeout=${2:-30} end w
    end=$(($(date +%s) + timeout))
    while :; do
        w=$(fault_worker)
        if [ -n "$w" ] && [ "$w" != "$old" ] &&
            (exec 3<>"/dev/tcp/127.0.0.1/$MILTER_PORT") 2>/dev/null; then
            return 0
        fi
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

fault_sanitizer_check() {
    tap_not "no sanitizer report in the milter log" -- \
        grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$MILTER_LOG"
}
