/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore.c - the key server's private keys, their policy and allowed
 * clients.
 *
 * Keys are loaded through OSSL_STORE with the server's own library context,
 * so the private components are decoded by the default provider into the
 * secure heap (the front calls CRYPTO_secure_malloc_init before any load).
 * A store is built by one thread, then only read: it is shared by the event
 * loops and released by reference count, so a reload builds a new store and
 * swaps it in while requests in flight finish on the old one.
 *
 * The one exception to "only read" is each key's cache of ready operation
 * state (lurk_srv_key_cache): slots are filled once, under the key's lock,
 * and published with release/acquire so readers need no lock.  The cache is
 * freed with its key, so the old store's keys and everything made from them
 * go together when the last request using that store finishes.
 *
 * Keys are kept sorted by key id, and a second index by key id text: lookups
 * (one per request) are a binary search, by the request's text when it is
 * the canonical spelling.  The state (seed 001 lurk_state) is a digest of the
 * sorted (id, policy, clients) list, recomputed on every add.
 */
#include "lurk_srv.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <openssl/x509.h>

#define LURK_SRV_RSA_MIN_BITS 2048
#define LURK_SRV_RSA_MAX_BITS 16384
#define LURK_SRV_PASSPHRASE_MAX 1024

struct lurk_srv_key_st {
    char *name;
    lurk_keyid id;
    char id_text[LURK_KEYID_TEXT_MAX];
    lurk_key_type type;
    int bits;
    lurk_policy policy;
    uint32_t legacy_digests;
    EVP_PKEY *pkey;
    unsigned char *reject_key; /* RSA: LURK_SRV_REJECT_KEY_LEN bytes, secure heap */
    unsigned char *spki;
    size_t spki_len;
    char **clients; /* sorted, for bsearch */
    size_t n_clients;
    /* what the handler made from the key on first use (see the top) */
    pthread_mutex_t cache_lock;
    int cache_lock_ok;
    struct {
        void *obj; /* written once under cache_lock, read with acquire */
        lurk_srv_key_cache_free_fn free_fn;
        int failed; /* make failed: never retried; read under cache_lock */
    } cache[LURK_SRV_KEY_CACHE_SLOTS];
};

struct lurk_srv_keystore_st {
    int refs; /* atomic */
    OSSL_LIB_CTX *libctx;
    char *propq;
    LURK_SRV_KEY **keys; /* sorted by id */
    LURK_SRV_KEY **by_text; /* the same keys sorted by id_text */
    size_t n_keys;
    size_t cap_keys;
    unsigned char state[16];
};

/* ---- policy names ------------------------------------------------------ */

static const char *const lurk_policy_names[LURK_POLICY__COUNT] = {
    [LURK_POLICY_TLS_SERVER] = "tls-server",
    [LURK_POLICY_SIGN] = "sign",
    [LURK_POLICY_DECRYPT] = "decrypt",
    [LURK_POLICY_AGREE] = "agree",
};

const char *lurk_policy_name(lurk_policy p)
{
    if ((int)p < 0 || p >= LURK_POLICY__COUNT) {
        return "unknown";
    }
    return lurk_policy_names[p];
}

lurk_err lurk_policy_from_name(const char *name, lurk_policy *out)
{
    if (name == NULL || out == NULL) {
        return LURK_ERR_CONFIG;
    }
    for (int i = 0; i < LURK_POLICY__COUNT; i++) {
        if (strcmp(name, lurk_policy_names[i]) == 0) {
            *out = (lurk_policy)i;
            return LURK_OK;
        }
    }
    return LURK_ERR_CONFIG;
}

/* ---- helpers ----------------------------------------------------------- */

/* The deepest OpenSSL reason on the error queue (which is then cleared). */
static const char *lurk_srv_ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r != NULL ? r : "no usable private key found";
}

static int lurk_srv_keyid_cmp(const lurk_keyid *a, const lurk_keyid *b)
{
    if (a->len != b->len) {
        return a->len < b->len ? -1 : 1;
    }
    return memcmp(a->bin, b->bin, a->len);
}

static int lurk_srv_str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void lurk_srv_key_free(LURK_SRV_KEY *k)
{
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < k->n_clients; i++) {
        free(k->clients[i]);
    }
    free(k->clients);
    /* the cached state holds references to pkey: released first */
    for (size_t i = 0; i < LURK_SRV_KEY_CACHE_SLOTS; i++) {
        if (k->cache[i].obj != NULL) {
            k->cache[i].free_fn(k->cache[i].obj);
        }
    }
    if (k->cache_lock_ok) {
        pthread_mutex_destroy(&k->cache_lock);
    }
    EVP_PKEY_free(k->pkey);
    OPENSSL_secure_clear_free(k->reject_key, LURK_SRV_REJECT_KEY_LEN);
    OPENSSL_free(k->spki);
    free(k->name);
    free(k);
}

