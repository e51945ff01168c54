/* SPDX-License-Identifier: Apache-2.0 */
/*
 * key.c - LURK_KEY, the provider's key object, and the only caller of the
 * client library.
 *
 * A key is a key id, its type, its public key (decoded by OpenSSL's default
 * provider in the provider's private context: never by our own keymgmt),
 * the policy the key server announced and an optional server list that
 * overrides the provider's.  Keys are immutable once made and refcounted:
 * decoders, the store, keymgmt and operation contexts each hold a reference.
 *
 * Every signature the key server returns is verified with the cached public
 * key before it is handed back: a faulty or hostile key server must never
 * put a bad signature on the wire (LURK_ERR_BAD_SIGNATURE).
 *
 * lurk_key_fail() is the one place where a lurk_err becomes an OpenSSL
 * error: reason = the lurk_err, detail = key id, operation, wire status and
 * the server's (or transport's) description.
 */
#include "provider.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <openssl/async.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

struct lurk_key_st {
    int refs;
    LURK_PROV_CTX *prov;
    lurk_key_type type;
    int has_private;
    char key_id[LURK_KEYID_TEXT_MAX];
    char policy[32];
    char *servers;              /* NULL: the provider's lurk-servers */
    EVP_PKEY *pub;              /* default provider, provider's pubctx */
    unsigned char *spki;
    size_t spki_len;
    int bits;
    int max_size;
    int tls_server;             /* policy tls-server (or not announced) */
    LURK_CLIENT *client;        /* made at load; NULL if that failed (retried at use) */
    pthread_mutex_t vlock;      /* guards vtpl */
    EVP_PKEY_CTX *vtpl[LURK_SIG__COUNT][LURK_MD__COUNT]; /* verify templates, per scheme */
};

static int lurk_key_fail(const LURK_PROV_CTX *prov, const char *key_id, const char *op,
                         lurk_err err, const lurk_detail *d)
{
    const char *id = (key_id != NULL && key_id[0] != '\0') ? key_id : "?";

    if (d != NULL && d->status != 0) {
        LURK_PROV_RAISE(prov, err, "key %s, %s, status %d%s%s", id, op, d->status,
                        d->msg[0] != '\0' ? ": " : "", d->msg);
    } else if (d != NULL && d->msg[0] != '\0') {
        LURK_PROV_RAISE(prov, err, "key %s, %s: %s", id, op, d->msg);
    } else {
        LURK_PROV_RAISE(prov, err, "key %s, %s", id, op);
    }
    return 0;
}

static LURK_KEY *lurk_key_new(LURK_PROV_CTX *prov, lurk_key_type type, const char *key_id,
                              const char *policy, const char *servers,
                              const unsigned char *spki, size_t spki_len)
{
    LURK_KEY *key = NULL;
    OSSL_LIB_CTX *pubctx = NULL;
    const unsigned char *p = spki;
    const char *type_name = lurk_key_type_name(type);
    lurk_err err = LURK_ERR_INVALID_FORMAT;

    pubctx = lurk_prov_pubctx(prov);
    if (pubctx == NULL) {
        return NULL;
    }
    key = calloc(1, sizeof(*key));
    if (key == NULL) {
        err = LURK_ERR_NOMEM;
        goto fail;
    }
    key->refs = 1;
    key->prov = prov;
    key->type = type;
    pthread_mutex_init(&key->vlock, NULL);
    key->has_private = key_id != NULL;
    if (key_id != NULL) {
        snprintf(key->key_id, sizeof(key->key_id), "%s", key_id);
    }
    snprintf(key->policy, sizeof(key->policy), "%s", policy != NULL ? policy : "");
    key->tls_server = key->policy[0] == '\0' || strcmp(key->policy, "tls-server") == 0;
    if (servers != NULL && servers[0] != '\0') {
        key->servers = strdup(servers);
        if (key->servers == NULL) {
            err = LURK_ERR_NOMEM;
            goto fail;
        }
    }
    key->spki = malloc(spki_len);
    if (key->spki == NULL) {
        err = LURK_ERR_NOMEM;
        goto fail;
    }
    memcpy(key->spki, spki, spki_len);
    key->spki_len = spki_len;

    ERR_set_mark();
    key->pub = d2i_PUBKEY_ex(NULL, &p, (long)spki_len, pubctx, NULL);
    ERR_pop_to_mark();
    if (key->pub == NULL || p != spki + spki_len || type_name == NULL
        || !EVP_PKEY_is_a(key->pub, type_name)) {
        goto fail;
    }
    key->bits = EVP_PKEY_get_bits(key->pub);
    key->max_size = EVP_PKEY_get_size(key->pub);
    if (key->bits <= 0 || key->max_size <= 0) {
        goto fail;
    }
    if (key->has_private) {
        /* Make the key's client now: the client reads its credentials when
         * it is made, and keys are loaded where the application still has
         * its privileges (nginx and haproxy masters run as root, their
         * workers drop privileges or chroot before the first handshake).
         * No network I/O happens here; a failure (no key server
         * configured) is reported again at the first private-key use. */
        lurk_detail d = { 0 };

        if (lurk_prov_client(prov, key->servers, &key->client, &d) != LURK_OK) {
            key->client = NULL;
        }
    }
    return key;

fail:
    lurk_key_fail(prov, key_id, "loading the public key", err, NULL);
    lurk_key_free(key);
    return NULL;
}

