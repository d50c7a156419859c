#!/bin/bash
# t-fault-kill-daemon: t-fault-kill with the whole daemon (supervisor and
# worker) SIGKILLed twice in the middle of a 500-message run and started
# again by the test, then stopped with SIGTERM and started again; see
# t-fault-kill.sh.
FAULT_KILL=daemon
. "$(dirname "$0")/t-fault-kill.sh"
