/*
 * smm_state -- loaded snapshot; see smm_state.h.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "smm_cache.h"
#include "smm_x509cache.h"
#include "smm_certstore.h"
#include "smm_cms.h"
#include "smm_ldap.h"
#include "smm_policy.h"
#include "smm_state.h"

smm_status
smm_init(struct smm_err *err)
{
    g_mime_init();
    return smm_crypto_init(err);
}

void
smm_done(void)
{
    smm_crypto_done();
}

/*
 * A loader failed.  Its message starts with the name of the key whose file
 * was the trouble (as "TrustAnchors /etc/x.pem: No such file or
 * directory"); put the place where that key was set in front of it.
 */
static smm_status
blame_key(const struct smm_config *c, smm_status st, struct smm_err *err)
{
    int i, line;
    size_t len;
    const char *k;

    if (err == NULL || st == SMM_ENOMEM)
        return st;
    for (i = 0; i < smm_config_key_count(); i++) {
        k = smm_config_key_name(i);
        len = strlen(k);
        if (strncmp(err->msg, k, len) == 0 &&
            (err->msg[len] == ' ' || err->msg[len] == ':') &&
            (line = smm_config_line(c, k)) > 0) {
            smm_err_prefix(err, "%s:%d: ", c->path, line);
            break;
        }
    }
    return st;
}

smm_status
smm_state_load(const char *conffile, struct smm_state **out,
               struct smm_diag *diag, struct smm_err *err)
{
    struct smm_state *s;
    struct smm_err aerr;
    smm_status st;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    s->refs = 1;
    if ((st = smm_config_load(conffile, &s->cfg, err)) != SMM_OK ||
        (st = smm_trust_load(s->cfg->trust_anchors, s->cfg->crls, &s->trust,
                             diag, err)) != SMM_OK ||
        (st = smm_keystore_load(s->cfg, s->trust, &s->ks, diag, err)) !=
            SMM_OK ||
        (st = smm_certstore_load(s->cfg->cert_store, "CertificateStore", 1,
                                 &s->certstore, diag, err)) != SMM_OK ||
        (st = smm_certstore_load(s->cfg->harvest_store, "HarvestStore", 0,
                                 &s->harvest, diag, err)) != SMM_OK ||
        (st = smm_policymap_load(s->cfg->policy_map, &s->policymap, err)) !=
            SMM_OK ||
        (s->cfg->ldap_uri.n > 0 &&
         (st = smm_ldap_new(s->cfg, &s->ldap, err)) != SMM_OK)) {
        if (s->cfg != NULL)
            st = blame_key(s->cfg, st, err);
        smm_state_unref(s);
        return st;
    }
    if ((s->archive = sk_X509_new_null()) == NULL) {
        smm_state_unref(s);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    if (s->cfg->archive_certs[0] != '\0' &&
        smm_certs_load_file(s->cfg->archive_certs, s->archive, &aerr) !=
            SMM_OK) {
        st = smm_err_set(err, SMM_EINVAL, "ArchiveCertificates: %s", aerr.msg);
        st = blame_key(s->cfg, st, err);
        smm_state_unref(s);
        return st;
    }
    if ((s->cache = smm_cache_new((size_t)s->cfg->cache_size)) == NULL ||
        (s->x509cache = smm_x509cache_new(SMM_X509CACHE_SIZE)) == NULL) {
        smm_state_unref(s);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    *out = s;
    return SMM_OK;
}

struct smm_state *
smm_state_ref(struct smm_state *s)
{
    if (s != NULL)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void
smm_state_unref(struct smm_state *s)
{
    if (s == NULL || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    smm_cache_free(s->cache);
    smm_x509cache_free(s->x509cache);
    smm_policymap_free(s->policymap);
    sk_X509_pop_free(s->archive, X509_free);
    smm_ldap_free(s->ldap);
    smm_certstore_free(s->harvest);
    smm_certstore_free(s->certstore);
    smm_keystore_free(s->ks);
    smm_trust_free(s->trust);
    smm_config_free(s->cfg);
    free(s);
}
