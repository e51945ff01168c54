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
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
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
#include <openssl/rand.h>

#include "lurk_encoding.h"
#include "lurk_keyid.h"
#include "lurk_transport.h"

#define LURK_CLIENT_MUX_MAX 256 /* connections per server and process, idle ones evicted */
#define LURK_CLIENT_MAX_CRED (1024 * 1024)

typedef struct lurk_mux_st lurk_mux;

/* One thread's connection to one server.  Its owner thread sends on it and
 * reads from it; `lock` guards the connection and the queue, since an
 * abandoned operation may be let go from another thread. */
struct lurk_mux_st {
    lurk_mux *next;           /* the server's list, under the client lock */
    pthread_t owner;
    pid_t pid;
    unsigned gen;
    int users;                /* atomic: lookups in progress + requests in flight */
    pthread_mutex_t lock;
    LURK_CONN *conn;
    LURK_CLIENT_OP *head;     /* requests sent, in order: replies come in this order */
    LURK_CLIENT_OP *tail;
    size_t n_sent;
    LURK_CLIENT_OP *reader;   /* the waiting operation that polls the socket */
};

typedef struct {
    lurk_transport_server srv;
    lurk_mux *muxes;
    size_t n_muxes;
} lurk_client_server;

struct lurk_client_st {
    lurk_client_server servers[LURK_CLIENT_MAX_SERVERS];
    size_t n_servers;
    lurk_transport_blob ca, cert, key;
    lurk_transport_opts opts;
    long timeout_ms;

    pthread_mutex_t lock;     /* guards the mux lists and share */
    LURK_SHARE *share;        /* this process's; NULL until the first connection */
    pid_t share_pid;          /* the process the share was made in */
    int preferred;            /* index of the last server that answered (atomic) */

    LURK_CLIENT *reg_next;    /* registry, under lurk_registry_lock */
    LURK_CLIENT *reg_prev;
};

enum {
    LURK_OP_IDLE,     /* to be sent (first try, failover or resend) */
    LURK_OP_SENT,     /* in a mux queue, awaiting its reply */
    LURK_OP_REPLIED,  /* the reply is in op->body */
    LURK_OP_FAILED,   /* the connection failed under it: err, d, lost */
    LURK_OP_DONE      /* err is the result */
};

struct lurk_client_op_st {
    LURK_CLIENT *c;
    int refs;                 /* atomic: the caller + the mux queue while sent */
    int state;                /* under the mux lock while sent */
    lurk_tx type;
    int premaster;            /* a TLS premaster: always 48 bytes */
    char request_id[LURK_REQUEST_ID_MAX + 1];
    char *json;
    size_t json_len;
    long deadline;
    long sent_ms;             /* when the request was written */
    size_t start;             /* first server tried */
    size_t tries;             /* servers tried so far */
    size_t server;            /* the current one */
    int blocking;             /* the caller polls the socket itself */
    int detached;             /* the caller is gone or has given up: drop the reply */
    int reused;               /* sent on a connection that was already up */
    int resent;               /* sent again once after a lost kept-alive connection */
    int lost;                 /* FAILED: the connection was lost */
    int partial;              /* FAILED: part of the reply had arrived */
    lurk_mux *mux;            /* while sent */
    LURK_CLIENT_OP *next;     /* in the mux queue */
    lurk_err err;
    lurk_detail d;
    long http_status;
    char *body;
    size_t body_len;
    lurk_response resp;
    lurk_client_verify_fn *verify;
    void *verify_arg;
    lurk_client_wake_fn *wake;
    void *wake_arg;
};

/* ------------------------------------------------------------------------ */
/* Fork safety                                                                */

/* ---- request ids ---------------------------------------------------------- */

/*
 * Request ids only have to be unique, not secret: TLS protects them and
 * they pair a reply with its request and audit lines across machines.  A
 * per-thread random prefix and a counter give that without a DRBG call per
 * request (measurable on the signing hot path).  A forked child draws a new
 * prefix so that nginx workers never reuse their master's ids.
 */
static _Thread_local unsigned char lurk_rid_state[16];
static _Thread_local uint64_t lurk_rid_counter;
static _Thread_local unsigned lurk_rid_generation;
static unsigned lurk_rid_fork_generation = 1;
static pthread_once_t lurk_rid_once = PTHREAD_ONCE_INIT;

static void lurk_rid_atfork_child(void)
{
    __atomic_add_fetch(&lurk_rid_fork_generation, 1, __ATOMIC_RELAXED);
}

static void lurk_rid_init(void)
{
    pthread_atfork(NULL, NULL, lurk_rid_atfork_child);
}

