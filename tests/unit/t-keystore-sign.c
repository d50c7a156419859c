/*
 * t-keystore-sign: key store loading rules and the outbound signing
 * pipeline, checked with OpenSSL's own CMS verifier.  The PKI (a root and
 * user certificates) is made here, in memory, at test time.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "smm_cms.h"
#include "smm_pipeline.h"
#include "smm_state.h"
#include "tap.h"
#include "testpki.h"

static char dir[] = "/tmp/t-keystore-sign.XXXXXX";
static EVP_PKEY *ca_key;
static X509 *ca_cert;

static void
write_pem(const char *name, X509 *x, EVP_PKEY *k, mode_t mode)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (k != NULL)
        PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL);
    if (x != NULL)
        PEM_write_X509(fp, x);
    fclose(fp);
    chmod(path, mode);
}

static void
write_file(const char *name, const char *text)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
}

static struct smm_state *
load(struct smm_diag *diag)
{
    struct smm_state *s = NULL;
    struct smm_err err;
    char path[512];

    snprintf(path, sizeof(path), "%s/test.conf", dir);
    if (smm_state_load(path, &s, diag, &err) != SMM_OK)
        printf("# load: %s\n", err.msg);
    return s;
}

static int
diag_has(const struct smm_diag *d, const char *needle)
{
    size_t i;

    for (i = 0; i < d->n; i++)
        if (strstr(d->msgs[i], needle) != NULL)
            return 1;
    return 0;
}

/* Run the outbound pipeline; return the resulting message text. */
static char *run_from(struct smm_state *s, const char *env_from,
                      const char *msg, time_t sigtime, struct smm_result *r);

static char *
run(struct smm_state *s, const char *msg, time_t sigtime, struct smm_result *r)
{
    return run_from(s, "<alice@example.org>", msg, sigtime, r);
}

static char *
run_from(struct smm_state *s, const char *env_from, const char *msg,
         time_t sigtime, struct smm_result *r)
{
    struct smm_message *m;
    struct smm_err err;
    struct smm_run_opts o = {0};
    FILE *in = fmemopen((void *)msg, strlen(msg), "r"), *out;
    char *text = NULL;
    size_t len = 0;

    o.signing_time = sigtime;
    smm_message_new(1 << 20, 0, "/tmp", &m, &err);
    smm_message_set_from(m, env_from);
    smm_message_add_rcpt(m, "<bob@example.net>");
    smm_message_read(in, m, &err);
    fclose(in);
    if (smm_pipeline_run(s, m, SMM_DIR_OUTBOUND, &o, r, &err) != SMM_OK) {
        printf("# pipeline: %s\n", err.msg);
        smm_message_free(m);
        return NULL;
    }
    out = open_memstream(&text, &len);
    smm_result_write(r, m, out, &err);
    fclose(out);
    smm_message_free(m);
    return text;
}

/* Verify an S/MIME message with OpenSSL against ca_cert. */
static int
verify(const char *text, unsigned char **der, int *derlen)
{
    BIO *in = BIO_new_mem_buf(text, -1), *cont = NULL;
    CMS_ContentInfo *cms = SMIME_read_CMS(in, &cont);
    X509_STORE *st = X509_STORE_new();
    int ok_ = 0;

    X509_STORE_add_cert(st, ca_cert);
    if (cms != NULL) {
        ok_ = CMS_verify(cms, NULL, st, cont, NULL, CMS_BINARY) == 1;
        if (der != NULL) {
            *der = NULL;
            *derlen = i2d_CMS_ContentInfo(cms, der);
        }
    }
    ERR_clear_error(); /* the tamper case fails on purpose */
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(cont);
    X509_STORE_free(st);
    return ok_;
}

static const char plain[] = "From: Alice <alice@example.org>\n"
                            "To: Bob <bob@example.net>\n"
                            "Subject: hello\n"
                            "X-SMIME-Milter: signed=forged@example.org\n"
                            "MIME-Version: 1.0\n"
                            "Content-Type: text/plain; charset=utf-8\n"
                            "Content-Transfer-Encoding: 8bit\n"
                            "\n"
                            "Gr\xc3\xbc\xc3\x9f"
                            "e, Bob.\n"
                            ".leading dot\n";