LURK_KEY *lurk_key_from_ref(LURK_PROV_CTX *prov, const lurk_keyref *ref)
{
    char servers[4096] = "";
    size_t used = 0;

    if (!lurk_prov_config_ok(prov)) {
        return NULL;
    }

    for (size_t i = 0; i < ref->n_servers; i++) {
        int n = snprintf(servers + used, sizeof(servers) - used, "%s%s", used > 0 ? " " : "",
                         ref->servers[i]);

        if (n < 0 || (size_t)n >= sizeof(servers) - used) {
            lurk_key_fail(prov, ref->key_id, "loading the key reference", LURK_ERR_TOO_LARGE,
                          NULL);
            return NULL;
        }
        used += (size_t)n;
    }
    return lurk_key_new(prov, ref->type, ref->key_id, ref->policy, servers, ref->spki,
                        ref->spki_len);
}

int lurk_key_fetch(LURK_PROV_CTX *prov, const char *servers, const char *key_id,
                   LURK_KEY **out)
{
    LURK_CLIENT *client = NULL;
    lurk_detail d = { 0 };
    lurk_key_type type = LURK_KEY_NONE;
    char policy[32] = "";
    unsigned char *spki = NULL;
    size_t spki_len = 0;
    lurk_err err;
    int ret = 0;

    if (!lurk_prov_config_ok(prov)) {
        return 0;
    }
    err = lurk_prov_client(prov, servers, &client, &d);
    if (err == LURK_OK) {
        err = lurk_client_public_key(client, key_id, &type, policy, &spki, &spki_len, &d);
    }
    if (err != LURK_OK) {
        lurk_key_fail(prov, key_id, "PublicKey", err, &d);
        goto end;
    }
    *out = lurk_key_new(prov, type, key_id, policy, servers, spki, spki_len);
    ret = *out != NULL;

end:
    free(spki);
    return ret;
}

LURK_KEY *lurk_key_new_empty(LURK_PROV_CTX *prov, lurk_key_type type)
{
    LURK_KEY *key = calloc(1, sizeof(*key));

    if (key == NULL) {
        return NULL;
    }
    key->refs = 1;
    key->prov = prov;
    key->type = type;
    pthread_mutex_init(&key->vlock, NULL);
    return key;
}