/* ---- store lifecycle --------------------------------------------------- */

static void lurk_srv_compute_state(LURK_SRV_KEYSTORE *ks);

lurk_err lurk_srv_keystore_new(OSSL_LIB_CTX *libctx, const char *propq,
                               LURK_SRV_KEYSTORE **out)
{
    LURK_SRV_KEYSTORE *ks = NULL;
    lurk_err err = LURK_ERR_NOMEM;

    if (out == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    *out = NULL;
    ks = calloc(1, sizeof(*ks));
    if (ks == NULL) {
        goto end;
    }
    ks->refs = 1;
    ks->libctx = libctx;
    if (propq != NULL) {
        ks->propq = strdup(propq);
        if (ks->propq == NULL) {
            goto end;
        }
    }
    /* The state of an empty store: the digest of an empty list. */
    lurk_srv_compute_state(ks);
    *out = ks;
    ks = NULL;
    err = LURK_OK;
end:
    lurk_srv_keystore_free(ks);
    return err;
}

int lurk_srv_keystore_up_ref(LURK_SRV_KEYSTORE *ks)
{
    if (ks == NULL) {
        return 0;
    }
    return __atomic_add_fetch(&ks->refs, 1, __ATOMIC_RELAXED);
}

void lurk_srv_keystore_free(LURK_SRV_KEYSTORE *ks)
{
    if (ks == NULL) {
        return;
    }
    if (__atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL) > 0) {
        return;
    }
    for (size_t i = 0; i < ks->n_keys; i++) {
        lurk_srv_key_free(ks->keys[i]);
    }
    free(ks->keys);
    free(ks->by_text);
    free(ks->propq);
    free(ks);
}

/* ---- state ------------------------------------------------------------- */

/* SHA-256 over, for each key in id order: id length, id, policy name,
 * NUL, the legacy digests (4 bytes, big-endian), each allowed client (sorted)
 * NUL-terminated, then a 0xff separator;
 * truncated to 16 bytes.  Computed with the server's library context. */
static void lurk_srv_compute_state(LURK_SRV_KEYSTORE *ks)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_MD *md = EVP_MD_fetch(ks->libctx, "SHA256", ks->propq);
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int full_len = 0;
    static const unsigned char sep = 0xff;

    memset(ks->state, 0, sizeof(ks->state));
    if (mctx == NULL || md == NULL || !EVP_DigestInit_ex(mctx, md, NULL)) {
        goto end;
    }
    for (size_t i = 0; i < ks->n_keys; i++) {
        const LURK_SRV_KEY *k = ks->keys[i];
        unsigned char len = (unsigned char)k->id.len;
        const char *pol = lurk_policy_name(k->policy);

        unsigned char legacy[4] = {
            (unsigned char)(k->legacy_digests >> 24), (unsigned char)(k->legacy_digests >> 16),
            (unsigned char)(k->legacy_digests >> 8), (unsigned char)k->legacy_digests,
        };

        EVP_DigestUpdate(mctx, &len, 1);
        EVP_DigestUpdate(mctx, k->id.bin, k->id.len);
        EVP_DigestUpdate(mctx, pol, strlen(pol) + 1);
        EVP_DigestUpdate(mctx, legacy, sizeof(legacy));
        for (size_t c = 0; c < k->n_clients; c++) {
            EVP_DigestUpdate(mctx, k->clients[c], strlen(k->clients[c]) + 1);
        }
        EVP_DigestUpdate(mctx, &sep, 1);
    }
    if (EVP_DigestFinal_ex(mctx, full, &full_len) && full_len >= sizeof(ks->state)) {
        memcpy(ks->state, full, sizeof(ks->state));
    }
end:
    ERR_clear_error();
    EVP_MD_free(md);
    EVP_MD_CTX_free(mctx);
}

void lurk_srv_keystore_state(const LURK_SRV_KEYSTORE *ks, unsigned char out[16])
{
    if (ks == NULL) {
        memset(out, 0, 16);
        return;
    }
    memcpy(out, ks->state, sizeof(ks->state));
}

/* ---- loading ----------------------------------------------------------- */

