/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dev.c - `lurk-keyserver --dev DIR`: everything needed to try lurk on one
 * machine, made once and reused:
 *
 *   ca.crt ca.key              dev CA (P-256, 10 years, CN "lurk dev CA")
 *   server.crt server.key      the key server (CN localhost, DNS:localhost, IP:127.0.0.1)
 *   client.crt client.key      a client (CN "lurk-dev-client")
 *   keys/rsa2048.pem keys/p256.pem   the private keys the server holds
 *   rsa2048.crt p256.crt       certificates for localhost with those keys
 *   rsa2048.key p256.key       key reference files (no secret) naming them
 *   keyserver.cnf              what the server serves with
 *   openssl.cnf                the lurk provider config for clients
 *
 * Existing files are kept when they still fit together (a certificate is
 * remade when its key or its CA changed); the configs and key references
 * are rewritten only when their content changes, i.e. when the listen
 * address does.  Certificates are made with the X509 API in the server's
 * own library context.
 */
#include "srv_front.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lurk_keyref.h"

#define DEV_DAYS 3650

typedef enum { CERT_CA, CERT_SERVER, CERT_CLIENT } cert_kind;

/* What a run made, reused and rewrote, for the summary. */
static char made[512];
static char reused[512];
static char updated[512];

static void note(char *list, size_t len, const char *name)
{
    size_t n = strlen(list);

    snprintf(list + n, len - n, "%s%s", n > 0 ? " " : "", name);
}

static char *join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(len);

    if (p != NULL) {
        snprintf(p, len, "%s/%s", dir, name);
    }
    return p;
}

/* Writes through a temporary file and rename: never a half-written file. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    int fd = -1;
    int ok = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return 0;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return 0;
    }
    if (fchmod(fd, mode) == 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0) {
        ok = 1;
    }
    if (close(fd) != 0) {
        ok = 0;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
    }
    if (!ok) {
        unlink(tmp);
    }
    return ok;
}

/* 0 unchanged, 1 written, -1 error. */
static int write_if_changed(const char *path, const char *text, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "r");
    int same = 0;

    if (f != NULL) {
        char *old = malloc(len + 1);

        if (old != NULL) {
            size_t n = fread(old, 1, len + 1, f);

            same = n == len && memcmp(old, text, len) == 0;
            free(old);
        }
        fclose(f);
    }
    if (same) {
        return 0;
    }
    return write_file(path, text, len, mode) ? 1 : -1;
}

static int write_bio(const char *path, BIO *mem, mode_t mode)
{
    char *data = NULL;
    long len = BIO_get_mem_data(mem, &data);

    return len > 0 && write_file(path, data, (size_t)len, mode);
}

static EVP_PKEY *read_key(OSSL_LIB_CTX *libctx, const char *path)
{
    BIO *in = BIO_new_file(path, "r");
    EVP_PKEY *pkey = NULL;

    if (in != NULL) {
        pkey = PEM_read_bio_PrivateKey_ex(in, NULL, NULL, NULL, libctx, NULL);
        BIO_free(in);
    }
    ERR_clear_error();
    return pkey;
}

static X509 *read_cert(OSSL_LIB_CTX *libctx, const char *path)
{
    BIO *in = BIO_new_file(path, "r");
    X509 *x = X509_new_ex(libctx, NULL);

    if (in == NULL || x == NULL || PEM_read_bio_X509(in, &x, NULL, NULL) == NULL) {
        X509_free(x);
        x = NULL;
    }
    BIO_free(in);
    ERR_clear_error();
    return x;
}

static int write_key(const char *path, EVP_PKEY *pkey, OSSL_LIB_CTX *libctx)
{
    BIO *mem = BIO_new(BIO_s_secmem());
    int ok;

    ok = mem != NULL
         && PEM_write_bio_PrivateKey_ex(mem, pkey, NULL, NULL, 0, NULL, NULL, libctx, NULL)
         && write_bio(path, mem, 0600);
    BIO_free(mem); /* secmem: cleansed */
    return ok;
}

static int write_cert(const char *path, X509 *x)
{
    BIO *mem = BIO_new(BIO_s_mem());
    int ok;

    ok = mem != NULL && PEM_write_bio_X509(mem, x) && write_bio(path, mem, 0644);
    BIO_free(mem);
    return ok;
}