lurk_err lurk_client_new_request_id(char out[LURK_REQUEST_ID_MAX + 1])
{
    unsigned gen;
    uint64_t n;

    if (out == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    pthread_once(&lurk_rid_once, lurk_rid_init);
    gen = __atomic_load_n(&lurk_rid_fork_generation, __ATOMIC_RELAXED);
    if (lurk_rid_generation != gen) {
        if (RAND_bytes(lurk_rid_state, 8) != 1) {
            return LURK_ERR_INTERNAL;
        }
        lurk_rid_generation = gen;
    }
    n = ++lurk_rid_counter;
    for (int i = 0; i < 8; i++) {
        lurk_rid_state[8 + i] = (unsigned char)(n >> (56 - 8 * i));
    }
    return lurk_b64url_encode(lurk_rid_state, sizeof(lurk_rid_state), out,
                              LURK_REQUEST_ID_MAX + 1);
}

static pthread_mutex_t lurk_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static LURK_CLIENT *lurk_registry;
static unsigned lurk_fork_gen;  /* bumped in the child; read under a client's lock */
static pthread_once_t lurk_atfork_once = PTHREAD_ONCE_INIT;

static void lurk_mux_free(lurk_mux *m, int ours);

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
            c->servers[i].muxes = NULL;
            c->servers[i].n_muxes = 0;
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
        lurk_mux *next = NULL;

        for (lurk_mux *m = c->servers[i].muxes; m != NULL; m = next) {
            next = m->next;
            lurk_mux_free(m, m->pid == pid && m->gen == lurk_fork_gen);
        }
        c->servers[i].muxes = NULL;
        c->servers[i].n_muxes = 0;
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
/* Connections: one per thread and server, requests pipelined on it         */

static void lurk_mux_free(lurk_mux *m, int ours)
{
    if (m == NULL) {
        return;
    }
    if (ours) {
        lurk_conn_free(m->conn); /* else inherited: never talk on it */
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void lurk_mux_put(lurk_mux *m)
{
    __atomic_sub_fetch(&m->users, 1, __ATOMIC_ACQ_REL);
}

/* This thread's connection to server s, made (without network) on first
 * use; the caller holds a use of it until lurk_mux_put. */
static lurk_err lurk_mux_get(LURK_CLIENT *c, size_t s, lurk_mux **out, lurk_detail *d)
{
    lurk_client_server *cs = &c->servers[s];
    pid_t pid = lurk_self_pid();
    pthread_t self = pthread_self();
    lurk_err err = LURK_OK;
    lurk_mux *m = NULL;
    lurk_mux **pp;
    char why[sizeof(d->msg)];

    *out = NULL;
    pthread_mutex_lock(&c->lock);
    for (m = cs->muxes; m != NULL; m = m->next) {
        if (m->pid == pid && m->gen == lurk_fork_gen && pthread_equal(m->owner, self)) {
            __atomic_add_fetch(&m->users, 1, __ATOMIC_ACQ_REL);
            *out = m;
            pthread_mutex_unlock(&c->lock);
            return LURK_OK;
        }
    }
    /* Room for one more: forget connections of threads that are gone (or
     * idle, unused), oldest first; inherited ones are never cleaned up. */
    for (pp = &cs->muxes; cs->n_muxes >= LURK_CLIENT_MUX_MAX && *pp != NULL;) {
        lurk_mux *x = *pp;

        if (__atomic_load_n(&x->users, __ATOMIC_ACQUIRE) == 0 || x->pid != pid
            || x->gen != lurk_fork_gen) {
            *pp = x->next;
            cs->n_muxes--;
            lurk_mux_free(x, x->pid == pid && x->gen == lurk_fork_gen && x->users == 0);
        } else {
            pp = &x->next;
        }
    }
    if (cs->n_muxes >= LURK_CLIENT_MUX_MAX) {
        lurk_detail_set(d, "%s: more than %d threads with requests in flight", cs->srv.name,
                        LURK_CLIENT_MUX_MAX);
        err = LURK_ERR_UNAVAILABLE;
        goto end;
    }
    if (c->share != NULL && c->share_pid != pid) {
        c->share = NULL; /* inherited without the fork handlers: forget it */
    }
    if (c->share == NULL) {
        if (lurk_share_new(&c->share) != LURK_OK) {
            c->share = NULL; /* connections then simply do not share sessions */
        }
        c->share_pid = pid;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    why[0] = '\0';
    err = lurk_conn_new(&cs->srv, &c->opts, c->share, &m->conn, why, sizeof(why));
    if (err != LURK_OK) {
        lurk_detail_set(d, "%s", why);
        free(m);
        m = NULL;
        goto end;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->owner = self;
    m->pid = pid;
    m->gen = lurk_fork_gen;
    m->users = 1;
    m->next = cs->muxes;
    cs->muxes = m;
    cs->n_muxes++;
    *out = m;

end:
    pthread_mutex_unlock(&c->lock);
    return err;
}

static void lurk_op_unref(LURK_CLIENT_OP *op)
{
    if (op == NULL || __atomic_sub_fetch(&op->refs, 1, __ATOMIC_ACQ_REL) > 0) {
        return;
    }
    if (op->body != NULL) {
        OPENSSL_clear_free(op->body, op->body_len + 1);
    }
    lurk_response_clear(&op->resp);
    free(op->json);
    free(op);
}

/* Wakes op's caller (under the mux lock, so a caller letting op go, which
 * clears op->wake under that lock, is never woken after it is gone). */
static void lurk_op_wake(LURK_CLIENT_OP *op)
{
    if (op->wake != NULL && !op->detached) {
        op->wake(op->wake_arg);
    }
}

/* Takes op out of the queue head (under the mux lock); the queue's
 * reference and use of the mux pass to the caller. */
static void lurk_mux_pop(lurk_mux *m)
{
    LURK_CLIENT_OP *op = m->head;

    m->head = op->next;
    if (m->head == NULL) {
        m->tail = NULL;
    }
    op->next = NULL;
    m->n_sent--;
}

/* Under the mux lock: when the reader is gone, the first operation still
 * waiting takes its place and is woken to learn it. */
static void lurk_mux_elect(lurk_mux *m)
{
    if (m->reader != NULL && m->reader->state == LURK_OP_SENT && !m->reader->detached
        && m->reader->mux == m) {
        return;
    }
    m->reader = NULL;
    for (LURK_CLIENT_OP *op = m->head; op != NULL; op = op->next) {
        if (!op->detached && !op->blocking && op->wake != NULL) {
            m->reader = op;
            lurk_op_wake(op);
            return;
        }
    }
}

/* Ends one queued operation (the head) with a reply or a failure. */
static void lurk_mux_finish_head(lurk_mux *m)
{
    LURK_CLIENT_OP *op = m->head;

    lurk_mux_pop(m);
    op->mux = NULL;
    lurk_mux_put(m);
    lurk_op_wake(op);
    lurk_op_unref(op); /* the queue's */
}


static void lurk_mux_on_reply(void *arg, const lurk_transport_reply *reply)
{
    lurk_mux *m = arg;
    LURK_CLIENT_OP *op = m->head;

    if (!op->detached) {
        op->body = malloc(reply->body_len + 1);
        if (op->body == NULL) {
            op->err = LURK_ERR_NOMEM;
            op->state = LURK_OP_FAILED;
        } else {
            memcpy(op->body, reply->body, reply->body_len);
            op->body[reply->body_len] = '\0';
            op->body_len = reply->body_len;
            op->http_status = reply->http_status;
            op->state = LURK_OP_REPLIED;
        }
    }
    lurk_mux_finish_head(m);
}

/* The connection failed: every queued operation fails with it.  The head
 * may have seen part of its reply; the others saw nothing. */
static void lurk_mux_fail_all(lurk_mux *m, lurk_err err, const char *why, int lost,
                              int partial)
{
    lurk_conn_close(m->conn);
    while (m->head != NULL) {
        LURK_CLIENT_OP *op = m->head;

        op->state = LURK_OP_FAILED;
        op->err = err;
        op->lost = lost;
        op->partial = partial;
        lurk_detail_set(&op->d, "%s", why);
        partial = 0;
        lurk_mux_finish_head(m);
    }
}

/* Reads whatever replies have arrived (under the mux lock). */
static void lurk_mux_read(lurk_mux *m)
{
    char why[sizeof(((lurk_detail *)0)->msg)];
    int lost = 0, partial;
    lurk_err err;

    if (m->n_sent == 0) {
        return;
    }
    why[0] = '\0';
    err = lurk_conn_recv(m->conn, m->n_sent, lurk_mux_on_reply, m, &lost, why, sizeof(why));
    if (err != LURK_OK) {
        partial = lurk_conn_partial(m->conn);
        lurk_mux_fail_all(m, err, why, lost, partial);
    } else if (m->n_sent > 0 && lurk_conn_fd(m->conn) < 0) {
        /* closed after a reply that said so, with requests behind it */
        lurk_mux_fail_all(m, LURK_ERR_UNREACHABLE, "the server closed the connection", 1, 0);
    }
    lurk_mux_elect(m);
}

/* Sends op's request on this thread's connection to op->server. */
static lurk_err lurk_op_send(LURK_CLIENT_OP *op)
{
    LURK_CLIENT *c = op->c;
    lurk_mux *m = NULL;
    char why[sizeof(op->d.msg)];
    lurk_err err;
    int reused = 0;

    err = lurk_mux_get(c, op->server, &m, &op->d);
    if (err != LURK_OK) {
        return err;
    }
    pthread_mutex_lock(&m->lock);
    why[0] = '\0';
    err = lurk_conn_send(m->conn, op->json, op->json_len, op->deadline, c->timeout_ms, &reused,
                         why, sizeof(why));
    op->reused = reused;
    if (err != LURK_OK) {
        lurk_detail_set(&op->d, "%s", why);
        /* the connection is gone: so are the requests queued on it */
        lurk_mux_fail_all(m, err, why, 1, 0);
        lurk_mux_elect(m);
        pthread_mutex_unlock(&m->lock);
        lurk_mux_put(m);
        return err;
    }
    op->state = LURK_OP_SENT;
    op->sent_ms = lurk_transport_now_ms();
    op->mux = m; /* the use of m taken above passes to the queue */
    __atomic_add_fetch(&op->refs, 1, __ATOMIC_ACQ_REL);
    if (m->tail != NULL) {
        m->tail->next = op;
    } else {
        m->head = op;
    }
    m->tail = op;
    m->n_sent++;
    pthread_mutex_unlock(&m->lock);
    return LURK_OK;
}

/* The caller gives up on a sent operation: its reply will be read and
 * dropped.  Under the mux lock. */
static void lurk_op_detach(LURK_CLIENT_OP *op)
{
    lurk_mux *m = op->mux;

    op->detached = 1;
    if (m != NULL) {
        lurk_mux_elect(m);
    }
}

/* Turns an HTTP reply into `resp` and the call's result. */
static lurk_err lurk_client_check_reply(const lurk_client_server *cs,
                                        const LURK_CLIENT_OP *req, lurk_response *resp,
                                        lurk_detail *d)
{
    char why[256];
    lurk_err err;

    why[0] = '\0';
    err = lurk_proto_decode_response(req->body, req->body_len, req->type, resp, why,
                                     sizeof(why));
    if (err != LURK_OK) {
        err = lurk_err_from_status((int)req->http_status);
        if (err == LURK_OK) {
            err = LURK_ERR_PROTOCOL;
        }
        if (d != NULL) {
            d->status = (int)req->http_status;
        }
        lurk_detail_set(d, "%s: HTTP %ld with an invalid LURK body: %s", cs->srv.name,
                        req->http_status, why);
        return err;
    }
    if (resp->status != req->http_status) {
        lurk_detail_set(d, "%s: Status %d differs from HTTP status %ld", cs->srv.name,
                        resp->status, req->http_status);
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

static int lurk_moves_on(lurk_err err)
{
    return lurk_err_is_transient(err) || err == LURK_ERR_TLS || err == LURK_ERR_BAD_SIGNATURE;
}

/* A reply is in: decodes and checks it, verifies a signature.  Moves op on
 * to DONE, or back to IDLE for the next server. */
static void lurk_op_replied(LURK_CLIENT_OP *op)
{
    const lurk_client_server *cs = &op->c->servers[op->server];
    lurk_err err;

    lurk_response_clear(&op->resp);
    lurk_detail_reset(&op->d);
    err = lurk_client_check_reply(cs, op, &op->resp, &op->d);
    OPENSSL_clear_free(op->body, op->body_len + 1);
    op->body = NULL;
    op->body_len = 0;
    if (err == LURK_OK && op->verify != NULL && op->verify(op->verify_arg, &op->resp.value) != 1) {
        lurk_detail_set(&op->d, "%s: the signature it returned does not verify with the key's "
                        "public key: refused", cs->srv.name);
        op->d.status = 0;
        err = LURK_ERR_BAD_SIGNATURE;
    }
    op->err = err;
    if (err == LURK_OK) {
        __atomic_store_n(&op->c->preferred, (int)op->server, __ATOMIC_RELAXED);
    }
    op->state = lurk_moves_on(err) ? LURK_OP_IDLE : LURK_OP_DONE;
}

/* The deadline passed while op was sent.  When the request at the head of
 * its queue (op itself, or one given up on) has waited a whole timeout, the
 * server has answered nothing for that long: the connection goes, and the
 * requests behind it move on too. */
static void lurk_op_expired(LURK_CLIENT_OP *op)
{
    lurk_mux *m = op->mux;
    const char *name = op->c->servers[op->server].srv.name;
    int partial = 0;

    pthread_mutex_lock(&m->lock);
    if (op->state != LURK_OP_SENT) {
        pthread_mutex_unlock(&m->lock);
        return; /* answered meanwhile */
    }
    if (m->head == op || lurk_transport_now_ms() - m->head->sent_ms >= op->c->timeout_ms) {
        char why[sizeof(op->d.msg)];

        partial = m->head == op && lurk_conn_partial(m->conn);
        lurk_op_detach(op);
        snprintf(why, sizeof(why), "%s: no reply to an earlier request within %ld ms", name,
                 op->c->timeout_ms);
        lurk_mux_fail_all(m, LURK_ERR_UNREACHABLE, why, 0, 0);
    } else {
        lurk_op_detach(op);
    }
    lurk_mux_elect(m);
    pthread_mutex_unlock(&m->lock);
    if (partial) {
        lurk_detail_set(&op->d, "%s: reply incomplete after %ld ms", name, op->c->timeout_ms);
    } else {
        lurk_detail_set(&op->d, "%s: no reply within %ld ms", name, op->c->timeout_ms);
    }
    op->err = LURK_ERR_TIMEOUT;
    op->resent = 1;
    op->state = LURK_OP_IDLE;
}

int lurk_client_op_step(LURK_CLIENT_OP *op, lurk_client_wait *wait)
{
    LURK_CLIENT *c = op->c;

    for (;;) {
        switch (op->state) {
        case LURK_OP_DONE:
            return 1;

        case LURK_OP_IDLE: {
            long now = lurk_transport_now_ms();

            if (op->tries == c->n_servers) {
                op->state = LURK_OP_DONE; /* every server tried: the last answer stands */
                break;
            }
            if (now >= op->deadline) {
                if (op->tries == 0) {
                    op->deadline = now + 1;
                } else {
                    op->err = LURK_ERR_TIMEOUT;
                    lurk_detail_set(&op->d, "no answer within %ld ms (%zu of %zu servers tried)",
                                    c->timeout_ms, op->tries, c->n_servers);
                    op->state = LURK_OP_DONE;
                    break;
                }
            }
            op->server = (op->start + op->tries) % c->n_servers;
            op->tries++;
            lurk_detail_reset(&op->d);
            op->err = lurk_op_send(op);
            if (op->err == LURK_OK) {
                /* no reply yet: wait for the socket */
                break;
            }
            if (op->reused && !op->resent) {
                /* the write failed on a kept-alive connection the server
                 * closed meanwhile: once more on a new one */
                op->resent = 1;
                op->tries--;
                break;
            }
            if (!lurk_moves_on(op->err)) {
                op->state = LURK_OP_DONE;
            }
            break;
        }

        case LURK_OP_SENT: {
            lurk_mux *m = op->mux;
            int fd = -1;

            pthread_mutex_lock(&m->lock);
            lurk_mux_read(m);
            if (op->state == LURK_OP_SENT) {
                if (m->reader == NULL && !op->blocking && op->wake != NULL) {
                    m->reader = op;
                }
                if (op->blocking || m->reader == op || op->wake == NULL) {
                    fd = lurk_conn_fd(m->conn);
                }
            }
            pthread_mutex_unlock(&m->lock);
            if (op->state != LURK_OP_SENT) {
                break;
            }
            if (lurk_transport_now_ms() >= op->deadline) {
                lurk_op_expired(op);
                break;
            }
            wait->fd = fd;
            wait->deadline_ms = op->deadline;
            return 0;
        }

        case LURK_OP_REPLIED:
            lurk_op_replied(op);
            break;

        case LURK_OP_FAILED:
            /* A kept-alive connection the server closed meanwhile (idle
             * timeout, restart) fails before any reply byte: send once more
             * on a new one, as libcurl itself would. */
            if (op->lost && op->reused && !op->partial && !op->resent) {
                op->resent = 1;
                op->tries--;
                op->state = LURK_OP_IDLE;
            } else {
                op->state = lurk_moves_on(op->err) ? LURK_OP_IDLE : LURK_OP_DONE;
            }
            break;
        }
    }
}

void lurk_client_op_set_wake(LURK_CLIENT_OP *op, lurk_client_wake_fn *wake, void *arg)
{
    op->wake = wake;
    op->wake_arg = arg;
}

void lurk_client_op_free(LURK_CLIENT_OP *op)
{

    if (op == NULL) {
        return;
    }
    if (op->state == LURK_OP_SENT) {
        lurk_mux *m = op->mux;

        pthread_mutex_lock(&m->lock);
        op->wake = NULL;
        if (op->state == LURK_OP_SENT) {
            lurk_op_detach(op);
        }
        pthread_mutex_unlock(&m->lock);
    }
    lurk_op_unref(op);
}

/* Encodes the request and makes the operation (no network yet). */
static lurk_err lurk_op_new(LURK_CLIENT *c, lurk_request *req, LURK_CLIENT_OP **out,
                            lurk_detail *d)
{
    LURK_CLIENT_OP *op = NULL;
    lurk_err err;

    *out = NULL;
    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return LURK_ERR_NOMEM;
    }
    op->c = c;
    op->refs = 1;
    op->type = req->type;
    lurk_response_init(&op->resp);
    err = lurk_client_new_request_id(req->request_id);
    if (err != LURK_OK) {
        lurk_detail_set(d, "cannot make a request id");
        goto end;
    }
    memcpy(op->request_id, req->request_id, sizeof(op->request_id));
    err = lurk_proto_encode_request(req, &op->json, &op->json_len);
    if (err != LURK_OK) {
        lurk_detail_set(d, "cannot encode the %s request", lurk_tx_name(req->type));
        goto end;
    }
    op->deadline = lurk_transport_now_ms() + c->timeout_ms;
    op->start = (size_t)__atomic_load_n(&c->preferred, __ATOMIC_RELAXED) % c->n_servers;
    op->state = LURK_OP_IDLE;
    op->err = LURK_ERR_UNREACHABLE;
    *out = op;
    op = NULL;

end:
    lurk_op_unref(op);
    return err;
}

void lurk_client_op_wait(LURK_CLIENT_OP *op)
{
    lurk_client_wait w;

    op->blocking = 1;
    while (!lurk_client_op_step(op, &w)) {
        long left = w.deadline_ms - lurk_transport_now_ms();
        struct pollfd pfd;

        if (left < 0) {
            left = 0;
        }
        pfd.fd = w.fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        (void)poll(&pfd, w.fd >= 0 ? 1 : 0, left > INT_MAX ? INT_MAX : (int)left);
    }
}

/* One blocking transaction: the response lands in *resp (owned by the
 * caller afterwards). */
static lurk_err lurk_client_call(LURK_CLIENT *c, lurk_request *req, lurk_response *resp,
                                 lurk_detail *d)
{
    LURK_CLIENT_OP *op = NULL;
    lurk_err err;

    lurk_detail_reset(d);
    err = lurk_op_new(c, req, &op, d);
    if (err != LURK_OK) {
        return err;
    }
    lurk_client_op_wait(op);
    err = op->err;
    if (d != NULL) {
        *d = op->d;
    }
    *resp = op->resp;
    lurk_response_init(&op->resp);
    lurk_op_unref(op);
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

/* `checked`: the caller holds the key id parsed already (a key reference
 * it decoded): only its length is checked here. */
static lurk_err lurk_set_key_id(lurk_request *req, const char *key_id, int checked,
                                lurk_detail *d)
{
    lurk_keyid id;
    size_t n;

    if (key_id == NULL) {
        lurk_detail_set(d, "no key id");
        return LURK_ERR_INVALID_ARG;
    }
    n = strlen(key_id);
    if (n == 0 || n > LURK_KEY_ID_TEXT_MAX
        || (!checked && lurk_keyid_parse(key_id, &id) != LURK_OK)) {
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
    err = lurk_client_call(c, &req, &resp, d);
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
    err = lurk_client_call(c, &req, &resp, d);

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
    err = lurk_set_key_id(&req, key_id, 0, d);
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
    err = lurk_client_call(c, &req, &resp, d);
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

/* The request of a Sign; its buffers are borrowed from p (encoded at once). */
static lurk_err lurk_sign_request(const lurk_sign_params *p, lurk_request *req, lurk_detail *d)
{
    lurk_err err;

    if ((p->data == NULL) == (p->digest == NULL)) {
        lurk_detail_set(d, "exactly one of data and digest is needed");
        return LURK_ERR_INVALID_ARG;
    }
    if (p->alg == LURK_SIG_RSA_PSS && p->salt_len < 0) {
        lurk_detail_set(d, "rsa-pss needs a salt length >= 0");
        return LURK_ERR_INVALID_ARG;
    }
    err = lurk_set_key_id(req, p->key_id, p->key_id_checked, d);
    if (err != LURK_OK) {
        return err;
    }
    req->type = LURK_TX_SIGN;
    req->sig_alg = p->alg;
    req->md = p->md;
    req->salt_len = p->alg == LURK_SIG_RSA_PSS ? p->salt_len : -1;
    /* Borrowed pointers: the request is never cleared, only encoded. */
    req->data.data = (unsigned char *)p->data;
    req->data.len = p->data != NULL ? p->data_len : 0;
    req->digest.data = (unsigned char *)p->digest;
    req->digest.len = p->digest != NULL ? p->digest_len : 0;
    return LURK_OK;
}

static lurk_err lurk_decrypt_request(const lurk_decrypt_params *p, lurk_request *req,
                                     lurk_detail *d)
{
    lurk_err err;

    if (p->in == NULL || p->in_len == 0) {
        return LURK_ERR_INVALID_ARG;
    }
    err = lurk_set_key_id(req, p->key_id, p->key_id_checked, d);
    if (err != LURK_OK) {
        return err;
    }
    req->type = LURK_TX_DECRYPT;
    req->dec_mode = p->mode;
    /* Each mode's parameters only; the others are ignored, not sent. */
    if (p->mode == LURK_DEC_TLS_PREMASTER) {
        req->client_version = p->client_version;
        req->alt_version = p->alt_version;
    } else {
        req->oaep_md = p->oaep_md;
        req->label.data = (unsigned char *)p->label;
        req->label.len = p->label != NULL ? p->label_len : 0;
    }
    req->ciphertext.data = (unsigned char *)p->in;
    req->ciphertext.len = p->in_len;
    return LURK_OK;
}

static lurk_err lurk_agree_request(const char *key_id, const unsigned char *peer_spki,
                                   size_t peer_len, lurk_request *req, lurk_detail *d)
{
    lurk_err err;

    if (peer_spki == NULL || peer_len == 0) {
        return LURK_ERR_INVALID_ARG;
    }
    err = lurk_set_key_id(req, key_id, 0, d);
    if (err != LURK_OK) {
        return err;
    }
    req->type = LURK_TX_AGREE;
    req->peer_key.data = (unsigned char *)peer_spki;
    req->peer_key.len = peer_len;
    return LURK_OK;
}

/* What every *_start does first: a clean request, detail and *op, and the
 * arguments checked (`have`: the transaction's own ones are there). */
static lurk_err lurk_start_prepare(LURK_CLIENT *c, int have, LURK_CLIENT_OP **op,
                                   lurk_request *req, lurk_detail *d)
{
    lurk_request_init(req);
    lurk_detail_reset(d);
    if (op != NULL) {
        *op = NULL;
    }
    return c != NULL && have && op != NULL ? LURK_OK : LURK_ERR_INVALID_ARG;
}

lurk_err lurk_client_sign_start(LURK_CLIENT *c, const lurk_sign_params *p, LURK_CLIENT_OP **op,
                                lurk_detail *d)
{
    lurk_request req;
    lurk_err err = lurk_start_prepare(c, p != NULL, op, &req, d);

    if (err == LURK_OK) {
        err = lurk_sign_request(p, &req, d);
    }
    if (err == LURK_OK) {
        err = lurk_op_new(c, &req, op, d);
    }
    if (err == LURK_OK) {
        (*op)->verify = p->verify;
        (*op)->verify_arg = p->verify_arg;
    }
    return err;
}

lurk_err lurk_client_decrypt_start(LURK_CLIENT *c, const lurk_decrypt_params *p,
                                   LURK_CLIENT_OP **op, lurk_detail *d)
{
    lurk_request req;
    lurk_err err = lurk_start_prepare(c, p != NULL, op, &req, d);

    if (err == LURK_OK) {
        err = lurk_decrypt_request(p, &req, d);
    }
    if (err == LURK_OK) {
        err = lurk_op_new(c, &req, op, d);
    }
    if (err == LURK_OK) {
        (*op)->premaster = p->mode == LURK_DEC_TLS_PREMASTER;
    }
    return err;
}

lurk_err lurk_client_agree_start(LURK_CLIENT *c, const char *key_id,
                                 const unsigned char *peer_spki, size_t peer_len,
                                 LURK_CLIENT_OP **op, lurk_detail *d)
{
    lurk_request req;
    lurk_err err = lurk_start_prepare(c, 1, op, &req, d);

    if (err == LURK_OK) {
        err = lurk_agree_request(key_id, peer_spki, peer_len, &req, d);
    }
    if (err == LURK_OK) {
        err = lurk_op_new(c, &req, op, d);
    }
    return err;
}

lurk_err lurk_client_op_finish(LURK_CLIENT_OP *op, unsigned char *out, size_t *outlen,
                               lurk_detail *d)
{
    lurk_err err;

    lurk_detail_reset(d);
    if (op == NULL || op->state != LURK_OP_DONE || outlen == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    err = op->err;
    if (d != NULL) {
        *d = op->d;
    }
    if (err != LURK_OK) {
        return err;
    }
    switch (op->type) {
    case LURK_TX_SIGN:
        return lurk_copy_out(&op->resp.value, out, outlen, "signature", d);
    case LURK_TX_DECRYPT:
        if (op->premaster && op->resp.value.len != 48) {
            lurk_detail_set(d, "premaster of %zu bytes, not 48", op->resp.value.len);
            return LURK_ERR_PROTOCOL;
        }
        return lurk_copy_out(&op->resp.value, out, outlen, "plaintext", d);
    default:
        return lurk_copy_out(&op->resp.value, out, outlen, "shared secret", d);
    }
}

/* start, wait, finish: the blocking calls are this loop over the
 * non-blocking ones. */
static lurk_err lurk_client_run(lurk_err err, LURK_CLIENT_OP **opp, unsigned char *out,
                                size_t *outlen, lurk_detail *d)
{
    LURK_CLIENT_OP *op = *opp;

    if (err == LURK_OK) {
        lurk_client_op_wait(op);
        err = lurk_client_op_finish(op, out, outlen, d);
    }
    lurk_client_op_free(op);
    return err;
}

lurk_err lurk_client_sign(LURK_CLIENT *c, const lurk_sign_params *p, unsigned char *sig,
                          size_t *siglen, lurk_detail *d)
{
    LURK_CLIENT_OP *op = NULL;

    if (sig == NULL || siglen == NULL) {
        lurk_detail_reset(d);
        return LURK_ERR_INVALID_ARG;
    }
    return lurk_client_run(lurk_client_sign_start(c, p, &op, d), &op, sig, siglen, d);
}

lurk_err lurk_client_decrypt(LURK_CLIENT *c, const lurk_decrypt_params *p, unsigned char *out,
                             size_t *outlen, lurk_detail *d)
{
    LURK_CLIENT_OP *op = NULL;

    if (out == NULL || outlen == NULL) {
        lurk_detail_reset(d);
        return LURK_ERR_INVALID_ARG;
    }
    return lurk_client_run(lurk_client_decrypt_start(c, p, &op, d), &op, out, outlen, d);
}

lurk_err lurk_client_agree(LURK_CLIENT *c, const char *key_id, const unsigned char *peer_spki,
                           size_t peer_len, unsigned char *out, size_t *outlen, lurk_detail *d)
{
    LURK_CLIENT_OP *op = NULL;

    if (out == NULL || outlen == NULL) {
        lurk_detail_reset(d);
        return LURK_ERR_INVALID_ARG;
    }
    return lurk_client_run(lurk_client_agree_start(c, key_id, peer_spki, peer_len, &op, d), &op,
                           out, outlen, d);
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

static const char *const lurk_cnf_names[] = {
    "lurk-servers", "lurk-ca", "lurk-cert", "lurk-key", "lurk-connect-timeout", "lurk-timeout",
    "lurk-verify", NULL,
};

lurk_err lurk_client_parse_duration(const char *s, long *ms)
{
    char *end = NULL;
    long v;
    long unit = 1;

    if (s == NULL || *s < '0' || *s > '9') {
        return LURK_ERR_CONFIG;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s) {
        return LURK_ERR_CONFIG;
    }
    if (strcmp(end, "s") == 0) {
        unit = 1000;
    } else if (*end != '\0' && strcmp(end, "ms") != 0) {
        return LURK_ERR_CONFIG;
    }
    if (v <= 0 || v > 3600L * 1000 / unit) {
        return LURK_ERR_CONFIG;
    }
    *ms = v * unit;
    return LURK_OK;
}

static lurk_err lurk_cnf_dup_value(const char *v, char **out)
{
    if (v == NULL || v[0] == '\0') {
        return LURK_OK;
    }
    *out = strdup(v);
    return *out != NULL ? LURK_OK : LURK_ERR_NOMEM;
}

lurk_err lurk_client_cnf_read(lurk_cnf_get_fn *get, void *arg, const char *where,
                              lurk_client_cnf *out, lurk_detail *d)
{
    static const char *const durations[] = { "lurk-connect-timeout", "lurk-timeout" };
    const char *v;
    lurk_err err;

    err = lurk_cnf_dup_value(get(arg, "lurk-servers"), &out->servers);
    if (err == LURK_OK) {
        err = lurk_cnf_dup_value(get(arg, "lurk-ca"), &out->ca_file);
    }
    if (err == LURK_OK) {
        err = lurk_cnf_dup_value(get(arg, "lurk-cert"), &out->cert_file);
    }
    if (err == LURK_OK) {
        err = lurk_cnf_dup_value(get(arg, "lurk-key"), &out->key_file);
    }
    if (err != LURK_OK) {
        return err;
    }
    for (size_t i = 0; i < 2; i++) {
        long *ms = i == 0 ? &out->connect_timeout_ms : &out->timeout_ms;

        v = get(arg, durations[i]);
        if (v != NULL && lurk_client_parse_duration(v, ms) != LURK_OK) {
            lurk_detail_set(d, "%s: %s = \"%.32s\": write milliseconds (250 or 250ms) or "
                            "seconds (2s), from 1 ms to 1 h", where, durations[i], v);
            return LURK_ERR_CONFIG;
        }
    }
    v = get(arg, "lurk-verify");
    if (v != NULL) {
        if (strcasecmp(v, "all") == 0) {
            out->verify = LURK_CNF_VERIFY_ALL;
        } else if (strcasecmp(v, "rsa") == 0) {
            out->verify = LURK_CNF_VERIFY_RSA;
        } else if (strcasecmp(v, "none") == 0) {
            out->verify = LURK_CNF_VERIFY_NONE;
        } else {
            /* a typo must not weaken checking */
            lurk_detail_set(d, "%s: lurk-verify = \"%.32s\": use all, rsa or none", where, v);
            return LURK_ERR_CONFIG;
        }
    }
    return LURK_OK;
}

/* Every lurk-* key of the section is a setting. */
static lurk_err lurk_cnf_check_names(const CONF *conf, const char *sect, const char *where,
                                     lurk_detail *d)
{
    STACK_OF(CONF_VALUE) *sk = NCONF_get_section(conf, sect);

    for (int i = 0; sk != NULL && i < sk_CONF_VALUE_num(sk); i++) {
        const CONF_VALUE *cv = sk_CONF_VALUE_value(sk, i);
        int known = 0;

        if (strncmp(cv->name, "lurk-", 5) != 0) {
            continue;
        }
        for (size_t j = 0; lurk_cnf_names[j] != NULL; j++) {
            known |= strcmp(cv->name, lurk_cnf_names[j]) == 0;
        }
        if (!known) {
            lurk_detail_set(d, "%s: unknown setting %.40s (known: lurk-servers, lurk-ca, "
                            "lurk-cert, lurk-key, lurk-connect-timeout, lurk-timeout, "
                            "lurk-verify)", where, cv->name);
            return LURK_ERR_CONFIG;
        }
    }
    ERR_clear_error();
    return LURK_OK;
}

typedef struct {
    const CONF *conf;
    const char *sect;
} lurk_cnf_arg;

static const char *lurk_cnf_get_conf(void *arg, const char *name)
{
    const lurk_cnf_arg *a = arg;

    return lurk_cnf_get(a->conf, a->sect, name);
}

/* openssl_conf -> providers -> name: the provider's section, or NULL. */
static const char *lurk_cnf_provider_section(const CONF *conf, const char *name)
{
    const char *init = lurk_cnf_get(conf, NULL, "openssl_conf");
    const char *prov = init != NULL ? lurk_cnf_get(conf, init, "providers") : NULL;

    return prov != NULL ? lurk_cnf_get(conf, prov, name) : NULL;
}

lurk_err lurk_client_cnf_check_file(const char *file, const char *name, lurk_detail *d)
{
    CONF *conf = NCONF_new_ex(NULL, NULL);
    const char *sect;
    char where[600];
    long eline = 0;
    lurk_err err = LURK_OK;

    if (conf == NULL || file == NULL || NCONF_load(conf, file, &eline) <= 0) {
        goto end;
    }
    sect = lurk_cnf_provider_section(conf, name);
    if (sect != NULL) {
        snprintf(where, sizeof(where), "%s, [%s]", file, sect);
        err = lurk_cnf_check_names(conf, sect, where, d);
    }
end:
    ERR_clear_error();
    NCONF_free(conf);
    return err;
}

lurk_err lurk_client_cnf_load(const char *file, lurk_client_cnf *out, lurk_detail *d)
{
    CONF *conf = NULL;
    long eline = 0;
    const char *sect;
    char where[600];
    lurk_cnf_arg arg;
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
    sect = lurk_cnf_provider_section(conf, "lurk");
    if (sect == NULL) {
        err = LURK_OK;
        goto end;
    }
    out->found = 1;
    snprintf(where, sizeof(where), "%s, [%s]", file, sect);
    arg.conf = conf;
    arg.sect = sect;
    err = lurk_cnf_check_names(conf, sect, where, d);
    if (err == LURK_OK) {
        err = lurk_client_cnf_read(lurk_cnf_get_conf, &arg, where, out, d);
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
