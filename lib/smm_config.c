/*
 * smm_config -- configuration file parser; see smm_config.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smm_config.h"
#include "smm_diag.h"
#include "smm_log.h"

enum ktype {
    K_STR,
    K_PATH,
    K_BOOL,
    K_SIZE,
    K_INT,
    K_CIDRS,
    K_WORDS,
    K_LOGLEVEL,
    K_FACILITY,
    K_ENUM
};

struct keydef {
    const char *name;
    enum ktype type;
    size_t off;
    const char *def;
    const char *const *choices; /* K_ENUM: the values, in enum order */
};

static const char *const policies[] = {"never", "opportunistic", "mandatory",
                                       NULL};
static const char *const missing[] = {"reject", "tempfail", "hold", NULL};
static const char *const dirfail[] = {"tempfail", "continue", NULL};
static const char *const ciphers[] = {"aes-128-cbc", "aes-192-cbc",
                                      "aes-256-cbc", "aes-128-gcm",
                                      "aes-256-gcm", NULL};
static const char *const paddings[] = {"pkcs1", "oaep", NULL};

#define OFF(f) offsetof(struct smm_config, f)

/* Keep in the order of smime-milter.conf(5). */
static const struct keydef keys[] = {
    {"Socket", K_STR, OFF(socket), "unix:/run/smime-milter/smime-milter.sock",
     NULL},
    {"UserID", K_STR, OFF(user_id), "", NULL},
    {"AllowCoreDumps", K_BOOL, OFF(allow_core_dumps), "no", NULL},
    {"PidFile", K_PATH, OFF(pid_file), "", NULL},
    {"SyslogFacility", K_FACILITY, OFF(syslog_facility), "mail", NULL},
    {"LogLevel", K_LOGLEVEL, OFF(log_level), "info", NULL},
    {"StatsFile", K_PATH, OFF(stats_file), "/var/lib/smime-milter/stats", NULL},
    {"StatsInterval", K_INT, OFF(stats_interval), "60", NULL},
    {"InternalHosts", K_CIDRS, OFF(internal_hosts), "127.0.0.0/8 ::1", NULL},
    {"OutboundDaemons", K_WORDS, OFF(outbound_daemons), "", NULL},
    {"KeyStore", K_PATH, OFF(keystore), "/etc/smime-milter/keys", NULL},
    {"KeyStorePassphraseFile", K_PATH, OFF(keystore_passfile), "", NULL},
    {"TrustAnchors", K_PATH, OFF(trust_anchors), "", NULL},
    {"SignDomainKeys", K_BOOL, OFF(sign_domain_keys), "no", NULL},
    {"RequireFromMatch", K_BOOL, OFF(require_from_match), "yes", NULL},
    {"StampHeader", K_BOOL, OFF(stamp_header), "yes", NULL},
    {"MaxMemoryBody", K_SIZE, OFF(max_memory_body), "1M", NULL},
    {"TempDirectory", K_PATH, OFF(temp_dir), "/tmp", NULL},
    {"MaxMessageSize", K_SIZE, OFF(max_message_size), "64M", NULL},
    {"MaxMimeDepth", K_INT, OFF(max_mime_depth), "32", NULL},
    {"MaxMimeParts", K_INT, OFF(max_mime_parts), "1000", NULL},
    {"CertificateStore", K_PATH, OFF(cert_store), "", NULL},
    {"HarvestStore", K_PATH, OFF(harvest_store), "", NULL},
    {"MinKeyBits", K_INT, OFF(min_key_bits), "2048", NULL},
    {"RequireTrustedRecipientCerts", K_BOOL, OFF(require_trusted_rcpt), "yes",
     NULL},
    {"CRLs", K_PATH, OFF(crls), "", NULL},
    {"CacheTTL", K_INT, OFF(cache_ttl), "3600", NULL},
    {"NegativeCacheTTL", K_INT, OFF(negative_cache_ttl), "300", NULL},
    {"CacheSize", K_INT, OFF(cache_size), "10000", NULL},
    {"LDAPURI", K_WORDS, OFF(ldap_uri), "", NULL},
    {"LDAPStartTLS", K_BOOL, OFF(ldap_starttls), "no", NULL},
    {"LDAPCACertFile", K_PATH, OFF(ldap_cacert), "", NULL},
    {"LDAPBindDN", K_STR, OFF(ldap_bind_dn), "", NULL},
    {"LDAPBindPasswordFile", K_PATH, OFF(ldap_bind_passfile), "", NULL},
    {"LDAPSASLMech", K_STR, OFF(ldap_sasl_mech), "", NULL},
    {"LDAPBase", K_STR, OFF(ldap_base), "", NULL},
    {"LDAPFilter", K_STR, OFF(ldap_filter), "(mail=%s)", NULL},
    {"LDAPAttributes", K_WORDS, OFF(ldap_attrs),
     "userSMIMECertificate userCertificate;binary", NULL},
    {"LDAPTimeout", K_INT, OFF(ldap_timeout), "5", NULL},
    {"LDAPRetryAfterTimeout", K_INT, OFF(ldap_retry_after_timeout), "10", NULL},
    {"LDAPSizeLimit", K_INT, OFF(ldap_size_limit), "10", NULL},
    {"LDAPPoolSize", K_INT, OFF(ldap_pool_size), "4", NULL},
    {"EncryptionPolicy", K_ENUM, OFF(encryption_policy), "opportunistic",
     policies},
    {"PolicyMap", K_PATH, OFF(policy_map), "", NULL},
    {"MissingCertAction", K_ENUM, OFF(missing_cert_action), "reject", missing},
    {"DirectoryFailureAction", K_ENUM, OFF(directory_failure_action),
     "tempfail", dirfail},
    {"EncryptToSelf", K_BOOL, OFF(encrypt_to_self), "yes", NULL},
    {"ArchiveCertificates", K_PATH, OFF(archive_certs), "", NULL},
    {"Cipher", K_ENUM, OFF(cipher), "aes-256-cbc", ciphers},
    {"RSAPadding", K_ENUM, OFF(rsa_oaep), "pkcs1", paddings},
    {"CipherFromCapabilities", K_BOOL, OFF(cipher_from_caps), "yes", NULL},
    {"SubjectTrigger", K_STR, OFF(subject_trigger), "", NULL},
    {"SplitRecipients", K_BOOL, OFF(split_recipients), "no", NULL},
    {"AuthservID", K_STR, OFF(authserv_id), "", NULL},
    {"Decrypt", K_BOOL, OFF(decrypt), "yes", NULL},
    {"DecryptForRecipientsOnly", K_BOOL, OFF(decrypt_rcpt_only), "yes", NULL},
    {"RecipientDelimiter", K_STR, OFF(recipient_delimiter), "", NULL},
    {"LocalDomains", K_WORDS, OFF(local_domains), "", NULL},
    {"Verify", K_BOOL, OFF(verify), "yes", NULL},
    {"AllowSHA1Signatures", K_BOOL, OFF(allow_sha1), "no", NULL},
    {"UnwrapOpaqueSigned", K_BOOL, OFF(unwrap_opaque), "no", NULL},
    {"StripSignatures", K_BOOL, OFF(strip_signatures), "no", NULL},
    {"Harvest", K_BOOL, OFF(harvest), "no", NULL},
};