static EVP_PKEY *gen_key(OSSL_LIB_CTX *libctx, int rsa)
{
    return rsa ? EVP_PKEY_Q_keygen(libctx, NULL, "RSA", (size_t)2048)
               : EVP_PKEY_Q_keygen(libctx, NULL, "EC", "P-256");
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1);

    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for pkey, signed by ca/ca_key (ca NULL: self-signed). */
static X509 *make_cert(OSSL_LIB_CTX *libctx, const char *cn, EVP_PKEY *pkey, X509 *ca,
                       EVP_PKEY *ca_key, cert_kind kind)
{
    X509 *x = X509_new_ex(libctx, NULL);
    X509_NAME *name = X509_NAME_new();
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    ASN1_INTEGER *serial = NULL;
    unsigned char rnd[8];
    uint64_t sn = 0;
    X509V3_CTX v3;
    int ok = 0;
    int is_rsa = EVP_PKEY_is_a(pkey, "RSA");

    if (x == NULL || name == NULL || mctx == NULL || RAND_bytes_ex(libctx, rnd, 8, 0) != 1) {
        goto end;
    }
    for (size_t i = 0; i < sizeof(rnd); i++) {
        sn = sn << 8 | rnd[i];
    }
    serial = ASN1_INTEGER_new();
    if (serial == NULL || !ASN1_INTEGER_set_uint64(serial, (sn >> 1) | 1)) {
        goto end;
    }
    if (!X509_set_version(x, X509_VERSION_3) || !X509_set_serialNumber(x, serial)
        || !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                       (const unsigned char *)cn, -1, -1, 0)
        || !X509_set_subject_name(x, name)
        || !X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca) : name)
        || X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL
        || X509_time_adj_ex(X509_getm_notAfter(x), DEV_DAYS, 0, NULL) == NULL
        || !X509_set_pubkey(x, pkey)) {
        goto end;
    }
    X509V3_set_ctx(&v3, ca != NULL ? ca : x, x, NULL, NULL, 0);
    if (!add_ext(x, &v3, NID_subject_key_identifier, "hash")) {
        goto end;
    }
    switch (kind) {
    case CERT_CA:
        ok = add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE")
             && add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
        break;
    case CERT_SERVER:
        ok = add_ext(x, &v3, NID_basic_constraints, "CA:FALSE")
             && add_ext(x, &v3, NID_authority_key_identifier, "keyid")
             && add_ext(x, &v3, NID_key_usage,
                        is_rsa ? "critical,digitalSignature,keyEncipherment"
                               : "critical,digitalSignature")
             && add_ext(x, &v3, NID_ext_key_usage, "serverAuth")
             && add_ext(x, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        break;
    case CERT_CLIENT:
        ok = add_ext(x, &v3, NID_basic_constraints, "CA:FALSE")
             && add_ext(x, &v3, NID_authority_key_identifier, "keyid")
             && add_ext(x, &v3, NID_key_usage, "critical,digitalSignature")
             && add_ext(x, &v3, NID_ext_key_usage, "clientAuth");
        break;
    }
    if (!ok) {
        goto end;
    }
    ok = EVP_DigestSignInit_ex(mctx, NULL, "SHA256", libctx, NULL,
                               ca_key != NULL ? ca_key : pkey, NULL) == 1
         && X509_sign_ctx(x, mctx) > 0;

end:
    if (!ok) {
        X509_free(x);
        x = NULL;
    }
    ASN1_INTEGER_free(serial);
    X509_NAME_free(name);
    EVP_MD_CTX_free(mctx);
    return x;
}

/*
 * DIR/key_name (made if missing) and DIR/cert_name for it, signed by ca
 * (remade if missing, for another key, or not issued by ca).
 */
