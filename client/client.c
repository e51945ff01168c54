/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client.c - LURK_CLIENT: configuration, the connection pool, failover and
 * the six transactions (lurk_client.h is the contract).
 *
 * Pool: per server, a stack of idle connections under one mutex per client.
 * A call pops a connection (or makes one lazily), posts on it without the
 * lock held, and pushes it back; a connection that saw a transport error is
 * freed instead, since its state is unknown.
 *
 * Fork: every client sits in a process-wide registry.  A pthread_atfork
 * handler (registered once) takes the registry lock and every client's lock
 * before fork, and in the child forgets every idle connection and the TLS
 * session share without cleaning them up: curl would write a close_notify on
 * a socket the parent still uses.  The forgotten structs leak (bounded by the
 * pool size).  Connections also carry the pid and fork generation they were
 * made in and are checked before use; the pid comes from a page the kernel
 * zeroes in a child (MADV_WIPEONFORK), so a call costs no getpid(2).
 *
 * Failover: servers are tried in order starting with the last one that
 * answered; unreachable, timeout, TLS failure, 429 and 503 move on, any
 * other answer is final.  The whole call, failover included, is bounded by
 * timeout_ms.
 */
#include "lurk_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/conf.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "lurk_keyid.h"
#include "lurk_transport.h"

#define LURK_CLIENT_POOL_MAX 32
#define LURK_CLIENT_MAX_CRED (1024 * 1024)

typedef struct {
    LURK_CONN *conn;
    pid_t pid;
    unsigned gen;
} lurk_pooled;

typedef struct {
    lurk_transport_server srv;
    lurk_pooled idle[LURK_CLIENT_POOL_MAX];
    size_t n_idle;
} lurk_client_server;

struct lurk_client_st {
    lurk_client_server servers[LURK_CLIENT_MAX_SERVERS];
    size_t n_servers;
    lurk_transport_blob ca, cert, key;
    lurk_transport_opts opts;
    long timeout_ms;

    pthread_mutex_t lock;     /* guards the idle stacks and share */
    LURK_SHARE *share;        /* this process's; NULL until the first connection */
    pid_t share_pid;          /* the process the share was made in */
    int preferred;            /* index of the last server that answered (atomic) */

    LURK_CLIENT *reg_next;    /* registry, under lurk_registry_lock */
    LURK_CLIENT *reg_prev;
};

/* ------------------------------------------------------------------------ */
/* Fork safety                                                                */

static pthread_mutex_t lurk_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static LURK_CLIENT *lurk_registry;
static unsigned lurk_fork_gen;  /* bumped in the child; read under a client's lock */
static pthread_once_t lurk_atfork_once = PTHREAD_ONCE_INIT;

static void lurk_fork_prepare(void)
{
    pthread_mutex_lock(&lurk_registry_lock);
    for (LURK_CLIENT *c = lurk_registry; c != NULL; c = c->reg_next) {
        pthread_mutex_lock(&c->lock);
    }
}

static void lurk_fork_parent(void)
{
    for (LURK_CLIENT *c = lurk_registry; c != NULL; c = c->reg_next) {
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&lurk_registry_lock);
}

static void lurk_fork_child(void)
{
    lurk_fork_gen++;
    for (LURK_CLIENT *c = lurk_registry; c != NULL; c = c->reg_next) {
        /* Forget, never clean up: the parent still owns these sockets. */
        for (size_t i = 0; i < c->n_servers; i++) {
            memset(c->servers[i].idle, 0, sizeof(c->servers[i].idle));
            c->servers[i].n_idle = 0;
        }
        c->share = NULL;
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&lurk_registry_lock);
}

static void lurk_atfork_register(void)
{
    pthread_atfork(lurk_fork_prepare, lurk_fork_parent, lurk_fork_child);
}

/*
 * This process's pid without a system call per use: it is kept in a page
 * the kernel zeroes in every child (MADV_WIPEONFORK, Linux 4.14), so a pid
 * read back as 0 means "a new process (or the first use): ask again".  The
 * kernel does this even for a child made without the fork handlers above.
 * Where the page cannot be had, every call asks.
 */
static pid_t *lurk_pid_page;
static pthread_once_t lurk_pid_once = PTHREAD_ONCE_INIT;

static void lurk_pid_page_init(void)
{
    long size = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        return;
    }