int lurk_key_import_public(LURK_KEY *key, const OSSL_PARAM params[])
{
    OSSL_LIB_CTX *pubctx = lurk_prov_pubctx(key->prov);
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pub = NULL;
    unsigned char *spki = NULL;
    int len;
    int ret = 0;

    if (pubctx == NULL || key->pub != NULL || key->has_private) {
        return 0;
    }
    pctx = EVP_PKEY_CTX_new_from_name(pubctx, lurk_key_type_name(key->type), NULL);
    if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1
        || EVP_PKEY_fromdata(pctx, &pub, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) != 1) {
        goto end;
    }
    len = i2d_PUBKEY(pub, &spki);
    if (len <= 0) {
        goto end;
    }
    key->spki = malloc((size_t)len);
    if (key->spki == NULL) {
        goto end;
    }
    memcpy(key->spki, spki, (size_t)len);
    key->spki_len = (size_t)len;
    key->bits = EVP_PKEY_get_bits(pub);
    key->max_size = EVP_PKEY_get_size(pub);
    key->pub = pub;
    pub = NULL;
    ret = 1;

end:
    OPENSSL_free(spki);
    EVP_PKEY_free(pub);
    EVP_PKEY_CTX_free(pctx);
    return ret;
}

int lurk_key_up_ref(LURK_KEY *key)
{
    __atomic_add_fetch(&key->refs, 1, __ATOMIC_RELAXED);
    return 1;
}

void lurk_key_free(LURK_KEY *key)
{
    if (key == NULL || __atomic_sub_fetch(&key->refs, 1, __ATOMIC_ACQ_REL) > 0) {
        return;
    }
    for (int a = 0; a < LURK_SIG__COUNT; a++) {
        for (int m = 0; m < LURK_MD__COUNT; m++) {
            EVP_PKEY_CTX_free(key->vtpl[a][m]);
        }
    }
    pthread_mutex_destroy(&key->vlock);
    EVP_PKEY_free(key->pub);
    free(key->spki);
    free(key->servers);
    free(key);
}

LURK_PROV_CTX *lurk_key_prov(const LURK_KEY *key)
{
    return key->prov;
}

lurk_key_type lurk_key_type_of(const LURK_KEY *key)
{
    return key->type;
}

int lurk_key_has_private(const LURK_KEY *key)
{
    return key->has_private;
}

EVP_PKEY *lurk_key_pub(const LURK_KEY *key)
{
    return key->pub;
}

int lurk_key_bits(const LURK_KEY *key)
{
    return key->bits;
}

int lurk_key_max_size(const LURK_KEY *key)
{
    return key->max_size;
}

const char *lurk_key_id(const LURK_KEY *key)
{
    return key->key_id;
}

const char *lurk_key_policy(const LURK_KEY *key)
{
    return key->policy;
}

const unsigned char *lurk_key_spki(const LURK_KEY *key, size_t *len)
{
    *len = key->spki_len;
    return key->spki;
}

int lurk_key_same_public(const LURK_KEY *a, const LURK_KEY *b)
{
    return a->spki_len == b->spki_len && memcmp(a->spki, b->spki, a->spki_len) == 0;
}

/* ---- private-key operations ---------------------------------------------- */

static int lurk_key_usable(const LURK_KEY *key, const char *op)
{
    if (!key->has_private) {
        LURK_PROV_RAISE(key->prov, LURK_ERR_INVALID_ARG,
                        "%s needs a lurk private key, not a public key", op);
        return 0;
    }
    return 1;
}

/* A verify context for one scheme of this key, made once and then dup'ed
 * per signature (making one costs fetches and a key import check). */
