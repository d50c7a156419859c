/*
 * smm_certsel -- recipient certificate rules; see smm_certsel.h.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "smm_certsel.h"
#include "smm_config.h"
#include "smm_x509.h"

static int
addr_matches(X509 *x, const char *addr, char *names, size_t sz)
{
    struct smm_strlist l = {0};
    size_t i, o = 0;
    int m = 0;

    if (smm_x509_addresses(x, &l) != SMM_OK) {
        smm_strlist_free(&l);
        return 0;
    }
    names[0] = '\0';
    for (i = 0; i < l.n; i++) {
        if (smm_addr_equal(l.v[i], addr))
            m = 1;
        if (o + strlen(l.v[i]) + 2 < sz)
            o += (size_t)snprintf(names + o, sz - o, "%s%s", i ? "," : "",
                                  l.v[i]);
    }
    smm_strlist_free(&l);
    return m;
}

/* Key strength: NULL when strong enough. */
static const char *
key_check(X509 *x, int min_bits, char *buf, size_t sz)
{
    EVP_PKEY *pk = X509_get0_pubkey(x);
    char curve[64];
    size_t cl = 0;
    int bits;

    if (pk == NULL)
        return "unreadable public key";
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA:
        bits = EVP_PKEY_get_bits(pk);
        if (bits < min_bits) {
            snprintf(buf, sz, "weak key (RSA %d bits < MinKeyBits %d)", bits,
                     min_bits);
            return buf;
        }
        return NULL;
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_utf8_string_param(pk, "group", curve, sizeof(curve),
                                           &cl) != 1) {
            ERR_clear_error();
            return "weak key (unknown EC curve)";
        }
        if (strcmp(curve, "prime256v1") == 0 ||
            strcmp(curve, "secp384r1") == 0 || strcmp(curve, "secp521r1") == 0)
            return NULL;
        snprintf(buf, sz, "weak key (EC curve %s; P-256 or larger needed)",
                 curve);
        return buf;
    default:
        return "unsupported key type (RSA or EC needed)";
    }
}

const char *
smm_certsel_check(X509 *x, const char *addr, STACK_OF(X509) * untrusted,
                  const struct smm_certsel_opts *o, char *buf, size_t sz)
{
    char names[256];
    const char *why;
    unsigned usage;
    X509_STORE_CTX *ctx;
    STACK_OF(X509) * chain;
    X509 *issuer = NULL;
    int ok, revoked;

    if (!addr_matches(x, addr, names, sizeof(names))) {
        snprintf(buf, sz, "address mismatch (certificate names %s)",
                 names[0] ? names : "no address");
        return buf;
    }
    if (X509_cmp_time(X509_get0_notBefore(x), (time_t *)&o->now) > 0)
        return "not yet valid";
    if (X509_cmp_time(X509_get0_notAfter(x), (time_t *)&o->now) < 0)
        return "expired";
    if ((why = key_check(x, o->min_key_bits, buf, sz)) != NULL)
        return why;
    usage = smm_x509_usage(x);
    if (!(usage & SMM_USE_ENCRYPT))
        return "wrong key usage (encryption not allowed)";
    if (!(usage & SMM_USE_EMAIL))
        return "wrong EKU (no emailProtection)";
    if (o->trust == NULL)
        return NULL;
    if ((ctx = X509_STORE_CTX_new()) == NULL)
        return "out of memory";
    if (X509_STORE_CTX_init(ctx, o->trust->store, x, untrusted) != 1) {
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
        return "out of memory";
    }
    X509_STORE_CTX_set_time(ctx, 0, o->now);
    ok = X509_verify_cert(ctx) == 1;
    if (!ok && o->require_trusted) {
        snprintf(buf, sz, "untrusted (%s)",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
        return buf;
    }
    if (ok && (chain = X509_STORE_CTX_get0_chain(ctx)) != NULL &&
        sk_X509_num(chain) > 1)
        issuer = sk_X509_value(chain, 1);
    revoked = smm_trust_revoked(o->trust, x, issuer);
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return revoked ? "revoked" : NULL;
}