static lurk_err ensure_pair(OSSL_LIB_CTX *libctx, const char *dir, const char *key_name,
                            const char *cert_name, int rsa, const char *cn, cert_kind kind,
                            X509 *ca, EVP_PKEY *ca_key, char *why, size_t whylen)
{
    char *key_path = join(dir, key_name);
    char *cert_path = join(dir, cert_name);
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    lurk_err err = LURK_ERR_IO;

    if (key_path == NULL || cert_path == NULL) {
        err = LURK_ERR_NOMEM;
        lurk_why(why, whylen, "out of memory");
        goto end;
    }
    pkey = read_key(libctx, key_path);
    if (pkey == NULL) {
        pkey = gen_key(libctx, rsa);
        if (pkey == NULL || !write_key(key_path, pkey, libctx)) {
            lurk_why(why, whylen, "cannot write %s: %s", key_path, strerror(errno));
            goto end;
        }
        note(made, sizeof(made), key_name);
    } else {
        note(reused, sizeof(reused), key_name);
    }
    x = read_cert(libctx, cert_path);
    if (x != NULL && X509_check_private_key(x, pkey) == 1
        && X509_check_issued(ca, x) == X509_V_OK && X509_verify(x, X509_get0_pubkey(ca)) == 1) {
        note(reused, sizeof(reused), cert_name);
        err = LURK_OK;
        goto end;
    }
    ERR_clear_error();
    X509_free(x);
    x = make_cert(libctx, cn, pkey, ca, ca_key, kind);
    if (x == NULL || !write_cert(cert_path, x)) {
        lurk_why(why, whylen, "cannot write %s: %s", cert_path,
                 x == NULL ? "certificate creation failed" : strerror(errno));
        goto end;
    }
    note(made, sizeof(made), cert_name);
    err = LURK_OK;

end:
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(pkey);
    free(key_path);
    free(cert_path);
    return err;
}

static lurk_err ensure_ca(OSSL_LIB_CTX *libctx, const char *dir, X509 **ca, EVP_PKEY **ca_key,
                          char *why, size_t whylen)
{
    char *key_path = join(dir, "ca.key");
    char *cert_path = join(dir, "ca.crt");
    lurk_err err = LURK_ERR_IO;

    *ca = NULL;
    *ca_key = NULL;
    if (key_path == NULL || cert_path == NULL) {
        err = LURK_ERR_NOMEM;
        lurk_why(why, whylen, "out of memory");
        goto end;
    }
    *ca_key = read_key(libctx, key_path);
    *ca = *ca_key != NULL ? read_cert(libctx, cert_path) : NULL;
    if (*ca != NULL && X509_check_private_key(*ca, *ca_key) == 1) {
        note(reused, sizeof(reused), "ca.crt ca.key");
        err = LURK_OK;
        goto end;
    }
    X509_free(*ca);
    EVP_PKEY_free(*ca_key);
    *ca_key = gen_key(libctx, 0);
    *ca = *ca_key != NULL ? make_cert(libctx, "lurk dev CA", *ca_key, NULL, NULL, CERT_CA) : NULL;
    if (*ca == NULL || !write_key(key_path, *ca_key, libctx) || !write_cert(cert_path, *ca)) {
        lurk_why(why, whylen, "cannot make the dev CA in %s: %s", dir, strerror(errno));
        goto end;
    }
    note(made, sizeof(made), "ca.crt ca.key");
    err = LURK_OK;

end:
    ERR_clear_error();
    free(key_path);
    free(cert_path);
    return err;
}