static EVP_PKEY_CTX *lurk_key_verify_ctx(LURK_KEY *key, const lurk_key_sign_op *op,
                                          const EVP_MD *md)
{
    OSSL_LIB_CTX *pubctx = lurk_prov_pubctx(key->prov);
    EVP_PKEY_CTX **slot = &key->vtpl[op->alg][op->md];
    EVP_PKEY_CTX *tpl = NULL;
    EVP_PKEY_CTX *ctx = NULL;

    pthread_mutex_lock(&key->vlock);
    if (*slot == NULL && pubctx != NULL) {
        tpl = EVP_PKEY_CTX_new_from_pkey(pubctx, key->pub, NULL);
        if (tpl == NULL || EVP_PKEY_verify_init(tpl) != 1
            || EVP_PKEY_CTX_set_signature_md(tpl, md) != 1
            || (op->alg == LURK_SIG_RSA_PKCS1
                && EVP_PKEY_CTX_set_rsa_padding(tpl, RSA_PKCS1_PADDING) != 1)
            || (op->alg == LURK_SIG_RSA_PSS
                && (EVP_PKEY_CTX_set_rsa_padding(tpl, RSA_PKCS1_PSS_PADDING) != 1
                    || EVP_PKEY_CTX_set_rsa_mgf1_md(tpl, md) != 1))) {
            EVP_PKEY_CTX_free(tpl);
            tpl = NULL;
        }
        *slot = tpl;
    }
    if (*slot != NULL) {
        ctx = EVP_PKEY_CTX_dup(*slot);
    }
    pthread_mutex_unlock(&key->vlock);
    return ctx;
}

/* What a returned signature is checked against. */
typedef struct {
    LURK_KEY *key;
    const lurk_key_sign_op *op;
    const EVP_MD *md;
    const unsigned char *digest;
    size_t digest_len;
} lurk_key_check;

/* 1 when sig is a valid signature by the key over the message/digest. */
static int lurk_key_verify(void *arg, const lurk_buf *sigbuf)
{
    const lurk_key_check *k = arg;
    LURK_KEY *key = k->key;
    const lurk_key_sign_op *op = k->op;
    OSSL_LIB_CTX *pubctx = lurk_prov_pubctx(key->prov);
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int ok = 0;

    ERR_set_mark();
    if (op->alg == LURK_SIG_ED25519) {
        mctx = EVP_MD_CTX_new();
        ok = mctx != NULL
             && EVP_DigestVerifyInit_ex(mctx, NULL, NULL, pubctx, NULL, key->pub, NULL) == 1
             && EVP_DigestVerify(mctx, sigbuf->data, sigbuf->len, op->msg, op->msg_len) == 1;
        goto end;
    }
    pctx = lurk_key_verify_ctx(key, op, k->md);
    if (pctx == NULL) {
        goto end;
    }
    if (op->alg == LURK_SIG_RSA_PSS && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, op->salt_len) != 1) {
        goto end;
    }
    ok = EVP_PKEY_verify(pctx, sigbuf->data, sigbuf->len, k->digest, k->digest_len) == 1;

end:
    ERR_pop_to_mark();
    EVP_PKEY_CTX_free(pctx);
    EVP_MD_CTX_free(mctx);
    return ok;
}

/* Whether this signature is checked before use (lurk-verify, policy). */
static int lurk_key_must_verify(const LURK_KEY *key, const lurk_key_sign_op *op)
{
    if (!key->tls_server) {
        return 1; /* CSRs, certificates, generic signing: always */
    }
    switch (lurk_prov_verify_mode(key->prov)) {
    case LURK_PROV_VERIFY_ALL:
        return 1;
    case LURK_PROV_VERIFY_NONE:
        return 0;
    default:
        return op->alg == LURK_SIG_RSA_PKCS1 || op->alg == LURK_SIG_RSA_PSS;
    }
}

static lurk_err lurk_key_client(LURK_KEY *key, LURK_CLIENT **out, lurk_detail *d)
{
    if (key->client != NULL) {
        *out = key->client;
        return LURK_OK;
    }
    return lurk_prov_client(key->prov, key->servers, out, d);
}

/* ---- ASYNC ----------------------------------------------------------------
 *
 * Inside an OpenSSL ASYNC job (haproxy ssl-mode-async, s_server -async) an
 * operation pauses the job instead of blocking the thread.  Each SSL
 * connection's wait context gets, on first use, one epoll fd of ours as its
 * wait fd (ASYNC_WAIT_CTX_set_wait_fd), kept until the wait context is freed
 * (the cleanup callback closes it): applications such as haproxy put every
 * wait fd in their own poller with the connection as owner, so two paused
 * jobs must never expose the same fd, and a wait fd must stay open until
 * cleanup.  The epoll set holds a timerfd, armed at the operation's deadline
 * and fired at once to wake the job when another operation read its reply,
 * and, while this operation is the one that polls its connection, that
 * connection's socket.
 */