int
main(void)
{
    EVP_PKEY *ak, *bk;
    X509 *ac, *old;
    struct smm_state *s;
    struct smm_diag diag = {0};
    struct smm_err err;
    struct smm_result r;
    char *out, *out2, *p;
    unsigned char *der1 = NULL, *der2 = NULL;
    int l1 = 0, l2 = 0;
    const struct smm_key *k;
    char path[512];

    g_mime_init();
    smm_crypto_init(&err);
    if (mkdtemp(dir) == NULL)
        return 1;
    ca_key = EVP_RSA_gen(2048);
    ca_cert = make_cert(ca_key, "Test Root", NULL, NULL, NULL, NULL, -10, 3650);
    ak = EVP_RSA_gen(2048);
    ac = make_cert(ak, "alice", ca_cert, ca_key, "email:alice@Example.ORG",
                   "digitalSignature,keyEncipherment", -1, 365);
    old = make_cert(ak, "alice old", ca_cert, ca_key, "email:alice@example.org",
                    "digitalSignature,keyEncipherment", -400, -30);
    bk = EVP_RSA_gen(2048);

    mkdir(strcat(strcpy(path, dir), "/keys"), 0700);
    mkdir(strcat(strcpy(path, dir), "/keys/sub"), 0700);
    write_pem("trust.pem", ca_cert, NULL, 0644);
    /* key and its certificates in different files and folders */
    write_pem("keys/sub/whatever.key", NULL, ak, 0600);
    write_pem("keys/alice-cert.crt", ac, NULL, 0644);
    write_pem("keys/alice-2025.crt", old, NULL, 0644);
    /* a key readable by others must be refused */
    write_pem("keys/bob.pem", NULL, bk, 0644);
    /* a key with no certificate anywhere */
    write_pem("keys/orphan.pem", NULL, bk, 0600);
    write_file("test.conf", "KeyStore keys\nTrustAnchors trust.pem\n");

    s = load(&diag);
    if (!ok(s != NULL, "state loads"))
        return tap_done();
    is_int(smm_keystore_count(s->ks), 2,
           "key paired with both of its certificates");
    ok(diag_has(&diag, "bob.pem: refused: readable by group or others"),
       "group/other-readable key refused with a clear message");
    ok(diag_has(&diag, "orphan.pem: private key without a matching "
                       "certificate"),
       "orphan key reported");
    k = smm_keystore_signer(s->ks, "alice@EXAMPLE.org", time(NULL), 0);
    ok(k != NULL && k->trusted, "signer found, domain case-insensitive, "
                                "trusted");
    ok(k != NULL && X509_cmp(k->cert, ac) == 0,
       "the valid certificate is chosen, not the expired one");
    k = smm_keystore_signer(s->ks, "ALICE@example.org", time(NULL), 0);
    ok(k != NULL && X509_cmp(k->cert, ac) == 0,
       "local part compared without regard to case too");
    ok(smm_keystore_signer(s->ks, "carol@example.org", time(NULL), 1) == NULL,
       "no domain key configured: nothing for carol");

    /* sign */
    out = run(s, plain, 1700000000, &r);
    ok(out != NULL && r.action == SMM_ACT_DELIVER, "signed message");
    is_str(r.verdict, "signed", "verdict");
    ok(verify(out, &der1, &l1), "OpenSSL verifies the signature");
    has_str(out, "micalg=sha-256", "micalg");
    has_str(out, "protocol=\"application/pkcs7-signature\"", "protocol");
    has_str(out, "X-SMIME-Milter: signed=alice@example.org", "stamp");
    ok(strstr(out, "forged@example.org") == NULL, "forged stamp removed");
    ok(strstr(out, "\r\nContent-Transfer-Encoding: quoted-printable\r\n") ||
           strstr(out, "\r\nContent-Transfer-Encoding: base64\r\n\r\nR3"),
       "8bit body re-encoded inside");
    ok((p = strstr(out, "\r\n\r\n")) != NULL &&
           strstr(p, "Content-Type: text/plain; charset=utf-8") != NULL &&
           strncmp(out, "From:", 5) == 0,
       "Content-Type moved inside");
    smm_result_free(&r);
    out2 = run(s, plain, 1700000000, &r);
    ok(verify(out2, &der2, &l2) && l1 == l2 && memcmp(der1, der2, l1) == 0,
       "fixed signing time: signature bytes are stable");
    smm_result_free(&r);
    free(out2);

    /* tampering after signing must be detected */
    if ((p = strstr(out, "charset=utf-8")) != NULL)
        p[12] = '7';
    ok(p != NULL && !verify(out, NULL, NULL), "tampered copy fails");
    free(out);

    /* already signed: untouched */
    out = run(s,
              "From: alice@example.org\nContent-Type: multipart/signed; "
              "protocol=\"application/pkcs7-signature\"; boundary=x\n\n"
              "--x\n\nhi\n--x--\n",
              0, &r);
    is_str(r.verdict, "skipped", "already-signed mail skipped");
    ok(r.body == NULL, "body untouched");
    smm_result_free(&r);
    free(out);
    out = run(s,
              "From: alice@example.org\nContent-Type: multipart/encrypted; "
              "protocol=\"application/pgp-encrypted\"; boundary=x\n\n"
              "--x\n\nhi\n--x--\n",
              0, &r);
    is_str(r.verdict, "skipped", "PGP/MIME skipped");
    smm_result_free(&r);
    free(out);

    /* sender without key */
    out = run_from(s, "nobody@example.org",
                   "From: nobody@example.org\nSubject: x\n\nhi\n", 0, &r);
    is_str(r.verdict, "unsigned", "no key: unsigned");
    has_str(out, "X-SMIME-Milter: signed=no (no-signing-key); encrypted=no",
            "no-key stamp");
    smm_result_free(&r);
    free(out);

    /* not a signing oracle: From must be the envelope sender */
    out = run_from(s, "mallory@example.net", plain, 0, &r);
    is_str(r.verdict, "unsigned", "From != envelope sender: unsigned");
    has_str(out, "X-SMIME-Milter: signed=no (from-mismatch); encrypted=no",
            "from-mismatch stamp");
    ok(r.body == NULL, "from-mismatch: body untouched");
    smm_result_free(&r);
    free(out);
    out = run_from(s, "ALICE@example.ORG", plain, 0, &r);
    is_str(r.verdict, "signed", "envelope sender matched case-insensitively");
    smm_result_free(&r);
    free(out);
    smm_state_unref(s);
    write_file("test.conf",
               "KeyStore keys\nTrustAnchors trust.pem\nRequireFromMatch no\n");
    s = load(NULL);
    out = run_from(s, "list-bounces@lists.example.org", plain, 0, &r);
    is_str(r.verdict, "signed", "RequireFromMatch no: signed");
    smm_result_free(&r);
    free(out);

    smm_state_unref(s);
    smm_diag_free(&diag);
    OPENSSL_free(der1);
    OPENSSL_free(der2);
    X509_free(ac);
    X509_free(old);
    EVP_PKEY_free(ak);
    EVP_PKEY_free(bk);
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    smm_crypto_done();
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    if (system(path) != 0)
        return 1;
    return tap_done();
}
