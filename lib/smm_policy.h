/*
 * smm_policy -- which way a message goes, and why.
 *
 * A message is outbound when its client is trusted: SMTP AUTH succeeded,
 * the client address is in InternalHosts, or the MTA service that received
 * it ({daemon_name}) is listed in OutboundDaemons.  Otherwise it is
 * inbound.  Pure function of its arguments; thread-safe.
 */
#ifndef SMM_POLICY_H
#define SMM_POLICY_H

#include "smm_config.h"

enum smm_direction {
    SMM_DIR_INBOUND = 0,
    SMM_DIR_OUTBOUND = 1,
};

enum smm_direction smm_direction_decide(const struct smm_config *, const char *,
                                        const char *, const char *,
                                        const char **);
const char *smm_direction_name(enum smm_direction);

#endif