typedef struct {
    int epfd;
    int tfd;
    int sock;               /* the socket in epfd, or -1 */
    LURK_CLIENT_OP *op;     /* in flight, or NULL */
} lurk_key_async;

static const char lurk_key_async_id = 'L'; /* its address is our wait-fd key */

static void lurk_key_async_wake(void *arg)
{
    lurk_key_async *a = arg;
    struct itimerspec now = { .it_value = { 0, 1 } };

    (void)timerfd_settime(a->tfd, 0, &now, NULL);
}

static void lurk_key_async_free(lurk_key_async *a)
{
    if (a->tfd >= 0) {
        close(a->tfd);
    }
    if (a->epfd >= 0) {
        close(a->epfd);
    }
    free(a);
}

static void lurk_key_async_cleanup(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD fd,
                                   void *custom)
{
    lurk_key_async *a = custom;

    (void)ctx;
    (void)key;
    (void)fd;
    /* The connection was freed while the job was paused: let the operation
     * go (its reply is read and dropped later). */
    lurk_client_op_free(a->op);
    lurk_key_async_free(a);
}

/* The wait context's slot, or a new one not registered yet: an fd is
 * handed to the application only when the job is about to pause, since an
 * application such as haproxy learns of new wait fds only from a pause
 * (SSL_ERROR_WANT_ASYNC) and later deletes every fd the SSL lists. */
static lurk_key_async *lurk_key_async_get(ASYNC_WAIT_CTX *wctx, int *registered)
{
    lurk_key_async *a = NULL;
    OSSL_ASYNC_FD fd = -1;
    void *custom = NULL;
    struct epoll_event ev = { .events = EPOLLIN };

    *registered = 0;
    if (ASYNC_WAIT_CTX_get_fd(wctx, &lurk_key_async_id, &fd, &custom) == 1 && custom != NULL) {
        *registered = 1;
        return custom;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    a->sock = -1;
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    a->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    ev.data.fd = a->tfd;
    if (a->epfd < 0 || a->tfd < 0 || epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->tfd, &ev) != 0) {
        lurk_key_async_free(a);
        return NULL;
    }
    return a;
}

/* Before pausing: the deadline on the timer, the socket in the set when
 * this operation polls it. */
static void lurk_key_async_arm(lurk_key_async *a, const lurk_client_wait *w)
{
    struct itimerspec at = { .it_value = { w->deadline_ms / 1000,
                                           (w->deadline_ms % 1000) * 1000000L } };
    struct epoll_event ev = { .events = EPOLLIN };

    if (at.it_value.tv_sec == 0 && at.it_value.tv_nsec == 0) {
        at.it_value.tv_nsec = 1;
    }
    (void)timerfd_settime(a->tfd, TFD_TIMER_ABSTIME, &at, NULL);
    if (a->sock >= 0 && a->sock != w->fd) {
        (void)epoll_ctl(a->epfd, EPOLL_CTL_DEL, a->sock, NULL); /* may be closed already */
        a->sock = -1;
    }
    if (w->fd >= 0) {
        /* Added each time: a socket closed and reopened under the same
         * number has left the set by itself. */
        ev.data.fd = w->fd;
        if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0 && errno == EEXIST) {
            (void)epoll_ctl(a->epfd, EPOLL_CTL_MOD, w->fd, &ev);
        }
        a->sock = w->fd;
    }
}

/* Runs a started operation to its end: paused inside an ASYNC job, polled
 * by this thread otherwise.  Then the result, and the operation freed. */