const char *
smm_cipher_name(int c)
{
    return c >= 0 && c <= SMM_CIPHER_AES256_GCM ? ciphers[c] : "?";
}

int
smm_policy_parse(const char *v)
{
    int i;

    for (i = 0; policies[i] != NULL; i++)
        if (strcasecmp(v, policies[i]) == 0)
            return i;
    return -1;
}

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const facilities[] = {
    "mail",   "daemon", "user",   "local0", "local1", "local2",
    "local3", "local4", "local5", "local6", "local7",
};

int
smm_config_key_count(void)
{
    return (int)NKEYS;
}

const char *
smm_config_key_name(int i)
{
    return i >= 0 && (size_t)i < NKEYS ? keys[i].name : NULL;
}

/* Split a list value on white space and commas. */
static smm_status
split_words(const char *v, struct smm_strlist *out)
{
    const char *p = v, *s;
    char **nv;

    while (*p != '\0') {
        while (*p != '\0' && (isspace((unsigned char)*p) || *p == ','))
            p++;
        if (*p == '\0')
            break;
        s = p;
        while (*p != '\0' && !isspace((unsigned char)*p) && *p != ',')
            p++;
        if ((nv = realloc(out->v, (out->n + 1) * sizeof(*nv))) == NULL)
            return SMM_ENOMEM;
        out->v = nv;
        if ((out->v[out->n] = strndup(s, (size_t)(p - s))) == NULL)
            return SMM_ENOMEM;
        out->n++;
    }
    return SMM_OK;
}