typedef struct {
    const char *passphrase; /* NULL: none configured */
} lurk_srv_pw;

/* PEM-style password callback wrapped into a UI_METHOD for OSSL_STORE.
 * Never prompts: without a configured passphrase an encrypted key fails. */
static int lurk_srv_pw_cb(char *buf, int size, int rwflag, void *u)
{
    const lurk_srv_pw *pw = u;
    size_t n;

    (void)rwflag;
    if (pw == NULL || pw->passphrase == NULL || size <= 0) {
        return -1;
    }
    n = strlen(pw->passphrase);
    if (n > (size_t)size) {
        return -1;
    }
    memcpy(buf, pw->passphrase, n);
    return (int)n;
}

/* Reads the first line of a passphrase file into buf (newline stripped). */
static lurk_err lurk_srv_read_passphrase(const char *path, char *buf, size_t buflen,
                                         char *why, size_t whylen)
{
    FILE *f = NULL;
    lurk_err err = LURK_ERR_IO;
    size_t n;

    f = fopen(path, "re");
    if (f == NULL) {
        lurk_why(why, whylen, "cannot read passphrase file %s: %s", path, strerror(errno));
        goto end;
    }
    if (fgets(buf, (int)buflen, f) == NULL) {
        lurk_why(why, whylen, "passphrase file %s is empty", path);
        err = LURK_ERR_CONFIG;
        goto end;
    }
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    if (n == 0) {
        lurk_why(why, whylen, "passphrase file %s has an empty first line", path);
        err = LURK_ERR_CONFIG;
        goto end;
    }
    err = LURK_OK;
end:
    if (f != NULL) {
        fclose(f);
    }
    return err;
}

/* The first private key found at uri (a path or any OSSL_STORE URI). */
static lurk_err lurk_srv_load_pkey(LURK_SRV_KEYSTORE *ks, const char *name, const char *uri,
                                   const char *passphrase, EVP_PKEY **out,
                                   char *why, size_t whylen)
{
    OSSL_STORE_CTX *sctx = NULL;
    OSSL_STORE_INFO *info = NULL;
    UI_METHOD *ui = NULL;
    lurk_srv_pw pw = { passphrase };
    lurk_err err = LURK_ERR_CONFIG;

    *out = NULL;
    ERR_clear_error();
    ui = UI_UTIL_wrap_read_pem_callback(lurk_srv_pw_cb, 0);
    if (ui == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    sctx = OSSL_STORE_open_ex(uri, ks->libctx, ks->propq, ui, &pw, NULL, NULL, NULL);
    if (sctx == NULL) {
        lurk_why(why, whylen, "key %s: cannot open %s: %s", name, uri,
                 lurk_srv_ossl_reason());
        goto end;
    }
    if (!OSSL_STORE_expect(sctx, OSSL_STORE_INFO_PKEY)) {
        lurk_why(why, whylen, "key %s: %s: cannot select private keys", name, uri);
        goto end;
    }
    while (*out == NULL && !OSSL_STORE_eof(sctx)) {
        info = OSSL_STORE_load(sctx);
        if (info == NULL) {
            if (OSSL_STORE_error(sctx)) {
                break;
            }
            continue;
        }
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
            *out = OSSL_STORE_INFO_get1_PKEY(info);
        }
        OSSL_STORE_INFO_free(info);
        info = NULL;
    }
    if (*out == NULL) {
        lurk_why(why, whylen, "key %s: no private key in %s (%s%s)", name, uri,
                 lurk_srv_ossl_reason(),
                 passphrase == NULL ? "; an encrypted key needs passphrase_file" : "");
        goto end;
    }
    err = LURK_OK;
end:
    ERR_clear_error();
    OSSL_STORE_INFO_free(info);
    OSSL_STORE_close(sctx);
    UI_destroy_method(ui);
    OPENSSL_cleanse(&pw, sizeof(pw));
    return err;
}

/* The implicit-rejection key of an RSA key (handler.c): SHA-384 over a
 * label and the private exponent d (big-endian, modulus length), as
 * OpenSSL 3.2 derives its implicit-rejection key from d.  So every key
 * server holding the key, before and after a restart, answers a given bad
 * ciphertext with the same 48 bytes.  A key whose d cannot be read (an HSM
 * key) gets random bytes, fixed for as long as it stays loaded. */