static lurk_err lurk_key_await(LURK_CLIENT_OP *op, unsigned char *out, size_t *outlen,
                               lurk_detail *d)
{
    ASYNC_JOB *job = ASYNC_get_current_job();
    ASYNC_WAIT_CTX *wctx = NULL;
    lurk_key_async *a = NULL;
    lurk_client_wait w;
    lurk_err err;
    int idle = 0, registered = 0;

    if (job != NULL) {
        wctx = ASYNC_get_wait_ctx(job);
        a = wctx != NULL ? lurk_key_async_get(wctx, &registered) : NULL;
    }
    if (a != NULL) {
        a->op = op;
        lurk_client_op_set_wake(op, lurk_key_async_wake, a);
    }
    while (a != NULL && !lurk_client_op_step(op, &w)) {
        struct pollfd pfd = { .fd = a->epfd, .events = POLLIN };

        if (!registered
            && ASYNC_WAIT_CTX_set_wait_fd(wctx, &lurk_key_async_id, a->epfd, a,
                                          lurk_key_async_cleanup) == 1) {
            registered = 1;
        }
        if (!registered || idle >= 64) {
            /* No wait fd could be set, or pausing is blocked
             * (ASYNC_block_pause makes ASYNC_pause_job return at once, seen
             * as many wake-ups with nothing ready): this thread waits. */
            break;
        }
        lurk_key_async_arm(a, &w);
        ASYNC_pause_job();
        /* Resumed by our fd, or by the application for its own reasons. */
        idle = poll(&pfd, 1, 0) > 0 ? 0 : idle + 1;
    }
    if (a != NULL) {
        lurk_client_op_set_wake(op, NULL, NULL);
        a->op = NULL;
        if (!registered) {
            lurk_key_async_free(a);
        }
    }
    lurk_client_op_wait(op); /* outside a job; at once when finished */
    err = lurk_client_op_finish(op, out, outlen, d);
    lurk_client_op_free(op);
    return err;
}

int lurk_key_sign(LURK_KEY *key, const lurk_key_sign_op *op, unsigned char *sig,
                  size_t *siglen)
{
    char opname[64];
    unsigned char local_digest[EVP_MAX_MD_SIZE];
    unsigned int local_len = 0;
    const unsigned char *digest = op->digest;
    size_t digest_len = op->digest_len;
    const EVP_MD *md = NULL;
    lurk_sign_params p = { 0 };
    lurk_key_check check;
    LURK_CLIENT *client = NULL;
    LURK_CLIENT_OP *cop = NULL;
    lurk_detail d = { 0 };
    lurk_err err;
    int send_message, verify;

    if (op->alg == LURK_SIG_ED25519) {
        snprintf(opname, sizeof(opname), "Sign ed25519");
    } else {
        snprintf(opname, sizeof(opname), "Sign %s/%s", lurk_sig_alg_name(op->alg),
                 lurk_md_name(op->md));
    }
    if (!lurk_key_usable(key, opname)) {
        return 0;
    }
    if (*siglen < (size_t)key->max_size) {
        LURK_PROV_RAISE(key->prov, LURK_ERR_INVALID_ARG,
                        "key %s, %s: signature buffer too small (%zu < %d)", key->key_id,
                        opname, *siglen, key->max_size);
        return 0;
    }
    verify = lurk_key_must_verify(key, op);
    if (op->alg != LURK_SIG_ED25519) {
        md = lurk_prov_evp_md(key->prov, op->md);
        if (md == NULL) {
            return lurk_key_fail(key->prov, key->key_id, opname, LURK_ERR_NOT_ACCEPTABLE, NULL);
        }
        if (op->msg != NULL && (verify || !key->tls_server)) {
            /* The digest is sent (other policies), or checks the answer. */
            if (EVP_Digest(op->msg, op->msg_len, local_digest, &local_len, md, NULL) != 1) {
                return lurk_key_fail(key->prov, key->key_id, opname, LURK_ERR_INTERNAL, NULL);
            }
            digest = local_digest;
            digest_len = local_len;
        }
        if (op->msg == NULL && (digest == NULL || digest_len != lurk_md_size(op->md))) {
            LURK_PROV_RAISE(key->prov, LURK_ERR_INVALID_ARG,
                            "key %s, %s: the input is not a %s digest (%zu bytes)", key->key_id,
                            opname, lurk_md_name(op->md), digest_len);
            return 0;
        }
    } else if (op->msg == NULL) {
        LURK_PROV_RAISE(key->prov, LURK_ERR_INVALID_ARG,
                        "key %s, %s: Ed25519 signs whole messages only (use EVP_DigestSign)",
                        key->key_id, opname);
        return 0;
    }

    /* A tls-server key signs only TLS handshake messages, which the key
     * server inspects; every other policy gets just the digest. */
    send_message = op->msg != NULL && (op->alg == LURK_SIG_ED25519 || key->tls_server);
    p.key_id = key->key_id;
    p.key_id_checked = 1; /* parsed when the key was loaded */
    p.alg = op->alg;
    p.md = op->alg == LURK_SIG_ED25519 ? LURK_MD_NONE : op->md;
    p.salt_len = op->alg == LURK_SIG_RSA_PSS ? op->salt_len : 0;
    if (send_message) {
        p.data = op->msg;
        p.data_len = op->msg_len;
    } else {
        p.digest = digest;
        p.digest_len = digest_len;
    }
    if (verify) {
        check.key = key;
        check.op = op;
        check.md = md;
        check.digest = digest;
        check.digest_len = digest_len;
        p.verify = lurk_key_verify;
        p.verify_arg = &check;
    }

    err = lurk_key_client(key, &client, &d);
    if (err == LURK_OK) {
        err = lurk_client_sign_start(client, &p, &cop, &d);
    }
    if (err == LURK_OK) {
        err = lurk_key_await(cop, sig, siglen, &d);
    }
    if (err != LURK_OK) {
        if (err == LURK_ERR_BAD_SIGNATURE) {
            OPENSSL_cleanse(sig, *siglen);
            *siglen = 0;
        }
        return lurk_key_fail(key->prov, key->key_id, opname, err, &d);
    }
    return 1;
}

