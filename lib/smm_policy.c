/*
 * smm_policy -- direction rules; see smm_policy.h.
 */
#include "config.h"

#include <string.h>

#include "smm_policy.h"

/*
 * auth: the {auth_authen} macro (NULL or "" when not authenticated);
 * client_addr: the client's IP address as text (NULL when unknown);
 * daemon: the {daemon_name} macro (NULL when not sent).
 * *reason gets a static word for the log: "auth", "internal-host",
 * "daemon" or "external".
 */
enum smm_direction
smm_direction_decide(const struct smm_config *cfg, const char *auth,
                     const char *client_addr, const char *daemon,
                     const char **reason)
{
    size_t i;

    if (auth != NULL && *auth != '\0') {
        *reason = "auth";
        return SMM_DIR_OUTBOUND;
    }
    for (i = 0; i < cfg->internal_hosts.n; i++) {
        if (smm_cidr_match(&cfg->internal_hosts.v[i], client_addr)) {
            *reason = "internal-host";
            return SMM_DIR_OUTBOUND;
        }
    }
    if (daemon != NULL) {
        for (i = 0; i < cfg->outbound_daemons.n; i++) {
            if (strcmp(daemon, cfg->outbound_daemons.v[i]) == 0) {
                *reason = "daemon";
                return SMM_DIR_OUTBOUND;
            }
        }
    }
    *reason = "external";
    return SMM_DIR_INBOUND;
}

const char *
smm_direction_name(enum smm_direction d)
{
    return d == SMM_DIR_OUTBOUND ? "outbound" : "inbound";
}