static lurk_err lurk_srv_reject_key(LURK_SRV_KEYSTORE *ks, LURK_SRV_KEY *k, char *why,
                                    size_t whylen)
{
    static const char label[] = "lurk implicit rejection key v1";
    BIGNUM *d = NULL;
    unsigned char *buf = NULL;
    int dlen = (k->bits + 7) / 8;
    unsigned int outlen = 0;
    EVP_MD *md = NULL;
    EVP_MD_CTX *mctx = NULL;
    lurk_err err = LURK_ERR_INTERNAL;

    k->reject_key = OPENSSL_secure_malloc(LURK_SRV_REJECT_KEY_LEN);
    if (k->reject_key == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_D, &d) != 1 || d == NULL) {
        ERR_clear_error();
        if (RAND_priv_bytes_ex(ks->libctx, k->reject_key, LURK_SRV_REJECT_KEY_LEN, 0) == 1) {
            err = LURK_OK;
        }
        goto end;
    }
    buf = OPENSSL_secure_malloc((size_t)dlen);
    md = EVP_MD_fetch(ks->libctx, "SHA2-384", ks->propq);
    mctx = EVP_MD_CTX_new();
    if (buf == NULL || md == NULL || mctx == NULL || BN_bn2binpad(d, buf, dlen) != dlen
        || !EVP_DigestInit_ex(mctx, md, NULL) || !EVP_DigestUpdate(mctx, label, sizeof(label))
        || !EVP_DigestUpdate(mctx, buf, (size_t)dlen)
        || !EVP_DigestFinal_ex(mctx, k->reject_key, &outlen)
        || outlen != LURK_SRV_REJECT_KEY_LEN) {
        goto end;
    }
    err = LURK_OK;

end:
    if (err != LURK_OK) {
        lurk_why(why, whylen, "key %s: cannot derive its implicit-rejection key", k->name);
    }
    ERR_clear_error();
    EVP_MD_CTX_free(mctx);
    EVP_MD_free(md);
    OPENSSL_secure_clear_free(buf, buf != NULL ? (size_t)dlen : 0);
    BN_clear_free(d);
    return err;
}

/* Type, size and policy checks of a freshly loaded key. */
static lurk_err lurk_srv_classify(LURK_SRV_KEY *k, char *why, size_t whylen)
{
    char group[64] = "";
    size_t glen = 0;

    k->bits = EVP_PKEY_get_bits(k->pkey);
    if (EVP_PKEY_is_a(k->pkey, "RSA")) {
        k->type = LURK_KEY_RSA;
        if (k->bits < LURK_SRV_RSA_MIN_BITS) {
            lurk_why(why, whylen,
                     "key %s: RSA key of %d bits is too weak (at least %d bits required)",
                     k->name, k->bits, LURK_SRV_RSA_MIN_BITS);
            return LURK_ERR_CONFIG;
        }
        if (k->bits > LURK_SRV_RSA_MAX_BITS) {
            lurk_why(why, whylen, "key %s: RSA key of %d bits is larger than %d bits",
                     k->name, k->bits, LURK_SRV_RSA_MAX_BITS);
            return LURK_ERR_CONFIG;
        }
    } else if (EVP_PKEY_is_a(k->pkey, "EC")) {
        k->type = LURK_KEY_EC;
        if (!EVP_PKEY_get_utf8_string_param(k->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                            sizeof(group), &glen)
            || (strcmp(group, "prime256v1") != 0 && strcmp(group, "secp384r1") != 0
                && strcmp(group, "secp521r1") != 0)) {
            ERR_clear_error();
            lurk_why(why, whylen,
                     "key %s: EC curve %s is not supported (P-256, P-384, P-521 are)",
                     k->name, group[0] != '\0' ? group : "(explicit parameters)");
            return LURK_ERR_CONFIG;
        }
    } else if (EVP_PKEY_is_a(k->pkey, "ED25519")) {
        k->type = LURK_KEY_ED25519;
    } else if (EVP_PKEY_is_a(k->pkey, "RSA-PSS")) {
        /* Not served (README.md, "What a lurk key refuses"): the Web PKI
         * certifies RSA keys as rsaEncryption only, and such a key signs
         * TLS 1.3 and 1.2 with RSA-PSS (rsa_pss_rsae_*) all the same. */
        lurk_why(why, whylen,
                 "key %s: RSA-PSS keys (id-RSASSA-PSS) are not served; use an RSA key "
                 "(rsaEncryption), which lurk signs with RSA-PSS in TLS 1.3 and 1.2 "
                 "(rsa_pss_rsae_*)", k->name);
        return LURK_ERR_CONFIG;
    } else {
        lurk_why(why, whylen,
                 "key %s: key type %s is not supported (RSA, EC, ED25519 are)", k->name,
                 EVP_PKEY_get0_type_name(k->pkey) != NULL
                         ? EVP_PKEY_get0_type_name(k->pkey) : "?");
        return LURK_ERR_CONFIG;
    }

    if (k->policy == LURK_POLICY_AGREE && k->type != LURK_KEY_EC) {
        lurk_why(why, whylen, "key %s: policy agree needs an EC key, this is %s", k->name,
                 lurk_key_type_name(k->type));
        return LURK_ERR_CONFIG;
    }
    if (k->policy == LURK_POLICY_DECRYPT && k->type != LURK_KEY_RSA) {
        lurk_why(why, whylen, "key %s: policy decrypt needs an RSA key, this is %s",
                 k->name, lurk_key_type_name(k->type));
        return LURK_ERR_CONFIG;
    }
    return LURK_OK;
}