#ifdef MADV_WIPEONFORK
    if (madvise(p, (size_t)size, MADV_WIPEONFORK) == 0) {
        lurk_pid_page = p;
        return;
    }
#endif
    munmap(p, (size_t)size);
}

static pid_t lurk_self_pid(void)
{
    pid_t pid;

    pthread_once(&lurk_pid_once, lurk_pid_page_init);
    if (lurk_pid_page == NULL) {
        return getpid();
    }
    pid = __atomic_load_n(lurk_pid_page, __ATOMIC_RELAXED);
    if (pid == 0) {
        pid = getpid();
        __atomic_store_n(lurk_pid_page, pid, __ATOMIC_RELAXED);
    }
    return pid;
}

static void lurk_registry_add(LURK_CLIENT *c)
{
    pthread_once(&lurk_atfork_once, lurk_atfork_register);
    pthread_mutex_lock(&lurk_registry_lock);
    c->reg_prev = NULL;
    c->reg_next = lurk_registry;
    if (lurk_registry != NULL) {
        lurk_registry->reg_prev = c;
    }
    lurk_registry = c;
    pthread_mutex_unlock(&lurk_registry_lock);
}

static void lurk_registry_remove(LURK_CLIENT *c)
{
    pthread_mutex_lock(&lurk_registry_lock);
    if (c->reg_prev != NULL) {
        c->reg_prev->reg_next = c->reg_next;
    } else if (lurk_registry == c) {
        lurk_registry = c->reg_next;
    }
    if (c->reg_next != NULL) {
        c->reg_next->reg_prev = c->reg_prev;
    }
    c->reg_next = c->reg_prev = NULL;
    pthread_mutex_unlock(&lurk_registry_lock);
}

/* ------------------------------------------------------------------------ */
/* Details                                                                    */

static void lurk_detail_reset(lurk_detail *d)
{
    if (d != NULL) {
        d->msg[0] = '\0';
        d->status = 0;
        d->retry_after_ms = 0;
    }
}