static int ensure_dir(const char *path)
{
    struct stat st;

    if (mkdir(path, 0700) == 0) {
        return 1;
    }
    return errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static lurk_err write_text(const char *dir, const char *name, const char *text, mode_t mode,
                           char *why, size_t whylen)
{
    char *path = join(dir, name);
    int rc = path != NULL ? write_if_changed(path, text, strlen(text), mode) : -1;

    if (rc < 0) {
        lurk_why(why, whylen, "cannot write %s/%s: %s", dir, name, strerror(errno));
        free(path);
        return LURK_ERR_IO;
    }
    note(rc > 0 ? updated : reused, rc > 0 ? sizeof(updated) : sizeof(reused), name);
    free(path);
    return LURK_OK;
}

/* A P-256 private key without a certificate (the demo signing key). */
static lurk_err ensure_key(OSSL_LIB_CTX *libctx, const char *dir, const char *subdir,
                           const char *key_name, char *why, size_t whylen)
{
    char *sub = join(dir, subdir);
    char *path = join(dir, key_name);
    EVP_PKEY *pkey = NULL;
    lurk_err err = LURK_ERR_IO;

    if (sub == NULL || path == NULL || !ensure_dir(sub)) {
        lurk_why(why, whylen, "cannot create %s/%s: %s", dir, subdir, strerror(errno));
        goto end;
    }
    if (access(path, F_OK) == 0) {
        note(reused, sizeof(reused), key_name);
        err = LURK_OK;
        goto end;
    }
    pkey = gen_key(libctx, 0);
    if (pkey == NULL || !write_key(path, pkey, libctx)) {
        lurk_why(why, whylen, "cannot write %s", path);
        goto end;
    }
    note(made, sizeof(made), key_name);
    err = LURK_OK;

end:
    EVP_PKEY_free(pkey);
    free(path);
    free(sub);
    return err;
}

/* One key server per dev directory: a second --dev on it would rewrite the
 * running server's openssl.cnf and key references under it.  The lock (an
 * flock on DIR/.lock holding the pid) lives as long as this process. */
static int lock_dir(const char *abs, char *why, size_t whylen)
{
    char *path = join(abs, ".lock");
    char pid[32] = "";
    int fd = path != NULL ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
    ssize_t n;

    if (fd < 0) {
        lurk_why(why, whylen, "%s/.lock: %s", abs, strerror(errno));
        free(path);
        return 0;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        n = read(fd, pid, sizeof(pid) - 1);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        lurk_why(why, whylen, "%s is in use by a running lurk-keyserver --dev (pid %s): stop it, "
                 "or give another directory", abs, pid[0] != '\0' ? pid : "?");
        close(fd);
        free(path);
        return 0;
    }
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || write(fd, pid, strlen(pid)) < 0) {
        /* the lock holds all the same */
    }
    free(path); /* fd stays open: the lock is released when the process exits */
    return 1;
}

lurk_err lurk_srv_dev_prepare(const char *dir, const char *listen, OSSL_LIB_CTX *libctx,
                              char **conf_path, char *why, size_t whylen)
{
    char *abs = NULL;
    char *keys = NULL;
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    char host[256];
    int port;
    char text[2048];
    lurk_err err = LURK_ERR_IO;

    *conf_path = NULL;
    made[0] = reused[0] = updated[0] = '\0';
    if (lurk_srv_split_addr(listen, host, sizeof(host), &port) != LURK_OK) {
        lurk_why(why, whylen, "--listen %s: expected ADDR:PORT", listen);
        err = LURK_ERR_CONFIG;
        goto end;
    }
    if (!ensure_dir(dir)) {
        lurk_why(why, whylen, "cannot create %s: %s", dir, strerror(errno));
        goto end;
    }
    abs = realpath(dir, NULL);
    if (abs != NULL && !lock_dir(abs, why, whylen)) {
        err = LURK_ERR_CONFIG;
        goto end;
    }
    keys = abs != NULL ? join(abs, "keys") : NULL;
    if (keys == NULL || !ensure_dir(keys)) {
        lurk_why(why, whylen, "cannot create %s/keys: %s", dir, strerror(errno));
        goto end;
    }
    err = ensure_ca(libctx, abs, &ca, &ca_key, why, whylen);
    if (err == LURK_OK) {
        err = ensure_pair(libctx, abs, "server.key", "server.crt", 0, "localhost", CERT_SERVER,
                          ca, ca_key, why, whylen);
    }
    if (err == LURK_OK) {
        err = ensure_pair(libctx, abs, "client.key", "client.crt", 0, "lurk-dev-client",
                          CERT_CLIENT, ca, ca_key, why, whylen);
    }
    if (err == LURK_OK) {
        err = ensure_pair(libctx, abs, "keys/rsa2048.pem", "rsa2048.crt", 1, "localhost",
                          CERT_SERVER, ca, ca_key, why, whylen);
    }
    if (err == LURK_OK) {
        err = ensure_pair(libctx, abs, "keys/p256.pem", "p256.crt", 0, "localhost",
                          CERT_SERVER, ca, ca_key, why, whylen);
    }
    if (err == LURK_OK) {
        err = ensure_key(libctx, abs, "sign-keys", "sign-keys/demo-sign.pem", why, whylen);
    }
    if (err != LURK_OK) {
        goto end;
    }
    snprintf(text, sizeof(text),
             "# Written by lurk-keyserver --dev; rewritten when the listen address changes.\n"
             "[keyserver]\n"
             "listen = %s\n"
             "tls_cert = server.crt\n"
             "tls_key = server.key\n"
             "client_ca = ca.crt\n"
             "audit_log = audit.log\n"
             "# TLS server keys: policy tls-server\n"
             "key_dir = keys\n"
             "keys = keys_sect\n"
             "\n"
             "[keys_sect]\n"
             "demo-sign = key_demo_sign\n"
             "\n"
             "# A generic signing key, for trying `lurk sign` and `openssl req`\n"
             "[key_demo_sign]\n"
             "file = sign-keys/demo-sign.pem\n"
             "policy = sign\n",
             listen);
    err = write_text(abs, "keyserver.cnf", text, 0644, why, whylen);
    if (err != LURK_OK) {
        goto end;
    }
    *conf_path = join(abs, "keyserver.cnf");
    if (*conf_path == NULL) {
        err = LURK_ERR_NOMEM;
        lurk_why(why, whylen, "out of memory");
    }

end:
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    free(keys);
    free(abs);
    return err;
}