static lurk_err lurk_srv_copy_clients(LURK_SRV_KEY *k, const lurk_srv_key_conf *kc,
                                      char *why, size_t whylen)
{
    if (kc->n_clients == 0 || kc->clients == NULL) {
        return LURK_OK;
    }
    if (kc->n_clients > LURK_SRV_MAX_CLIENTS_PER_KEY) {
        lurk_why(why, whylen, "key %s: %zu clients listed, at most %d allowed", k->name,
                 kc->n_clients, LURK_SRV_MAX_CLIENTS_PER_KEY);
        return LURK_ERR_CONFIG;
    }
    k->clients = calloc(kc->n_clients, sizeof(*k->clients));
    if (k->clients == NULL) {
        return LURK_ERR_NOMEM;
    }
    for (size_t i = 0; i < kc->n_clients; i++) {
        if (kc->clients[i] == NULL || kc->clients[i][0] == '\0') {
            lurk_why(why, whylen, "key %s: empty client name in clients", k->name);
            return LURK_ERR_CONFIG;
        }
        k->clients[i] = strdup(kc->clients[i]);
        if (k->clients[i] == NULL) {
            return LURK_ERR_NOMEM;
        }
        k->n_clients = i + 1;
    }
    qsort(k->clients, k->n_clients, sizeof(*k->clients), lurk_srv_str_cmp);
    return LURK_OK;
}

static int lurk_srv_text_cmp(const LURK_SRV_KEY *k, const char *text)
{
    return strcmp(k->id_text, text);
}

