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
#include "smm_err.h"

enum smm_direction {
    SMM_DIR_INBOUND = 0,
    SMM_DIR_OUTBOUND = 1,
};

enum smm_direction smm_direction_decide(const struct smm_config *, const char *,
                                        const char *, const char *,
                                        const char **);
const char *smm_direction_name(enum smm_direction);

/*
 * The policy map (PolicyMap): "KEY POLICY" lines, KEY an address, an
 * @domain (that domain only) or a .domain (every subdomain of it), POLICY
 * never, opportunistic or mandatory.  Most specific wins: the address,
 * then @domain, then the longest matching .domain, then the default.
 * Immutable once loaded; shared between threads.
 */
struct smm_policymap;

smm_status smm_policymap_load(const char *, struct smm_policymap **,
                              struct smm_err *);
int smm_policymap_lookup(const struct smm_policymap *, const char *, int);
void smm_policymap_free(struct smm_policymap *);

#endif