/* The provider built next to this binary when it runs from the build tree. */
static const char *provider_module(void)
{
    char exe[PATH_MAX];
    char *build = realpath(LURK_BUILD_SERVER_DIR, NULL);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *module = LURK_INSTALL_PROVIDER;

    if (n > 0 && build != NULL) {
        char *real;

        exe[n] = '\0';
        real = realpath(dirname(exe), NULL);
        if (real != NULL && strcmp(real, build) == 0) {
            module = LURK_BUILD_PROVIDER;
        }
        free(real);
    }
    free(build);
    return module;
}

/* The lurk tool to name in the printed next steps: the one built next to
 * this binary when it runs from the build tree (not on PATH), else the
 * installed one. */
static void tool_path(char *out, size_t len)
{
    if (strcmp(provider_module(), LURK_BUILD_PROVIDER) == 0) {
        char *build = realpath(LURK_BUILD_SERVER_DIR "/../client/lurk", NULL);

        if (build != NULL) {
            snprintf(out, len, "%s", build);
            free(build);
            return;
        }
    }
    snprintf(out, len, "lurk");
}

static lurk_err write_keyref(OSSL_LIB_CTX *libctx, const char *dir, const char *key_file,
                             const char *name, const char *policy, const char *url,
                             char *key_id, size_t key_id_len, char *why, size_t whylen)
{
    char ref_file[64];
    char *key_path = NULL;
    EVP_PKEY *pkey = NULL;
    unsigned char *spki = NULL;
    int spki_len;
    lurk_keyref ref;
    const char *servers[1] = { url };
    char *pem = NULL;
    size_t pem_len = 0;
    lurk_err err;

    lurk_keyref_init(&ref);
    snprintf(ref_file, sizeof(ref_file), "%s.key", name);
    key_path = join(dir, key_file);
    pkey = key_path != NULL ? read_key(libctx, key_path) : NULL;
    spki_len = pkey != NULL ? i2d_PUBKEY(pkey, &spki) : -1;
    if (spki_len <= 0) {
        lurk_why(why, whylen, "cannot read %s/%s", dir, key_file);
        err = LURK_ERR_IO;
        goto end;
    }
    err = lurk_keyref_from_spki(spki, (size_t)spki_len, policy, servers, 1, &ref);
    if (err == LURK_OK) {
        err = lurk_keyref_encode_pem(&ref, &pem, &pem_len);
    }
    if (err != LURK_OK) {
        lurk_why(why, whylen, "cannot make the key reference %s: %s", ref_file,
                 lurk_err_str(err));
        goto end;
    }
    err = write_text(dir, ref_file, pem, 0644, why, whylen);
    snprintf(key_id, key_id_len, "%s", ref.key_id);

end:
    ERR_clear_error();
    lurk_keyref_clear(&ref);
    free(pem);
    OPENSSL_free(spki);
    EVP_PKEY_free(pkey);
    free(key_path);
    return err;
}