void
smm_strlist_free(struct smm_strlist *l)
{
    size_t i;

    if (l == NULL)
        return;
    for (i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int
parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    size_t i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* "1048576", "512k", "10M", "1G" (binary multiples). */
static int
parse_size(const char *v, size_t *out)
{
    char *end;
    unsigned long long n, mult = 1;

    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0)
        return -1;
    if (*end != '\0') {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            mult = 1024ULL;
            break;
        case 'm':
            mult = 1024ULL * 1024;
            break;
        case 'g':
            mult = 1024ULL * 1024 * 1024;
            break;
        default:
            return -1;
        }
        if (end[1] != '\0' &&
            !(tolower((unsigned char)end[1]) == 'b' && end[2] == '\0'))
            return -1;
    }
    if (n > (unsigned long long)SIZE_MAX / mult)
        return -1;
    *out = (size_t)(n * mult);
    return 0;
}

static int
parse_int(const char *v, int *out)
{
    char *end;
    long n;

    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n > INT_MAX)
        return -1;
    *out = (int)n;
    return 0;
}

/* Make a relative path relative to the config file's directory. */
static char *
resolve_path(const char *cfpath, const char *v)
{
    const char *slash;
    char *p;
    size_t dl;

    if (*v == '\0' || *v == '/' || cfpath == NULL ||
        (slash = strrchr(cfpath, '/')) == NULL)
        return strdup(v);
    dl = (size_t)(slash - cfpath);
    if ((p = malloc(dl + 1 + strlen(v) + 1)) == NULL)
        return NULL;
    memcpy(p, cfpath, dl);
    p[dl] = '/';
    strcpy(p + dl + 1, v);
    return p;
}

/* Set one key from its textual value.  Returns a reason on error. */
static smm_status
set_key(struct smm_config *c, const struct keydef *k, const char *v,
        const char **why)
{
    char *base = (char *)c;
    char **sp = (char **)(base + k->off);
    int *ip = (int *)(base + k->off);
    size_t *zp = (size_t *)(base + k->off);
    struct smm_strlist words = {0};
    struct smm_cidr *cidrs;
    size_t i;
    int lvl;
    char *s;

    *why = NULL;
    switch (k->type) {
    case K_STR:
    case K_PATH:
        s = k->type == K_PATH ? resolve_path(c->path, v) : strdup(v);
        if (s == NULL)
            return SMM_ENOMEM;
        free(*sp);
        *sp = s;
        return SMM_OK;
    case K_BOOL:
        if (parse_bool(v, ip) != 0) {
            *why = "expected yes or no";
            return SMM_EINVAL;
        }
        return SMM_OK;
    case K_SIZE:
        if (parse_size(v, zp) != 0) {
            *why = "expected a size in bytes, optionally with k, M or G";
            return SMM_EINVAL;
        }
        return SMM_OK;
    case K_ENUM:
        for (i = 0; k->choices[i] != NULL; i++)
            if (strcasecmp(v, k->choices[i]) == 0) {
                *ip = (int)i;
                return SMM_OK;
            }
        *why = "not one of the allowed values (see smime-milter.conf(5))";
        return SMM_EINVAL;
    case K_INT:
        if (parse_int(v, ip) != 0) {
            *why = "expected a whole number from 0 to 2147483647";
            return SMM_EINVAL;
        }
        return SMM_OK;
    case K_LOGLEVEL:
        if ((lvl = smm_log_level_parse(v)) < 0) {
            *why = "expected error, warning, notice, info or debug";
            return SMM_EINVAL;
        }
        *ip = lvl;
        return SMM_OK;
    case K_FACILITY:
        for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
            if (strcasecmp(v, facilities[i]) == 0)
                break;
        if (i == sizeof(facilities) / sizeof(facilities[0])) {
            *why = "expected mail, daemon, user or local0 to local7";
            return SMM_EINVAL;
        }
        if ((s = strdup(facilities[i])) == NULL)
            return SMM_ENOMEM;
        free(*sp);
        *sp = s;
        return SMM_OK;
    case K_WORDS:
        if (split_words(v, &words) != SMM_OK) {
            smm_strlist_free(&words);
            return SMM_ENOMEM;
        }
        smm_strlist_free((struct smm_strlist *)(base + k->off));
        *(struct smm_strlist *)(base + k->off) = words;
        return SMM_OK;
    case K_CIDRS:
        if (split_words(v, &words) != SMM_OK) {
            smm_strlist_free(&words);
            return SMM_ENOMEM;
        }
        cidrs = calloc(words.n ? words.n : 1, sizeof(*cidrs));
        if (cidrs == NULL) {
            smm_strlist_free(&words);
            return SMM_ENOMEM;
        }
        for (i = 0; i < words.n; i++) {
            if (smm_cidr_parse(words.v[i], &cidrs[i]) != 0) {
                *why = "expected IP addresses or CIDR ranges";
                free(cidrs);
                smm_strlist_free(&words);
                return SMM_EINVAL;
            }
        }
        free(((struct smm_cidrlist *)(base + k->off))->v);
        ((struct smm_cidrlist *)(base + k->off))->v = cidrs;
        ((struct smm_cidrlist *)(base + k->off))->n = words.n;
        smm_strlist_free(&words);
        return SMM_OK;
    }
    return SMM_EINVAL;
}

