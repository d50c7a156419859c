/*
 * smm_config -- parse and validate smime-milter.conf.
 *
 * Format (the OpenDKIM convention): one "Key value" per line, keys are
 * case-insensitive, '#' starts a comment at the start of a line or after
 * white space, blank lines are ignored.  Every key has a default; an
 * unknown key, a duplicate key or a bad value is an error that names the
 * file and line.  Relative paths are taken relative to the directory of
 * the configuration file.
 *
 * smm_config_load() returns a new config owned by the caller
 * (smm_config_free()).  A loaded config is never modified, so it may be
 * shared read-only between threads.  smm_config_line() tells on which line
 * of the file a key was set (0: not set, the default applies), so that a
 * problem with a file a key names can be reported where the key is.
 */
#ifndef SMM_CONFIG_H
#define SMM_CONFIG_H

#include <stddef.h>

#include "smm_cidr.h"
#include "smm_err.h"

#define SMM_DEFAULT_CONFIG "/etc/smime-milter/smime-milter.conf"

struct smm_strlist {
    char **v;
    size_t n;
};

struct smm_cidrlist {
    struct smm_cidr *v;
    size_t n;
};

struct smm_config {
    char *path;                          /* the file this came from */
    int *lines;                          /* each key's line, 0 if unset */
    char *socket;                        /* Socket */
    char *user_id;                       /* UserID ("" = keep) */
    int allow_core_dumps;                /* AllowCoreDumps */
    char *pid_file;                      /* PidFile ("" = none) */
    struct smm_cidrlist internal_hosts;  /* InternalHosts */
    struct smm_strlist outbound_daemons; /* OutboundDaemons */
    char *keystore;                      /* KeyStore */
    char *keystore_passfile; /* KeyStorePassphraseFile ("" = none) */
    char *trust_anchors;     /* TrustAnchors ("" = none) */
    int sign_domain_keys;    /* SignDomainKeys */
    int require_from_match;  /* RequireFromMatch */
    int stamp_header;        /* StampHeader */
    size_t max_memory_body;  /* MaxMemoryBody */
    char *temp_dir;          /* TempDirectory */
    size_t max_message_size; /* MaxMessageSize (0 = no limit) */
    int max_mime_depth;      /* MaxMimeDepth */
    int max_mime_parts;      /* MaxMimeParts */
    int log_level;           /* LogLevel (syslog numbers) */
    char *stats_file;        /* StatsFile ("" = none) */
    int stats_interval;      /* StatsInterval (seconds, 0 = on demand) */
    char *syslog_facility;   /* SyslogFacility */
    /* recipient certificates */
    char *cert_store;              /* CertificateStore ("" = none) */
    char *harvest_store;           /* HarvestStore ("" = none) */
    int min_key_bits;              /* MinKeyBits */
    int require_trusted_rcpt;      /* RequireTrustedRecipientCerts */
    char *crls;                    /* CRLs ("" = none) */
    int cache_ttl;                 /* CacheTTL (seconds) */
    int negative_cache_ttl;        /* NegativeCacheTTL (seconds) */
    int cache_size;                /* CacheSize (entries) */
    struct smm_strlist ldap_uri;   /* LDAPURI */
    int ldap_starttls;             /* LDAPStartTLS */
    char *ldap_cacert;             /* LDAPCACertFile */
    char *ldap_bind_dn;            /* LDAPBindDN */
    char *ldap_bind_passfile;      /* LDAPBindPasswordFile */
    char *ldap_sasl_mech;          /* LDAPSASLMech ("" or EXTERNAL) */
    char *ldap_base;               /* LDAPBase */
    char *ldap_filter;             /* LDAPFilter */
    struct smm_strlist ldap_attrs; /* LDAPAttributes */
    int ldap_timeout;              /* LDAPTimeout (seconds) */
    int ldap_retry_after_timeout;  /* LDAPRetryAfterTimeout (seconds) */
    int ldap_size_limit;           /* LDAPSizeLimit */
    int ldap_pool_size;            /* LDAPPoolSize */
    /* outbound encryption */
    int encryption_policy;        /* EncryptionPolicy (SMM_POLICY_*) */
    char *policy_map;             /* PolicyMap ("" = none) */
    int missing_cert_action;      /* MissingCertAction (SMM_MISSING_*) */
    int directory_failure_action; /* DirectoryFailureAction (SMM_DIRFAIL_*) */
    int encrypt_to_self;          /* EncryptToSelf */
    char *archive_certs;          /* ArchiveCertificates ("" = none) */
    int cipher;                   /* Cipher (SMM_CIPHER_*) */
    int rsa_oaep;                 /* RSAPadding oaep */
    char *subject_trigger;        /* SubjectTrigger ("" = none) */
    int split_recipients;         /* SplitRecipients */
    int cipher_from_caps;         /* CipherFromCapabilities */
    /* inbound */
    char *authserv_id;                /* AuthservID ("" = the host name) */
    int decrypt;                      /* Decrypt */
    int decrypt_rcpt_only;            /* DecryptForRecipientsOnly */
    char *recipient_delimiter;        /* RecipientDelimiter */
    struct smm_strlist local_domains; /* LocalDomains */
    int verify;                       /* Verify */
    int allow_sha1;                   /* AllowSHA1Signatures */
    int unwrap_opaque;                /* UnwrapOpaqueSigned */
    int strip_signatures;             /* StripSignatures */
    int harvest;                      /* Harvest */
};

enum { SMM_POLICY_NEVER, SMM_POLICY_OPPORTUNISTIC, SMM_POLICY_MANDATORY };
enum { SMM_MISSING_REJECT, SMM_MISSING_TEMPFAIL, SMM_MISSING_HOLD };
enum { SMM_DIRFAIL_TEMPFAIL, SMM_DIRFAIL_CONTINUE };
enum {
    SMM_CIPHER_AES128_CBC,
    SMM_CIPHER_AES192_CBC,
    SMM_CIPHER_AES256_CBC,
    SMM_CIPHER_AES128_GCM,
    SMM_CIPHER_AES256_GCM
};

const char *smm_cipher_name(int);
int smm_policy_parse(const char *);

smm_status smm_config_load(const char *, struct smm_config **,
                           struct smm_err *);
struct smm_diag;
/* Parse the whole file and note every problem in the diag (SMM_LOG_ERR),
 * instead of stopping at the first; fails ("N errors") when any was
 * found.  For "smime-milter -n". */
smm_status smm_config_check(const char *, struct smm_diag *, struct smm_err *);
smm_status smm_config_defaults(struct smm_config **, struct smm_err *);
void smm_config_free(struct smm_config *);
void smm_strlist_free(struct smm_strlist *);
int smm_config_key_count(void);
const char *smm_config_key_name(int);
int smm_config_line(const struct smm_config *, const char *);

#endif