int lurk_key_decrypt(LURK_KEY *key, lurk_decrypt_params *p, unsigned char *out,
                     size_t *outlen)
{
    char opname[64];
    LURK_CLIENT *client = NULL;
    LURK_CLIENT_OP *cop = NULL;
    lurk_detail d = { 0 };
    lurk_err err;

    if (p->mode == LURK_DEC_OAEP) {
        snprintf(opname, sizeof(opname), "Decrypt oaep/%s", lurk_md_name(p->oaep_md));
    } else {
        snprintf(opname, sizeof(opname), "Decrypt %s", lurk_dec_mode_name(p->mode));
    }
    if (!lurk_key_usable(key, opname)) {
        return 0;
    }
    p->key_id = key->key_id;
    p->key_id_checked = 1;
    err = lurk_key_client(key, &client, &d);
    if (err == LURK_OK) {
        err = lurk_client_decrypt_start(client, p, &cop, &d);
    }
    if (err == LURK_OK) {
        err = lurk_key_await(cop, out, outlen, &d);
    }
    if (err != LURK_OK) {
        return lurk_key_fail(key->prov, key->key_id, opname, err, &d);
    }
    return 1;
}

int lurk_key_derive(LURK_KEY *key, const LURK_KEY *peer, unsigned char *out, size_t *outlen)
{
    LURK_CLIENT *client = NULL;
    LURK_CLIENT_OP *cop = NULL;
    lurk_detail d = { 0 };
    lurk_err err;

    if (!lurk_key_usable(key, "Agree")) {
        return 0;
    }
    err = lurk_key_client(key, &client, &d);
    if (err == LURK_OK) {
        err = lurk_client_agree_start(client, key->key_id, peer->spki, peer->spki_len, &cop, &d);
    }
    if (err == LURK_OK) {
        err = lurk_key_await(cop, out, outlen, &d);
    }
    if (err != LURK_OK) {
        return lurk_key_fail(key->prov, key->key_id, "Agree", err, &d);
    }
    return 1;
}