static const struct keydef *
find_key(const char *name)
{
    size_t i;

    for (i = 0; i < NKEYS; i++)
        if (strcasecmp(name, keys[i].name) == 0)
            return &keys[i];
    return NULL;
}

int
smm_config_line(const struct smm_config *c, const char *name)
{
    const struct keydef *k = find_key(name);

    return c != NULL && c->lines != NULL && k != NULL ? c->lines[k - keys] : 0;
}

static smm_status
config_new(const char *path, struct smm_config **out, struct smm_err *err)
{
    struct smm_config *c;
    const char *why;
    size_t i;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL ||
        (c->path = strdup(path != NULL ? path : "(defaults)")) == NULL ||
        (c->lines = calloc(NKEYS, sizeof(*c->lines))) == NULL) {
        if (c != NULL)
            free(c->path);
        free(c);
        return smm_err_set(err, SMM_ENOMEM, "out of memory");
    }
    for (i = 0; i < NKEYS; i++) {
        if (set_key(c, &keys[i], keys[i].def, &why) != SMM_OK) {
            smm_config_free(c);
            return smm_err_set(err, SMM_ENOMEM, "out of memory");
        }
    }
    *out = c;
    return SMM_OK;
}

smm_status
smm_config_defaults(struct smm_config **out, struct smm_err *err)
{
    return config_new(NULL, out, err);
}

/*
 * A problem with a line (or with the file as a whole): with diag, noted
 * there and parsing goes on, so that every problem is reported at once;
 * without, the first one ends the parse.
 */
#define BAD(...)                                                               \
    do {                                                                       \
        if (diag == NULL) {                                                    \
            st = smm_err_set(err, SMM_EINVAL, __VA_ARGS__);                    \
            goto out;                                                          \
        }                                                                      \
        smm_diag_add(diag, SMM_LOG_ERR, __VA_ARGS__);                          \
        nbad++;                                                                \
    } while (0)

static smm_status
config_parse(const char *path, struct smm_config **out, struct smm_diag *diag,
             struct smm_err *err)
{
    struct smm_config *c = NULL;
    FILE *fp = NULL;
    char *line = NULL, *p, *name, *val, *end;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, nbad = 0;
    const struct keydef *k;
    const char *why;
    smm_status st;