lurk_err lurk_srv_dev_publish(const char *dir, const char *addr, OSSL_LIB_CTX *libctx,
                              char *why, size_t whylen)
{
    char *abs = realpath(dir, NULL);
    char host[256];
    char url[320];
    char text[4096];
    char rsa_id[LURK_KEYID_TEXT_MAX] = "", p256_id[LURK_KEYID_TEXT_MAX] = "";
    char sign_id[LURK_KEYID_TEXT_MAX] = "";
    char tool[PATH_MAX];
    int port;
    lurk_err err = LURK_ERR_IO;

    if (abs == NULL) {
        lurk_why(why, whylen, "%s: %s", dir, strerror(errno));
        goto end;
    }
    if (lurk_srv_split_addr(addr, host, sizeof(host), &port) != LURK_OK) {
        lurk_why(why, whylen, "no TCP listener to publish");
        err = LURK_ERR_CONFIG;
        goto end;
    }
    /* a wildcard listener is reached through loopback, which the cert names */
    if (strcmp(host, "0.0.0.0") == 0) {
        snprintf(host, sizeof(host), "127.0.0.1");
    } else if (strcmp(host, "::") == 0) {
        snprintf(host, sizeof(host), "::1");
    }
    snprintf(url, sizeof(url), strchr(host, ':') != NULL ? "https://[%s]:%d" : "https://%s:%d",
             host, port);
    err = write_keyref(libctx, abs, "keys/rsa2048.pem", "rsa2048", "tls-server", url, rsa_id,
                       sizeof(rsa_id), why, whylen);
    if (err == LURK_OK) {
        err = write_keyref(libctx, abs, "keys/p256.pem", "p256", "tls-server", url, p256_id,
                           sizeof(p256_id), why, whylen);
    }
    if (err == LURK_OK) {
        err = write_keyref(libctx, abs, "sign-keys/demo-sign.pem", "demo-sign", "sign", url,
                           sign_id, sizeof(sign_id), why, whylen);
    }
    if (err != LURK_OK) {
        goto end;
    }
    snprintf(text, sizeof(text),
             "# Written by lurk-keyserver --dev; rewritten when the listen address changes.\n"
             "openssl_conf = openssl_init\n"
             "\n"
             "[openssl_init]\n"
             "providers = provider_sect\n"
             "alg_section = evp_properties\n"
             "\n"
             "[provider_sect]\n"
             "default = default_sect\n"
             "lurk = lurk_sect\n"
             "\n"
             "[default_sect]\n"
             "activate = 1\n"
             "\n"
             "[lurk_sect]\n"
             "module = %s\n"
             "activate = 1\n"
             "lurk-servers = %s\n"
             "lurk-ca = %s/ca.crt\n"
             "lurk-cert = %s/client.crt\n"
             "lurk-key = %s/client.key\n"
             "lurk-connect-timeout = 1000\n"
             "lurk-timeout = 3000\n"
             "\n"
             "[evp_properties]\n"
             "default_properties = ?provider=default\n",
             provider_module(), url, abs, abs, abs);
    err = write_text(abs, "openssl.cnf", text, 0644, why, whylen);
    if (err != LURK_OK) {
        goto end;
    }

    tool_path(tool, sizeof(tool));
    printf(LURK_SRV_PROG " --dev %s\n", abs);
    if (made[0] != '\0') {
        printf("  made:    %s\n", made);
    }
    if (updated[0] != '\0') {
        printf("  written: %s\n", updated);
    }
    if (reused[0] != '\0') {
        printf("  reused:  %s\n", reused);
    }
    printf("\n"
           "Serving on %s (mutual TLS, dev CA):\n"
           "  rsa2048    %s  tls-server  (rsa2048.crt, rsa2048.key)\n"
           "  p256       %s  tls-server  (p256.crt, p256.key)\n"
           "  demo-sign  %s  sign        (demo-sign.key)\n"
           "In another shell:\n"
           "  export OPENSSL_CONF=%s/openssl.cnf\n"
           "  %s ping\n"
           "  echo hello > msg; %s sign %s --alg ecdsa --in msg -o msg.sig\n"
           "  openssl s_server -accept 127.0.0.1:4433 -www \\\n"
           "      -cert %s/p256.crt -key %s/p256.key\n"
           "  curl --cacert %s/ca.crt https://localhost:4433/\n"
           "(the .key files are key references: the private keys never leave this\n"
           "server; tls-server keys sign only TLS handshakes.)\n\n",
           url, rsa_id, p256_id, sign_id, abs, tool, tool, sign_id, abs, abs, abs);
    fflush(stdout);

end:
    free(abs);
    return err;
}