static void lurk_detail_set(lurk_detail *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void lurk_detail_set(lurk_detail *d, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                              */

static void lurk_blob_clear(lurk_transport_blob *b)
{
    OPENSSL_clear_free(b->data, b->len);
    b->data = NULL;
    b->len = 0;
}

/* Reads a credential file now, so that connecting later needs no file
 * access (workers may have dropped privileges or chrooted by then). */
static lurk_err lurk_read_cred(const char *what, const char *path, lurk_transport_blob *out,
                               lurk_detail *d)
{
    lurk_err err = LURK_ERR_CONFIG;
    FILE *f = NULL;
    struct stat st;
    unsigned char *data = NULL;
    size_t n;

    f = fopen(path, "rb");
    if (f == NULL) {
        lurk_detail_set(d, "%s %s: %s", what, path, strerror(errno));
        goto end;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0
        || st.st_size > LURK_CLIENT_MAX_CRED) {
        lurk_detail_set(d, "%s %s: not a regular, non-empty file of at most %d bytes", what,
                        path, LURK_CLIENT_MAX_CRED);
        goto end;
    }
    data = OPENSSL_malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    n = fread(data, 1, (size_t)st.st_size, f);
    if (n != (size_t)st.st_size) {
        lurk_detail_set(d, "%s %s: short read", what, path);
        goto end;
    }
    data[n] = '\0';
    if (strstr((const char *)data, "-----BEGIN ") == NULL) {
        lurk_detail_set(d, "%s %s: not PEM", what, path);
        goto end;
    }
    out->data = data;
    out->len = n;
    data = NULL;
    err = LURK_OK;

end:
    if (data != NULL) {
        OPENSSL_clear_free(data, (size_t)st.st_size + 1);
    }
    if (f != NULL) {
        fclose(f);
    }
    return err;
}

static lurk_err lurk_parse_servers(LURK_CLIENT *c, const char *list, lurk_detail *d)
{
    const char *p = list;
    char entry[LURK_TRANSPORT_URL_MAX];
    char why[sizeof(d->msg)];
    lurk_err err;

    while (*p != '\0') {
        size_t n;

        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        n = strcspn(p, " ,\t\n");
        if (n >= sizeof(entry)) {
            lurk_detail_set(d, "server \"%.64s...\": too long", p);
            return LURK_ERR_CONFIG;
        }
        if (c->n_servers == LURK_CLIENT_MAX_SERVERS) {
            lurk_detail_set(d, "more than %d servers", LURK_CLIENT_MAX_SERVERS);
            return LURK_ERR_CONFIG;
        }
        memcpy(entry, p, n);
        entry[n] = '\0';
        p += n;
        why[0] = '\0';
        err = lurk_transport_parse_server(entry, &c->servers[c->n_servers].srv, why,
                                          sizeof(why));
        if (err != LURK_OK) {
            lurk_detail_set(d, "%s", why);
            return err;
        }
        c->n_servers++;
    }
    if (c->n_servers == 0) {
        lurk_detail_set(d, "no key server configured");
        return LURK_ERR_CONFIG;
    }
    return LURK_OK;
}

lurk_err lurk_client_new(const lurk_client_config *cfg, LURK_CLIENT **out, lurk_detail *d)
{
    lurk_err err = LURK_ERR_INVALID_ARG;
    LURK_CLIENT *c = NULL;
    int need_tls = 0;

    lurk_detail_reset(d);
    if (out != NULL) {
        *out = NULL;
    }
    if (cfg == NULL || out == NULL) {
        goto end;
    }
    if (cfg->servers == NULL) {
        lurk_detail_set(d, "no key server configured");
        err = LURK_ERR_CONFIG;
        goto end;
    }
    err = LURK_ERR_NOMEM;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto end;
    }
    pthread_mutex_init(&c->lock, NULL);
    err = lurk_parse_servers(c, cfg->servers, d);
    if (err != LURK_OK) {
        goto end;
    }
    for (size_t i = 0; i < c->n_servers; i++) {
        if (c->servers[i].srv.unix_path[0] == '\0') {
            need_tls = 1;
        }
    }
    if (need_tls) {
        if (cfg->ca_file == NULL || cfg->cert_file == NULL || cfg->key_file == NULL) {
            lurk_detail_set(d, "https:// servers need a CA, a client certificate and its key");
            err = LURK_ERR_CONFIG;
            goto end;
        }
        err = lurk_read_cred("CA", cfg->ca_file, &c->ca, d);
        if (err == LURK_OK) {
            err = lurk_read_cred("client certificate", cfg->cert_file, &c->cert, d);
        }
        if (err == LURK_OK) {
            err = lurk_read_cred("client key", cfg->key_file, &c->key, d);
        }
        if (err != LURK_OK) {
            goto end;
        }
    }
    if (cfg->connect_timeout_ms < 0 || cfg->timeout_ms < 0) {
        lurk_detail_set(d, "negative timeout");
        err = LURK_ERR_CONFIG;
        goto end;
    }
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : LURK_CLIENT_DEFAULT_TIMEOUT_MS;
    c->opts.connect_timeout_ms = cfg->connect_timeout_ms > 0
                                     ? cfg->connect_timeout_ms
                                     : LURK_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS;
    if (c->opts.connect_timeout_ms > c->timeout_ms) {
        c->opts.connect_timeout_ms = c->timeout_ms;
    }
    c->opts.max_response = cfg->max_response > 0 ? cfg->max_response : LURK_MAX_MESSAGE;
    c->opts.ca = &c->ca;
    c->opts.cert = &c->cert;
    c->opts.key = &c->key;
    /* No curl_global_init here: the provider creates clients from its init,
     * which may run inside OpenSSL's config loading, and curl's init loads
     * the OpenSSL config again (a re-entrant RUN_ONCE).  The first
     * connection initialises curl instead. */
    err = LURK_OK;
    lurk_registry_add(c);
    *out = c;
    c = NULL;

end:
    if (c != NULL) {
        pthread_mutex_destroy(&c->lock);
        lurk_blob_clear(&c->ca);
        lurk_blob_clear(&c->cert);
        lurk_blob_clear(&c->key);
        free(c);
    }
    return err;
}

void lurk_client_free(LURK_CLIENT *c)
{
    pid_t pid;

    if (c == NULL) {
        return;
    }
    lurk_registry_remove(c);
    pid = lurk_self_pid();
    for (size_t i = 0; i < c->n_servers; i++) {
        for (size_t j = 0; j < c->servers[i].n_idle; j++) {
            lurk_pooled *pc = &c->servers[i].idle[j];

            if (pc->pid == pid && pc->gen == lurk_fork_gen) {
                lurk_conn_free(pc->conn);
            }
        }
        c->servers[i].n_idle = 0;
    }
    if (c->share_pid == pid) {
        lurk_share_free(c->share); /* else inherited: the parent's to free */
    }
    pthread_mutex_destroy(&c->lock);
    /* Blobs are referenced (not copied) by connections; every connection of
     * this process is gone now, inherited ones are never used again. */
    lurk_blob_clear(&c->ca);
    lurk_blob_clear(&c->cert);
    lurk_blob_clear(&c->key);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Pool                                                                       */

static lurk_err lurk_pool_get(LURK_CLIENT *c, size_t s, lurk_pooled *out, lurk_detail *d)
{
    lurk_client_server *cs = &c->servers[s];
    pid_t pid = lurk_self_pid();
    lurk_err err = LURK_OK;
    LURK_SHARE *share;
    char why[sizeof(d->msg)];

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->lock);
    while (cs->n_idle > 0) {
        lurk_pooled pc = cs->idle[--cs->n_idle];

        if (pc.pid == pid && pc.gen == lurk_fork_gen) {
            *out = pc;
            pthread_mutex_unlock(&c->lock);
            return LURK_OK;
        }
        /* Inherited without a fork handler having run: forget it. */
    }
    if (c->share != NULL && c->share_pid != pid) {
        c->share = NULL; /* inherited without the fork handlers: forget it */
    }
    if (c->share == NULL) {
        err = lurk_share_new(&c->share);
        if (err != LURK_OK) {
            c->share = NULL; /* connections then simply do not share sessions */
        }
        c->share_pid = pid;
    }
    share = c->share;
    out->pid = pid;
    out->gen = lurk_fork_gen;
    pthread_mutex_unlock(&c->lock);

    why[0] = '\0';
    err = lurk_conn_new(&cs->srv, &c->opts, share, &out->conn, why, sizeof(why));
    if (err != LURK_OK) {
        lurk_detail_set(d, "%s", why);
    }
    return err;
}

/* `pc` was taken by lurk_pool_get in this call, so pc->pid is this
 * process's. */
static void lurk_pool_put(LURK_CLIENT *c, size_t s, lurk_pooled *pc)
{
    lurk_client_server *cs = &c->servers[s];
    int keep = 0, ours;

    pthread_mutex_lock(&c->lock);
    ours = pc->gen == lurk_fork_gen; /* else a fork happened meanwhile: forget it */
    if (ours && cs->n_idle < LURK_CLIENT_POOL_MAX) {
        cs->idle[cs->n_idle++] = *pc;
        keep = 1;
    }
    pthread_mutex_unlock(&c->lock);
    if (!keep && ours) {
        lurk_conn_free(pc->conn); /* pool full */
    }
    pc->conn = NULL;
}

/* ------------------------------------------------------------------------ */
/* One call: encode, post with failover, decode, check                        */

static int lurk_moves_on(lurk_err err)
{
    return lurk_err_is_transient(err) || err == LURK_ERR_TLS;
}

/* Turns an HTTP reply into `resp` and the call's result. */
static lurk_err lurk_client_check_reply(const lurk_client_server *cs, const lurk_request *req,
                                        const lurk_transport_reply *reply, lurk_response *resp,
                                        lurk_detail *d)
{
    char why[256];
    lurk_err err;

    why[0] = '\0';
    err = lurk_proto_decode_response(reply->body, reply->body_len, req->type, resp, why,
                                     sizeof(why));
    if (err != LURK_OK) {
        err = lurk_err_from_status((int)reply->http_status);
        if (err == LURK_OK) {
            err = LURK_ERR_PROTOCOL;
        }
        if (d != NULL) {
            d->status = (int)reply->http_status;
        }
        lurk_detail_set(d, "%s: HTTP %ld with an invalid LURK body: %s", cs->srv.name,
                        reply->http_status, why);
        return err;
    }
    if (resp->status != reply->http_status) {
        lurk_detail_set(d, "%s: Status %d differs from HTTP status %ld", cs->srv.name,
                        resp->status, reply->http_status);
        return LURK_ERR_PROTOCOL;
    }
    /* Only a LurkResponse to an unparseable request may lack the echo. */
    if ((resp->request_id[0] != '\0' || resp->status == 200)
        && strcmp(resp->request_id, req->request_id) != 0) {
        lurk_detail_set(d, "%s: RequestId not echoed", cs->srv.name);
        return LURK_ERR_PROTOCOL;
    }
    if (resp->status == 200 && resp->type != req->type) {
        lurk_detail_set(d, "%s: answer to another transaction", cs->srv.name);
        return LURK_ERR_PROTOCOL;
    }
    err = lurk_err_from_status(resp->status);
    if (d != NULL) {
        d->status = resp->status;
        d->retry_after_ms = resp->retry_after_ms;
    }
    if (err != LURK_OK) {
        lurk_detail_set(d, "%s: %s", cs->srv.name,
                        resp->description[0] != '\0' ? resp->description : "(no description)");
    }
    return err;
}

/* `secret`: the reply carries a secret (decrypt, agree); wipe the raw copy. */
static lurk_err lurk_client_call(LURK_CLIENT *c, lurk_request *req, lurk_response *resp,
                                 int secret, lurk_detail *d)
{
    lurk_err err;
    char *json = NULL;
    size_t json_len = 0;
    long deadline;
    size_t start, s = 0;
    char why[sizeof(d->msg)];

    lurk_detail_reset(d);
    err = lurk_proto_new_request_id(req->request_id);
    if (err != LURK_OK) {
        lurk_detail_set(d, "cannot make a request id");
        goto end;
    }
    err = lurk_proto_encode_request(req, &json, &json_len);
    if (err != LURK_OK) {
        lurk_detail_set(d, "cannot encode the %s request", lurk_tx_name(req->type));
        goto end;
    }
    deadline = lurk_transport_now_ms() + c->timeout_ms;
    start = (size_t)__atomic_load_n(&c->preferred, __ATOMIC_RELAXED) % c->n_servers;
    err = LURK_ERR_UNREACHABLE;
    for (size_t i = 0; i < c->n_servers; i++) {
        lurk_pooled pc;
        lurk_transport_reply reply;
        long left = deadline - lurk_transport_now_ms();

        s = (start + i) % c->n_servers;
        if (left <= 0) {
            if (i == 0) {
                left = 1;
            } else {
                err = LURK_ERR_TIMEOUT;
                lurk_detail_set(d, "no answer within %ld ms (%zu of %zu servers tried)",
                                c->timeout_ms, i, c->n_servers);
                break;
            }
        }
        lurk_response_clear(resp);
        lurk_detail_reset(d);
        err = lurk_pool_get(c, s, &pc, d);
        if (err != LURK_OK) {
            if (lurk_moves_on(err)) {
                continue;
            }
            break;
        }
        why[0] = '\0';
        err = lurk_conn_post(pc.conn, json, json_len, left, &reply, why, sizeof(why));
        if (err != LURK_OK) {
            lurk_detail_set(d, "%s", why);
            if (pc.gen == lurk_fork_gen) {
                lurk_conn_free(pc.conn);
            }
            if (lurk_moves_on(err)) {
                continue;
            }
            break;
        }
        err = lurk_client_check_reply(&c->servers[s], req, &reply, resp, d);
        if (secret) {
            lurk_conn_cleanse(pc.conn);
        }
        if (err == LURK_ERR_PROTOCOL) {
            /* not a LURK answer to this request (another id, another
             * transaction, not LURK at all): the connection may be out
             * of step, and a new one costs only a resumed handshake */
            if (pc.gen == lurk_fork_gen) {
                lurk_conn_free(pc.conn);
            }
        } else {
            lurk_pool_put(c, s, &pc);
        }
        if (!lurk_moves_on(err)) {
            break;
        }
    }
    if (err == LURK_OK) {
        __atomic_store_n(&c->preferred, (int)s, __ATOMIC_RELAXED);
    }

end:
    free(json);
    return err;
}

/* Copies a reply value into a caller buffer; *len is capacity in, size out. */
static lurk_err lurk_copy_out(const lurk_buf *v, unsigned char *out, size_t *len,
                              const char *what, lurk_detail *d)
{
    if (v->data == NULL || v->len == 0) {
        lurk_detail_set(d, "empty %s in the reply", what);
        return LURK_ERR_PROTOCOL;
    }
    if (out == NULL || v->len > *len) {
        lurk_detail_set(d, "%s of %zu bytes does not fit in %zu", what, v->len,
                        out == NULL ? (size_t)0 : *len);
        *len = v->len;
        return LURK_ERR_INVALID_ARG;
    }
    memcpy(out, v->data, v->len);
    *len = v->len;
    return LURK_OK;
}

static lurk_err lurk_set_key_id(lurk_request *req, const char *key_id, lurk_detail *d)
{
    lurk_keyid id;
    size_t n;

    if (key_id == NULL) {
        lurk_detail_set(d, "no key id");
        return LURK_ERR_INVALID_ARG;
    }
    n = strlen(key_id);
    if (n == 0 || n > LURK_KEY_ID_TEXT_MAX || lurk_keyid_parse(key_id, &id) != LURK_OK) {
        lurk_detail_set(d, "\"%.*s\" is not a key id (the Base32 strong key id, e.g. from "
                        "`lurk keyid FILE`)", n > 64 ? 64 : (int)n, key_id);
        return LURK_ERR_INVALID_ARG;
    }
    memcpy(req->key_id, key_id, n + 1);
    return LURK_OK;
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                               */

lurk_err lurk_client_hello(LURK_CLIENT *c, lurk_hello_info *info, unsigned char *state,
                           size_t *state_len, lurk_detail *d)
{
    lurk_request req;
    lurk_response resp;
    lurk_err err;

    lurk_request_init(&req);
    lurk_response_init(&resp);
    if (c == NULL) {
        lurk_detail_reset(d);
        err = LURK_ERR_INVALID_ARG;
        goto end;
    }
    req.type = LURK_TX_HELLO;
    err = lurk_client_call(c, &req, &resp, 0, d);
    if (err != LURK_OK) {
        goto end;
    }
    if (info != NULL) {
        *info = resp.hello;
    }
    if (state != NULL && state_len != NULL) {
        if (resp.state.len > *state_len) {
            lurk_detail_set(d, "State of %zu bytes does not fit in %zu", resp.state.len,
                            *state_len);
            *state_len = resp.state.len;
            err = LURK_ERR_INVALID_ARG;
            goto end;
        }
        if (resp.state.len > 0) {
            memcpy(state, resp.state.data, resp.state.len);
        }
        *state_len = resp.state.len;
    } else if (state_len != NULL) {
        *state_len = resp.state.len;
    }

end:
    lurk_response_clear(&resp);
    return err;
}

lurk_err lurk_client_ping(LURK_CLIENT *c, lurk_detail *d)
{
    lurk_request req;
    lurk_response resp;
    lurk_err err;

    lurk_request_init(&req);
    lurk_response_init(&resp);
    if (c == NULL) {
        lurk_detail_reset(d);
        err = LURK_ERR_INVALID_ARG;
        goto end;
    }
    req.type = LURK_TX_PING;
    err = lurk_client_call(c, &req, &resp, 0, d);

end:
    lurk_response_clear(&resp);
    return err;
}

lurk_err lurk_client_public_key(LURK_CLIENT *c, const char *key_id, lurk_key_type *type,
                                char policy[32], unsigned char **spki, size_t *spki_len,
                                lurk_detail *d)
{
    lurk_request req;
    lurk_response resp;
    lurk_keyid id;
    lurk_err err;
    unsigned char *copy = NULL;

    lurk_request_init(&req);
    lurk_response_init(&resp);
    lurk_detail_reset(d);
    if (spki != NULL) {
        *spki = NULL;
    }
    if (c == NULL || spki == NULL || spki_len == NULL) {
        err = LURK_ERR_INVALID_ARG;
        goto end;
    }
    err = lurk_set_key_id(&req, key_id, d);
    if (err != LURK_OK) {
        goto end;
    }
    err = lurk_keyid_parse(key_id, &id);
    if (err != LURK_OK) {
        lurk_detail_set(d, "\"%s\" is not a key id", key_id);
        err = LURK_ERR_INVALID_ARG;
        goto end;
    }
    req.type = LURK_TX_PUBLIC_KEY;
    err = lurk_client_call(c, &req, &resp, 0, d);
    if (err != LURK_OK) {
        goto end;
    }
    if (resp.spki.data == NULL || resp.spki.len == 0) {
        lurk_detail_set(d, "no PublicKey in the reply");
        err = LURK_ERR_PROTOCOL;
        goto end;
    }
    err = lurk_keyid_check_spki(&id, resp.spki.data, resp.spki.len);
    if (err != LURK_OK) {
        lurk_detail_set(d, "the server's key for %s has another id", key_id);
        err = LURK_ERR_KEY_MISMATCH;
        goto end;
    }
    copy = malloc(resp.spki.len);
    if (copy == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    memcpy(copy, resp.spki.data, resp.spki.len);
    if (type != NULL) {
        *type = resp.key_type;
    }
    if (policy != NULL) {
        snprintf(policy, 32, "%s", resp.policy);
    }
    *spki = copy;
    *spki_len = resp.spki.len;
    copy = NULL;

end:
    free(copy);
    lurk_response_clear(&resp);
    return err;
}

lurk_err lurk_client_sign(LURK_CLIENT *c, const lurk_sign_params *p, unsigned char *sig,
                          size_t *siglen, lurk_detail *d)
{
    lurk_request req;
    lurk_response resp;
    lurk_err err = LURK_ERR_INVALID_ARG;

    lurk_request_init(&req);
    lurk_response_init(&resp);
    lurk_detail_reset(d);
    if (c == NULL || p == NULL || sig == NULL || siglen == NULL) {
        goto end;
    }
    if ((p->data == NULL) == (p->digest == NULL)) {
        lurk_detail_set(d, "exactly one of data and digest is needed");
        goto end;
    }
    if (p->alg == LURK_SIG_RSA_PSS && p->salt_len < 0) {
        lurk_detail_set(d, "rsa-pss needs a salt length >= 0");
        goto end;
    }
    err = lurk_set_key_id(&req, p->key_id, d);
    if (err != LURK_OK) {
        goto end;
    }
    req.type = LURK_TX_SIGN;
    req.sig_alg = p->alg;
    req.md = p->md;
    req.salt_len = p->alg == LURK_SIG_RSA_PSS ? p->salt_len : -1;
    /* Borrowed pointers: the request is never cleared, only encoded. */
    req.data.data = (unsigned char *)p->data;
    req.data.len = p->data != NULL ? p->data_len : 0;
    req.digest.data = (unsigned char *)p->digest;
    req.digest.len = p->digest != NULL ? p->digest_len : 0;
    err = lurk_client_call(c, &req, &resp, 0, d);
    if (err != LURK_OK) {
        goto end;
    }
    err = lurk_copy_out(&resp.value, sig, siglen, "signature", d);

end:
    lurk_response_clear(&resp);
    return err;
}

lurk_err lurk_client_decrypt(LURK_CLIENT *c, const lurk_decrypt_params *p, unsigned char *out,
                             size_t *outlen, lurk_detail *d)
{
    lurk_request req;
    lurk_response resp;
    lurk_err err = LURK_ERR_INVALID_ARG;

    lurk_request_init(&req);
    lurk_response_init(&resp);
    lurk_detail_reset(d);
    if (c == NULL || p == NULL || out == NULL || outlen == NULL || p->in == NULL
        || p->in_len == 0) {
        goto end;
    }
    err = lurk_set_key_id(&req, p->key_id, d);
    if (err != LURK_OK) {
        goto end;
    }
    req.type = LURK_TX_DECRYPT;
    req.dec_mode = p->mode;
    /* Each mode's parameters only; the others are ignored, not sent. */
    if (p->mode == LURK_DEC_TLS_PREMASTER) {
        req.client_version = p->client_version;
        req.alt_version = p->alt_version;
    } else {
        req.oaep_md = p->oaep_md;
        req.label.data = (unsigned char *)p->label;
        req.label.len = p->label != NULL ? p->label_len : 0;
    }
    req.ciphertext.data = (unsigned char *)p->in;
    req.ciphertext.len = p->in_len;
    err = lurk_client_call(c, &req, &resp, 1, d);
    if (err != LURK_OK) {
        goto end;
    }
    if (p->mode == LURK_DEC_TLS_PREMASTER && resp.value.len != 48) {
        lurk_detail_set(d, "premaster of %zu bytes, not 48", resp.value.len);
        err = LURK_ERR_PROTOCOL;
        goto end;
    }
    err = lurk_copy_out(&resp.value, out, outlen, "plaintext", d);

end:
    lurk_response_clear(&resp); /* cleanses the plaintext */
    return err;
}

lurk_err lurk_client_agree(LURK_CLIENT *c, const char *key_id, const unsigned char *peer_spki,
                           size_t peer_len, unsigned char *out, size_t *outlen, lurk_detail *d)
{
    lurk_request req;
    lurk_response resp;
    lurk_err err = LURK_ERR_INVALID_ARG;

    lurk_request_init(&req);
    lurk_response_init(&resp);
    lurk_detail_reset(d);
    if (c == NULL || peer_spki == NULL || peer_len == 0 || out == NULL || outlen == NULL) {
        goto end;
    }
    err = lurk_set_key_id(&req, key_id, d);
    if (err != LURK_OK) {
        goto end;
    }
    req.type = LURK_TX_AGREE;
    req.peer_key.data = (unsigned char *)peer_spki;
    req.peer_key.len = peer_len;
    err = lurk_client_call(c, &req, &resp, 1, d);
    if (err != LURK_OK) {
        goto end;
    }
    err = lurk_copy_out(&resp.value, out, outlen, "shared secret", d);

end:
    lurk_response_clear(&resp); /* cleanses the secret */
    return err;
}

/* ------------------------------------------------------------------------ */
/* openssl.cnf                                                                */

static const char *lurk_cnf_get(const CONF *conf, const char *sect, const char *name)
{
    const char *v = NCONF_get_string(conf, sect, name);

    if (v == NULL) {
        ERR_clear_error();
    }
    return v;
}

static lurk_err lurk_cnf_ms(const char *file, const char *name, const char *s, long *out,
                            lurk_detail *d)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > 3600L * 1000) {
        lurk_detail_set(d, "%s: %s: \"%.32s\" is not a number of milliseconds", file, name, s);
        return LURK_ERR_CONFIG;
    }
    *out = v;
    return LURK_OK;
}

static lurk_err lurk_cnf_dup(const CONF *conf, const char *sect, const char *name, char **out)
{
    const char *v = lurk_cnf_get(conf, sect, name);

    if (v == NULL) {
        return LURK_OK;
    }
    *out = strdup(v);
    return *out != NULL ? LURK_OK : LURK_ERR_NOMEM;
}

lurk_err lurk_client_cnf_load(const char *file, lurk_client_cnf *out, lurk_detail *d)
{
    CONF *conf = NULL;
    long eline = 0;
    const char *init, *prov, *sect, *v;
    lurk_err err = LURK_ERR_NOMEM;

    memset(out, 0, sizeof(*out));
    lurk_detail_reset(d);
    conf = NCONF_new_ex(NULL, NULL);
    if (conf == NULL) {
        goto end;
    }
    if (NCONF_load(conf, file, &eline) <= 0) {
        ERR_clear_error();
        if (eline > 0) {
            lurk_detail_set(d, "%s: syntax error on line %ld", file, eline);
            err = LURK_ERR_CONFIG;
        } else {
            lurk_detail_set(d, "%s: cannot read it", file);
            err = LURK_ERR_IO;
        }
        goto end;
    }
    init = lurk_cnf_get(conf, NULL, "openssl_conf");
    prov = init != NULL ? lurk_cnf_get(conf, init, "providers") : NULL;
    sect = prov != NULL ? lurk_cnf_get(conf, prov, "lurk") : NULL;
    if (sect == NULL) {
        err = LURK_OK;
        goto end;
    }
    out->found = 1;
    err = lurk_cnf_dup(conf, sect, "lurk-servers", &out->servers);
    if (err == LURK_OK) {
        err = lurk_cnf_dup(conf, sect, "lurk-ca", &out->ca_file);
    }
    if (err == LURK_OK) {
        err = lurk_cnf_dup(conf, sect, "lurk-cert", &out->cert_file);
    }
    if (err == LURK_OK) {
        err = lurk_cnf_dup(conf, sect, "lurk-key", &out->key_file);
    }
    v = lurk_cnf_get(conf, sect, "lurk-timeout");
    if (err == LURK_OK && v != NULL) {
        err = lurk_cnf_ms(file, "lurk-timeout", v, &out->timeout_ms, d);
    }
    v = lurk_cnf_get(conf, sect, "lurk-connect-timeout");
    if (err == LURK_OK && v != NULL) {
        err = lurk_cnf_ms(file, "lurk-connect-timeout", v, &out->connect_timeout_ms, d);
    }

end:
    NCONF_free(conf);
    if (err != LURK_OK) {
        lurk_client_cnf_clear(out);
    }
    return err;
}

void lurk_client_cnf_clear(lurk_client_cnf *cnf)
{
    if (cnf == NULL) {
        return;
    }
    free(cnf->servers);
    free(cnf->ca_file);
    free(cnf->cert_file);
    free(cnf->key_file);
    memset(cnf, 0, sizeof(*cnf));
}