    *out = NULL;
    if ((st = config_new(path, &c, err)) != SMM_OK)
        return st;
    if ((fp = fopen(path, "r")) == NULL) {
        st = smm_err_set(err, SMM_EINVAL, "%s: cannot open: %s", path,
                         strerror(errno));
        goto out;
    }
    while ((n = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if ((size_t)n != strlen(line)) {
            BAD("%s:%d: NUL byte in line", path, lineno);
            continue;
        }
        /* strip comments: '#' at line start or after white space */
        for (p = line; *p != '\0'; p++)
            if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
                *p = '\0';
                break;
            }
        end = line + strlen(line);
        while (end > line && isspace((unsigned char)end[-1]))
            *--end = '\0';
        p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            continue;
        name = p;
        while (*p != '\0' && !isspace((unsigned char)*p))
            p++;
        if (*p != '\0')
            *p++ = '\0';
        while (isspace((unsigned char)*p))
            p++;
        val = p;
        if ((k = find_key(name)) == NULL) {
            BAD("%s:%d: unknown key \"%s\"", path, lineno, name);
            continue;
        }
        if (c->lines[k - keys] != 0) {
            BAD("%s:%d: duplicate key %s (first set on line %d)", path, lineno,
                k->name, c->lines[k - keys]);
            continue;
        }
        c->lines[k - keys] = lineno;
        if (*val == '\0' && k->type != K_STR && k->type != K_PATH &&
            k->type != K_WORDS && k->type != K_CIDRS) {
            BAD("%s:%d: %s needs a value", path, lineno, k->name);
            continue;
        }
        if ((st = set_key(c, k, val, &why)) != SMM_OK) {
            if (st == SMM_ENOMEM) {
                smm_err_set(err, st, "out of memory");
                goto out;
            }
            BAD("%s:%d: bad value \"%s\" for %s: %s", path, lineno, val,
                k->name, why);
        }
    }
    if (ferror(fp)) {
        st = smm_err_set(err, SMM_EIO, "%s: read error: %s", path,
                         strerror(errno));
        goto out;
    }
    if (c->ldap_uri.n > 0 && c->ldap_base[0] == '\0')
        BAD("%s: LDAPURI needs LDAPBase", path);
    if (c->harvest && c->harvest_store[0] == '\0')
        BAD("%s: Harvest yes needs HarvestStore", path);
    if (c->ldap_filter[0] != '\0' && strstr(c->ldap_filter, "%s") == NULL)
        BAD("%s: LDAPFilter must contain %%s (the address)", path);
    if (c->ldap_sasl_mech[0] != '\0' &&
        strcasecmp(c->ldap_sasl_mech, "EXTERNAL") != 0)
        BAD("%s: LDAPSASLMech: only EXTERNAL is supported", path);
    if (c->ldap_pool_size < 1 || c->cache_size < 1)
        BAD("%s: LDAPPoolSize and CacheSize must be at least 1", path);
    if (c->socket[0] == '\0')
        BAD("%s: Socket must not be empty", path);
    if (nbad > 0) {
        st = smm_err_set(err, SMM_EINVAL, "%s: %d error%s", path, nbad,
                         nbad == 1 ? "" : "s");
        goto out;
    }
    *out = c;
    c = NULL;
    st = SMM_OK;
out:
    free(line);
    if (fp != NULL)
        fclose(fp);
    smm_config_free(c);
    return st;
}

smm_status
smm_config_load(const char *path, struct smm_config **out, struct smm_err *err)
{
    return config_parse(path, out, NULL, err);
}

smm_status
smm_config_check(const char *path, struct smm_diag *diag, struct smm_err *err)
{
    struct smm_config *c;
    smm_status st;

    if ((st = config_parse(path, &c, diag, err)) == SMM_OK)
        smm_config_free(c);
    return st;
}

void
smm_config_free(struct smm_config *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < NKEYS; i++) {
        switch (keys[i].type) {
        case K_STR:
        case K_PATH:
        case K_FACILITY:
            free(*(char **)((char *)c + keys[i].off));
            break;
        case K_WORDS:
            smm_strlist_free((struct smm_strlist *)((char *)c + keys[i].off));
            break;
        case K_CIDRS:
            free(((struct smm_cidrlist *)((char *)c + keys[i].off))->v);
            break;
        default:
            break;
        }
    }
    free(c->lines);
    free(c->path);
    free(c);
}