/* Index in by_text where text is, or would be inserted. */
static size_t lurk_srv_lower_bound_text(const LURK_SRV_KEYSTORE *ks, const char *text)
{
    size_t lo = 0;
    size_t hi = ks->n_keys;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (lurk_srv_text_cmp(ks->by_text[mid], text) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Index where id is, or would be inserted. */
static size_t lurk_srv_lower_bound(const LURK_SRV_KEYSTORE *ks, const lurk_keyid *id)
{
    size_t lo = 0;
    size_t hi = ks->n_keys;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (lurk_srv_keyid_cmp(&ks->keys[mid]->id, id) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static lurk_err lurk_srv_insert(LURK_SRV_KEYSTORE *ks, LURK_SRV_KEY *k, char *why,
                                size_t whylen)
{
    size_t pos;

    for (size_t i = 0; i < ks->n_keys; i++) {
        if (strcmp(ks->keys[i]->name, k->name) == 0) {
            lurk_why(why, whylen, "key %s: the name is already used by another key (%s)",
                     k->name, ks->keys[i]->id_text);
            return LURK_ERR_CONFIG;
        }
    }
    pos = lurk_srv_lower_bound(ks, &k->id);
    if (pos < ks->n_keys && lurk_srv_keyid_cmp(&ks->keys[pos]->id, &k->id) == 0) {
        lurk_why(why, whylen, "key %s is the same key as key %s (key id %s)", k->name,
                 ks->keys[pos]->name, k->id_text);
        return LURK_ERR_CONFIG;
    }
    if (ks->n_keys == ks->cap_keys) {
        size_t cap = ks->cap_keys == 0 ? 8 : ks->cap_keys * 2;
        LURK_SRV_KEY **keys = realloc(ks->keys, cap * sizeof(*keys));

        if (keys == NULL) {
            return LURK_ERR_NOMEM;
        }
        ks->keys = keys;
        keys = realloc(ks->by_text, cap * sizeof(*keys));
        if (keys == NULL) {
            return LURK_ERR_NOMEM;
        }
        ks->by_text = keys;
        ks->cap_keys = cap;
    }
    memmove(&ks->keys[pos + 1], &ks->keys[pos], (ks->n_keys - pos) * sizeof(*ks->keys));
    ks->keys[pos] = k;
    pos = lurk_srv_lower_bound_text(ks, k->id_text);
    memmove(&ks->by_text[pos + 1], &ks->by_text[pos], (ks->n_keys - pos) * sizeof(*ks->by_text));
    ks->by_text[pos] = k;
    ks->n_keys++;
    lurk_srv_compute_state(ks);
    return LURK_OK;
}

lurk_err lurk_srv_keystore_add(LURK_SRV_KEYSTORE *ks, const lurk_srv_key_conf *kc,
                               char *why, size_t whylen)
{
    LURK_SRV_KEY *k = NULL;
    const char *source;
    char pass[LURK_SRV_PASSPHRASE_MAX];
    int have_pass = 0;
    unsigned char *der = NULL;
    int der_len;
    lurk_err err = LURK_ERR_CONFIG;

    if (why != NULL && whylen > 0) {
        why[0] = '\0';
    }
    if (ks == NULL || kc == NULL || kc->name == NULL || kc->name[0] == '\0') {
        lurk_why(why, whylen, "a key needs a name");
        return LURK_ERR_INVALID_ARG;
    }
    if ((kc->file == NULL) == (kc->uri == NULL)) {
        lurk_why(why, whylen, "key %s: set exactly one of file or uri", kc->name);
        return LURK_ERR_CONFIG;
    }
    if ((int)kc->policy < 0 || kc->policy >= LURK_POLICY__COUNT) {
        lurk_why(why, whylen, "key %s: unknown policy", kc->name);
        return LURK_ERR_CONFIG;
    }
    source = kc->file != NULL ? kc->file : kc->uri;

    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    if (pthread_mutex_init(&k->cache_lock, NULL) != 0) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    k->cache_lock_ok = 1;
    k->policy = kc->policy;
    k->legacy_digests = kc->legacy_digests
                        & ((1u << LURK_MD_SHA1) | (1u << LURK_MD_SHA224));
    k->name = strdup(kc->name);
    if (k->name == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }

    if (kc->file != NULL) {
        struct stat st;

        if (stat(kc->file, &st) != 0) {
            lurk_why(why, whylen, "key %s: cannot read %s: %s", k->name, kc->file,
                     strerror(errno));
            err = LURK_ERR_IO;
            goto end;
        }
        if (!S_ISREG(st.st_mode)) {
            lurk_why(why, whylen, "key %s: %s is not a regular file", k->name, kc->file);
            err = LURK_ERR_IO;
            goto end;
        }
        if (access(kc->file, R_OK) != 0) {
            lurk_why(why, whylen, "key %s: cannot read %s: %s", k->name, kc->file,
                     strerror(errno));
            err = LURK_ERR_IO;
            goto end;
        }
    }
    if (kc->passphrase_file != NULL) {
        err = lurk_srv_read_passphrase(kc->passphrase_file, pass, sizeof(pass), why, whylen);
        if (err != LURK_OK) {
            goto end;
        }
        have_pass = 1;
    }
    err = lurk_srv_load_pkey(ks, k->name, source, have_pass ? pass : NULL, &k->pkey, why,
                             whylen);
    if (err != LURK_OK) {
        goto end;
    }
    err = lurk_srv_classify(k, why, whylen);
    if (err != LURK_OK) {
        goto end;
    }
    if (k->type == LURK_KEY_RSA) {
        err = lurk_srv_reject_key(ks, k, why, whylen);
        if (err != LURK_OK) {
            goto end;
        }
    }

    der_len = i2d_PUBKEY(k->pkey, &der);
    if (der_len <= 0) {
        lurk_why(why, whylen, "key %s: cannot encode its public key: %s", k->name,
                 lurk_srv_ossl_reason());
        err = LURK_ERR_CONFIG;
        goto end;
    }
    k->spki = der;
    k->spki_len = (size_t)der_len;
    der = NULL;
    err = lurk_keyid_from_spki(k->spki, k->spki_len, LURK_KEYID_ALG_DEFAULT, &k->id);
    if (err == LURK_OK) {
        err = lurk_keyid_format(&k->id, k->id_text, sizeof(k->id_text));
    }
    if (err != LURK_OK) {
        lurk_why(why, whylen, "key %s: cannot compute its key id: %s", k->name,
                 lurk_err_str(err));
        goto end;
    }

    err = lurk_srv_copy_clients(k, kc, why, whylen);
    if (err != LURK_OK) {
        goto end;
    }
    err = lurk_srv_insert(ks, k, why, whylen);
    if (err != LURK_OK) {
        goto end;
    }
    k = NULL;
end:
    if (err == LURK_ERR_NOMEM) {
        lurk_why(why, whylen, "key %s: out of memory", kc->name);
    }
    OPENSSL_cleanse(pass, sizeof(pass));
    OPENSSL_free(der);
    lurk_srv_key_free(k);
    return err;
}

static int lurk_srv_key_suffix(const char *name, size_t *stem)
{
    static const char *const suffixes[] = { ".pem", ".key", ".p8" };
    size_t n = strlen(name);

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t s = strlen(suffixes[i]);

        if (n > s && strcmp(name + n - s, suffixes[i]) == 0) {
            *stem = n - s;
            return 1;
        }
    }
    return 0;
}

/* Every key file of dir is tried, in name order; keys that load stay in the
 * store even when another file fails.  The first failure is returned, its
 * reason naming the file (plus how many more failed). */
lurk_err lurk_srv_keystore_add_dir(LURK_SRV_KEYSTORE *ks, const char *dir,
                                   const char *passphrase_file, char *why, size_t whylen)
{
    DIR *d = NULL;
    struct dirent *de;
    char **names = NULL;
    size_t n_names = 0;
    size_t cap = 0;
    lurk_err first = LURK_OK;
    size_t failures = 0;
    char one_why[512];

    if (why != NULL && whylen > 0) {
        why[0] = '\0';
    }
    if (ks == NULL || dir == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    d = opendir(dir);
    if (d == NULL) {
        lurk_why(why, whylen, "key directory %s: %s", dir, strerror(errno));
        first = LURK_ERR_IO;
        goto end;
    }
    for (de = readdir(d); de != NULL; de = readdir(d)) {
        size_t stem;

        if (de->d_name[0] == '.' || !lurk_srv_key_suffix(de->d_name, &stem)) {
            continue;
        }
        if (n_names == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            char **nn = realloc(names, ncap * sizeof(*nn));

            if (nn == NULL) {
                first = LURK_ERR_NOMEM;
                goto end;
            }
            names = nn;
            cap = ncap;
        }
        names[n_names] = strdup(de->d_name);
        if (names[n_names] == NULL) {
            first = LURK_ERR_NOMEM;
            goto end;
        }
        n_names++;
    }
    if (n_names > 1) {
        qsort(names, n_names, sizeof(*names), lurk_srv_str_cmp);
    }

    for (size_t i = 0; i < n_names; i++) {
        char path[4096];
        char name[256];
        size_t stem = 0;
        struct stat st;
        lurk_srv_key_conf kc = { 0 };
        lurk_err err;

        lurk_srv_key_suffix(names[i], &stem);
        if (stem >= sizeof(name)
            || (size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= sizeof(path)) {
            snprintf(one_why, sizeof(one_why), "name too long");
            err = LURK_ERR_CONFIG;
        } else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            continue;
        } else {
            memcpy(name, names[i], stem);
            name[stem] = '\0';
            kc.name = name;
            kc.file = path;
            kc.passphrase_file = passphrase_file;
            kc.policy = LURK_POLICY_TLS_SERVER;
            one_why[0] = '\0';
            err = lurk_srv_keystore_add(ks, &kc, one_why, sizeof(one_why));
        }
        if (err != LURK_OK) {
            failures++;
            if (first == LURK_OK) {
                first = err;
                lurk_why(why, whylen, "%s/%s: %s", dir, names[i], one_why);
            }
        }
    }
    if (failures > 1 && why != NULL && whylen > 0) {
        size_t used = strlen(why);

        if (used < whylen) {
            snprintf(why + used, whylen - used, " (and %zu more key files failed)",
                     failures - 1);
        }
    }
end:
    if (first == LURK_ERR_NOMEM) {
        lurk_why(why, whylen, "key directory %s: out of memory", dir);
    }
    for (size_t i = 0; i < n_names; i++) {
        free(names[i]);
    }
    free(names);
    if (d != NULL) {
        closedir(d);
    }
    return first;
}

/* ---- lookups ----------------------------------------------------------- */

const LURK_SRV_KEY *lurk_srv_keystore_find(const LURK_SRV_KEYSTORE *ks, const lurk_keyid *id)
{
    size_t pos;

    if (ks == NULL || id == NULL) {
        return NULL;
    }
    pos = lurk_srv_lower_bound(ks, id);
    if (pos < ks->n_keys && lurk_srv_keyid_cmp(&ks->keys[pos]->id, id) == 0) {
        return ks->keys[pos];
    }
    return NULL;
}

const LURK_SRV_KEY *lurk_srv_keystore_find_text(const LURK_SRV_KEYSTORE *ks, const char *text)
{
    size_t pos;

    if (ks == NULL || text == NULL) {
        return NULL;
    }
    pos = lurk_srv_lower_bound_text(ks, text);
    if (pos < ks->n_keys && lurk_srv_text_cmp(ks->by_text[pos], text) == 0) {
        return ks->by_text[pos];
    }
    return NULL;
}

size_t lurk_srv_keystore_count(const LURK_SRV_KEYSTORE *ks)
{
    return ks != NULL ? ks->n_keys : 0;
}

const LURK_SRV_KEY *lurk_srv_keystore_get(const LURK_SRV_KEYSTORE *ks, size_t i)
{
    return ks != NULL && i < ks->n_keys ? ks->keys[i] : NULL;
}

const char *lurk_srv_key_name(const LURK_SRV_KEY *k)
{
    return k != NULL ? k->name : NULL;
}

const char *lurk_srv_key_id_text(const LURK_SRV_KEY *k)
{
    return k != NULL ? k->id_text : NULL;
}

const lurk_keyid *lurk_srv_key_id(const LURK_SRV_KEY *k)
{
    return k != NULL ? &k->id : NULL;
}

lurk_key_type lurk_srv_key_type(const LURK_SRV_KEY *k)
{
    return k != NULL ? k->type : LURK_KEY_NONE;
}

int lurk_srv_key_bits(const LURK_SRV_KEY *k)
{
    return k != NULL ? k->bits : 0;
}

lurk_policy lurk_srv_key_policy(const LURK_SRV_KEY *k)
{
    return k != NULL ? k->policy : LURK_POLICY_TLS_SERVER;
}

const unsigned char *lurk_srv_key_reject_key(const LURK_SRV_KEY *k)
{
    return k != NULL ? k->reject_key : NULL;
}

uint32_t lurk_srv_key_legacy_digests(const LURK_SRV_KEY *k)
{
    return k != NULL ? k->legacy_digests : 0;
}

EVP_PKEY *lurk_srv_key_pkey(const LURK_SRV_KEY *k)
{
    return k != NULL ? k->pkey : NULL;
}

const unsigned char *lurk_srv_key_spki(const LURK_SRV_KEY *k, size_t *len)
{
    if (k == NULL) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = k->spki_len;
    }
    return k->spki;
}

int lurk_srv_key_allows_client(const LURK_SRV_KEY *k, const char *identity)
{
    if (k == NULL) {
        return 0;
    }
    if (k->n_clients == 0) {
        return 1;
    }
    if (identity == NULL) {
        return 0;
    }
    return bsearch(&identity, k->clients, k->n_clients, sizeof(*k->clients),
                   lurk_srv_str_cmp) != NULL;
}

/* ---- per-key cache ----------------------------------------------------- */

const void *lurk_srv_key_cache(const LURK_SRV_KEY *key, size_t slot,
                               lurk_srv_key_cache_make_fn make,
                               lurk_srv_key_cache_free_fn free_fn, const void *arg)
{
    /* The cache is the one part of a loaded key that changes; its writers
     * hold cache_lock, its readers see a slot only once it is complete. */
    LURK_SRV_KEY *k = (LURK_SRV_KEY *)key;
    void *obj;

    if (k == NULL || slot >= LURK_SRV_KEY_CACHE_SLOTS || make == NULL || free_fn == NULL
        || !k->cache_lock_ok) {
        return NULL;
    }
    obj = __atomic_load_n(&k->cache[slot].obj, __ATOMIC_ACQUIRE);
    if (obj != NULL) {
        return obj;
    }
    pthread_mutex_lock(&k->cache_lock);
    obj = k->cache[slot].obj;
    if (obj == NULL && !k->cache[slot].failed) {
        obj = make(key, arg);
        if (obj == NULL) {
            k->cache[slot].failed = 1;
        } else {
            k->cache[slot].free_fn = free_fn;
            __atomic_store_n(&k->cache[slot].obj, obj, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&k->cache_lock);
    return obj;
}
