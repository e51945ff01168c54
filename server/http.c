/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c - the key server's network front: listeners, mutual TLS, event
 * loops, limits and peer identity.  It hands each request body to the pure
 * handler and writes what comes back; it knows no field of the protocol.
 *
 * Threads: `threads` event loops, each with its own event_base, evhttp and
 * listening sockets (SO_REUSEPORT, so the kernel spreads connections and no
 * loop ever touches another's state).  The main thread talks to a loop
 * only through the loop's control pipe.
 *
 * Reload: the current key store, TLS context and limits sit behind one
 * mutex with a generation number.  A loop holds its own reference to each
 * and refreshes them when the generation moves (checked per connection and
 * per request with one atomic load; the control pipe makes idle loops drop
 * old keys at once).  A request is handled synchronously inside its loop,
 * so the loop's reference keeps the key store alive for the whole call.
 *
 * Limits: body size (evhttp; a LurkResponse 413 up to twice max_body, a bare
 * 413 and close beyond), header_timeout (TLS handshake plus the first
 * request), idle_timeout (evhttp inactivity), max_connections (counted over
 * all loops; a connection past the cap is closed at once, before any TLS
 * work), and queueing delay: once a loop has been busy without a pause for
 * more than QUEUE_MAX_MS, the requests it reads are answered 503 with
 * Retry-After instead of being worked on, until it catches up.  "Without a
 * pause" is told by an event of the lowest priority, which libevent runs
 * only when the loop has nothing else to do: that is the moment the backlog
 * is gone.  (Requests wait in socket buffers where no timestamp can be read,
 * so the length of the busy period is the measure of their wait.)
 *
 * Audit: each loop batches its audit lines (audit.c) and writes them after
 * its replies: from the same lowest-priority event, or, when that one
 * starves, from normal-priority events once the batch is half full or
 * LURK_SRV_AUDIT_MAX_AGE_MS old (a timer started with the batch), queued
 * behind the replies' write events (on_audit_due).  A loop writes what is
 * left when it exits (drain, SIGTERM).
 *
 * Identity: the subject CN of the verified client certificate (TCP), or
 * "uid:N" from SO_PEERCRED (unix socket, plain HTTP), fixed per connection.
 */
#include "srv_front.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h> /* ev_write: see send_body */
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define LISTEN_BACKLOG 1024
#define MAX_HEADERS_SIZE 8192
#define QUEUE_MAX_MS 1000          /* busy longer without a pause: 503 */
#define LOOP_PRIO_IDLE 2
#define RETRY_AFTER_MS 1000
#define DRAIN_TICK_MS 50
#define REFUSE_LOG_INTERVAL 10     /* seconds between "connection cap" warnings */
#define AUDIT_LOG_INTERVAL 10      /* seconds between "audit log" errors */

static const char session_ctx_id[] = "lurk-keyserver";

typedef struct lurk_srv_loop lurk_srv_loop;

/* One client connection; TLS ones live exactly as long as their SSL. */
typedef struct lurk_srv_conn {
    lurk_srv_loop *loop;
    struct lurk_srv_conn *prev;
    struct lurk_srv_conn *next;
    struct bufferevent *bev;
    struct evhttp_connection *evcon;  /* unix: set at the first request */
    struct event *ev;                 /* start-up, then header deadline */
    int linked;
    int refused;
    int started;
    int have_peer;
    int is_unix;
    int fd;                           /* unix only */
    lurk_srv_peer peer;
    char identity[128];
    char address[64];
} lurk_srv_conn;

typedef struct {
    size_t max_body;
    int header_timeout;
    int idle_timeout;
} limits;

struct lurk_srv_loop {
    LURK_SRV_HTTP *srv;
    size_t index;
    struct event_base *base;
    struct evhttp *https;
    struct evhttp *plain;            /* unix socket, loop 0 only */
    struct evhttp_bound_socket *bound[LURK_SRV_MAX_LISTEN + 1];
    struct evhttp *bound_http[LURK_SRV_MAX_LISTEN + 1];
    size_t n_bound;
    int ctl[2];
    struct event *ctl_ev;
    struct event *drain_ev;
    struct timeval drain_deadline;
    pthread_t thread;
    int started;
    int draining;
    unsigned gen;
    LURK_SRV_KEYSTORE *keys;
    SSL_CTX *tls;
    limits lim;
    lurk_srv_conn *conns;
    size_t n_conns;
    lurk_srv_conn **unix_by_fd;
    size_t unix_cap;
    time_t last_refuse_log;
    struct event *idle_ev;           /* lowest priority: runs when idle */
    struct timeval busy_since;       /* start of the busy period; 0 when idle */
    LURK_SRV_AUDIT_BUF *audit;       /* this loop's audit lines */
    struct event *audit_due;         /* batch old or full, loss untold: */
    struct event *audit_ev;          /* then this one writes and reports */
    size_t audit_lost;               /* lost lines not reported yet */
    int audit_errno;
    time_t last_audit_log;
};

struct lurk_srv_http_st {
    OSSL_LIB_CTX *libctx;
    pthread_mutex_t lock;            /* keys, tls, lim */
    LURK_SRV_KEYSTORE *keys;
    SSL_CTX *tls;
    limits lim;
    atomic_uint gen;
    atomic_int conns;
    atomic_int max_conns;
    lurk_srv_loop *loops;
    size_t n_loops;
    int port;
    char addr[300];
    char *unix_path;
    unsigned drain_ms;
    int stopped;
};

static int conn_idx = -1;

/* ---- small helpers -------------------------------------------------------- */

static void free_body(const void *data, size_t len, void *arg)
{
    free((void *)data);
}

/* ---- TLS ------------------------------------------------------------------ */

lurk_err lurk_srv_tls_ctx_new(const lurk_srv_conf *conf, OSSL_LIB_CTX *libctx, SSL_CTX **out,
                              char *why, size_t whylen)
{
    SSL_CTX *ctx = NULL;
    STACK_OF(X509_NAME) *cas = NULL;
    char reason[256];
    lurk_err err = LURK_ERR_CONFIG;

    *out = NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
    if (ctx == NULL) {
        lurk_why(why, whylen, "cannot create a TLS context: %s",
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        lurk_why(why, whylen, "cannot require TLS 1.2");
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1) {
        lurk_why(why, whylen, "%s, [keyserver] tls_cert %s: %s", conf->path, conf->tls_cert,
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        goto end;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1) {
        lurk_why(why, whylen, "%s, [keyserver] tls_key %s: %s", conf->path, conf->tls_key,
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        goto end;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        lurk_why(why, whylen, "%s: tls_key %s does not match tls_cert %s", conf->path,
                 conf->tls_key, conf->tls_cert);
        goto end;
    }
    if (SSL_CTX_load_verify_file(ctx, conf->client_ca) != 1) {
        lurk_why(why, whylen, "%s, [keyserver] client_ca %s: %s", conf->path, conf->client_ca,
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        goto end;
    }
    cas = SSL_load_client_CA_file_ex(conf->client_ca, libctx, NULL);
    if (cas == NULL) {
        lurk_why(why, whylen, "%s, [keyserver] client_ca %s: no CA certificate in it",
                 conf->path, conf->client_ca);
        goto end;
    }
    SSL_CTX_set_client_CA_list(ctx, cas);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
    /* Resumption: tickets (TLS 1.3 and 1.2) and the server-side cache; the
     * id context is required once client certificates are verified. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)session_ctx_id,
                                   sizeof(session_ctx_id) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    SSL_CTX_set_timeout(ctx, 3600);
    SSL_CTX_set_num_tickets(ctx, 1);
    *out = ctx;
    ctx = NULL;
    err = LURK_OK;

end:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return err;
}

/* ---- connections ---------------------------------------------------------- */

static void conn_unlink(lurk_srv_conn *c)
{
    lurk_srv_loop *l = c->loop;

    if (!c->linked) {
        return;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        l->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->linked = 0;
    l->n_conns--;
    atomic_fetch_sub_explicit(&l->srv->conns, 1, memory_order_relaxed);
}

static void conn_link(lurk_srv_conn *c)
{
    lurk_srv_loop *l = c->loop;

    c->prev = NULL;
    c->next = l->conns;
    if (l->conns != NULL) {
        l->conns->prev = c;
    }
    l->conns = c;
    c->linked = 1;
    l->n_conns++;
}

static void conn_free(lurk_srv_conn *c)
{
    if (c == NULL) {
        return;
    }
    conn_unlink(c);
    if (c->ev != NULL) {
        event_free(c->ev);
    }
    free(c);
}

/* SSL ex_data destructor: a TLS connection ends when libevent frees its SSL. */
static void conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    conn_free(ptr);
}

/* Ends a connection from our side; libevent sees EOF and frees it. */
static void conn_close(lurk_srv_conn *c)
{
    evutil_socket_t fd = c->bev != NULL ? bufferevent_getfd(c->bev) : -1;

    if (fd >= 0) {
        shutdown(fd, SHUT_RDWR);
    }
}

/* Neither a request nor a reply is buffered. */
static int conn_idle(const lurk_srv_conn *c)
{
    return c->bev == NULL
           || (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0
               && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0);
}

static void loop_refresh(lurk_srv_loop *l);

/* Runs once right after evhttp attached the socket, then as the header
 * deadline. */
static void on_conn_event(evutil_socket_t unused, short what, void *arg)
{
    lurk_srv_conn *c = arg;
    lurk_srv_loop *l = c->loop;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    struct timeval tv;

    if (c->started) {
        conn_close(c); /* header_timeout passed before the first request */
        return;
    }
    c->started = 1;
    if (c->refused || l->draining) {
        conn_close(c);
        return;
    }
    if (fd >= 0) {
        int one = 1;

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    tv.tv_sec = l->lim.header_timeout;
    tv.tv_usec = 0;
    evtimer_add(c->ev, &tv);
}

static void log_refusal(lurk_srv_loop *l)
{
    time_t now = time(NULL);

    if (now - l->last_refuse_log >= REFUSE_LOG_INTERVAL) {
        l->last_refuse_log = now;
        lurk_srv_log(LURK_LOG_WARN, "max_connections (%d) reached: closing new connections",
                     atomic_load_explicit(&l->srv->max_conns, memory_order_relaxed));
    }
}

/* evhttp asks for the bufferevent of each accepted TCP connection. */
static struct bufferevent *on_new_tls_conn(struct event_base *base, void *arg)
{
    lurk_srv_loop *l = arg;
    LURK_SRV_HTTP *h = l->srv;
    lurk_srv_conn *c = NULL;
    SSL *ssl = NULL;
    struct bufferevent *bev = NULL;
    int n;

    loop_refresh(l);
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto end;
    }
    c->loop = l;
    c->fd = -1;
    c->ev = evtimer_new(base, on_conn_event, c);
    ssl = SSL_new(l->tls);
    if (c->ev == NULL || ssl == NULL || SSL_set_ex_data(ssl, conn_idx, c) != 1) {
        conn_free(c);
        c = NULL;
        goto end;
    }
    /* from here the SSL owns c, and libevent owns the SSL (even on failure) */
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    ssl = NULL;
    if (bev == NULL) {
        c = NULL;
        goto end;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    c->bev = bev;
    n = atomic_fetch_add_explicit(&h->conns, 1, memory_order_relaxed);
    conn_link(c);
    if (n >= atomic_load_explicit(&h->max_conns, memory_order_relaxed)) {
        c->refused = 1;
        log_refusal(l);
    }
    /* after evhttp has set the socket: TCP_NODELAY, refusal, deadline */
    event_active(c->ev, EV_TIMEOUT, 0);

end:
    SSL_free(ssl);
    ERR_clear_error();
    /* NULL makes evhttp use a plain socket; on_request refuses those */
    return bev;
}

/* Identity and address, once per connection. */
static int conn_peer_tls(lurk_srv_conn *c, struct evhttp_connection *evcon, SSL *ssl)
{
    X509 *crt;
    X509_NAME *subj;
    int i;
    char *host = NULL;
    ev_uint16_t port = 0;

    evhttp_connection_get_peer(evcon, &host, &port);
    snprintf(c->address, sizeof(c->address), "%s:%u", host != NULL ? host : "?", port);
    c->peer.address = c->address;
    c->peer.identity = c->identity;
    c->have_peer = 1;
    crt = SSL_get0_peer_certificate(ssl);
    if (crt == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
        return 0;
    }
    subj = X509_get_subject_name(crt);
    i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (i >= 0) {
        const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, s);

        if (n > 0 && (size_t)n < sizeof(c->identity) && memchr(utf8, '\0', (size_t)n) == NULL) {
            memcpy(c->identity, utf8, (size_t)n);
            c->identity[n] = '\0';
        }
        OPENSSL_free(utf8);
    }
    c->peer.authenticated = 1;
    return 1;
}

static void unix_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    lurk_srv_conn *c = arg;
    lurk_srv_loop *l = c->loop;

    if (c->fd >= 0 && (size_t)c->fd < l->unix_cap && l->unix_by_fd[c->fd] == c) {
        l->unix_by_fd[c->fd] = NULL;
    }
    conn_free(c);
}

/* Unix connections are known from their first request on (evhttp offers no
 * earlier hook for a plain socket); the fd table maps a request back. */
static lurk_srv_conn *conn_unix(lurk_srv_loop *l, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bufferevent_getfd(bev);
    lurk_srv_conn *c;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int n;

    if (fd < 0) {
        return NULL;
    }
    if ((size_t)fd < l->unix_cap && l->unix_by_fd[fd] != NULL
        && l->unix_by_fd[fd]->evcon == evcon) {
        return l->unix_by_fd[fd];
    }
    if ((size_t)fd >= l->unix_cap) {
        size_t cap = (size_t)fd * 2 + 16;
        lurk_srv_conn **t = realloc(l->unix_by_fd, cap * sizeof(*t));

        if (t == NULL) {
            return NULL;
        }
        memset(t + l->unix_cap, 0, (cap - l->unix_cap) * sizeof(*t));
        l->unix_by_fd = t;
        l->unix_cap = cap;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->loop = l;
    c->is_unix = 1;
    c->fd = fd;
    c->bev = bev;
    c->evcon = evcon;
    c->started = 1;
    c->have_peer = 1;
    snprintf(c->address, sizeof(c->address), "unix");
    c->peer.address = c->address;
    c->peer.identity = c->identity;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        snprintf(c->identity, sizeof(c->identity), "uid:%u", (unsigned)cred.uid);
        c->peer.authenticated = 1;
    }
    n = atomic_fetch_add_explicit(&l->srv->conns, 1, memory_order_relaxed);
    conn_link(c);
    if (n >= atomic_load_explicit(&l->srv->max_conns, memory_order_relaxed)) {
        c->refused = 1;
        log_refusal(l);
    }
    l->unix_by_fd[fd] = c;
    evhttp_connection_set_closecb(evcon, unix_conn_closed, c);
    return c;
}

/* ---- audit ---------------------------------------------------------------- */

/* Reports lines a failing audit write lost (errno says why), at most once
 * per AUDIT_LOG_INTERVAL; force: now, if any are unreported. */
static void audit_report(lurk_srv_loop *l, size_t lost, int force)
{
    time_t now;

    if (lost > 0) {
        l->audit_errno = errno;
        l->audit_lost += lost;
    }
    if (l->audit_lost == 0) {
        return;
    }
    now = time(NULL);
    if (force || now - l->last_audit_log >= AUDIT_LOG_INTERVAL) {
        l->last_audit_log = now;
        lurk_srv_log(LURK_LOG_ERROR, "audit log: write failed: %s: %zu line(s) lost",
                     strerror(l->audit_errno), l->audit_lost);
        l->audit_lost = 0;
    }
}

/* Writes the batch; reports lost lines, earlier ones too (audit_report). */
static void loop_audit_flush(lurk_srv_loop *l, int force_report)
{
    static const struct timeval interval = { AUDIT_LOG_INTERVAL, 0 };
    int had = lurk_srv_audit_buf_pending(l->audit);

    audit_report(l, lurk_srv_audit_buf_flush(l->audit), force_report);
    if (l->audit_lost > 0) {
        evtimer_add(l->audit_due, &interval); /* to report them, idle or not */
    } else if (had) {
        event_del(l->audit_due); /* its batch is written */
    }
}

static void on_audit(evutil_socket_t fd, short what, void *arg)
{
    loop_audit_flush(arg, 0);
}

/*
 * The batch is old or full (or a loss is untold).  This runs after the
 * request callbacks queued before it (libevent activates timers after I/O),
 * so before the write events those activated (send_body); audit_ev,
 * activated now, runs after them: the batch goes out behind the replies.
 */
static void on_audit_due(evutil_socket_t fd, short what, void *arg)
{
    lurk_srv_loop *l = arg;

    event_active(l->audit_ev, EV_TIMEOUT, 0);
}

/* Queues a decision's line, written after the reply: by on_idle, or by
 * audit_ev when the loop stays busy. */
static void loop_audit(lurk_srv_loop *l, const lurk_srv_audit_rec *rec)
{
    static const struct timeval max_age = { 0, LURK_SRV_AUDIT_MAX_AGE_MS * 1000 };
    int first = !lurk_srv_audit_buf_pending(l->audit);
    size_t lost = lurk_srv_audit_buf_append(l->audit, rec);

    if (lost > 0) {
        audit_report(l, lost, 0);
    }
    if (first) {
        evtimer_add(l->audit_due, &max_age);
    }
    if (lurk_srv_audit_buf_full(l->audit)) {
        event_active(l->audit_due, EV_TIMEOUT, 0);
    }
    /* activating an active event changes nothing */
    event_active(l->idle_ev, EV_TIMEOUT, 0);
}

/* ---- requests ------------------------------------------------------------- */

static void send_body(struct evhttp_request *req, int status, char *body, size_t len,
                      unsigned retry_after_ms, int close_after)
{
    struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));

    if (status == 429 || status == 503) {
        char secs[16];

        snprintf(secs, sizeof(secs), "%u",
                 retry_after_ms == 0 ? 1 : (retry_after_ms + 999) / 1000);
        evhttp_add_header(hdrs, "Retry-After", secs);
    }
    if (close_after) {
        evhttp_add_header(hdrs, "Connection", "close");
    }
    if (body != NULL && evbuffer_add_reference(out, body, len, free_body, NULL) != 0) {
        free(body);
    }
    evhttp_send_reply(req, status, NULL, NULL);
    /*
     * evhttp queues the headers and the body as separate evbuffer chains
     * and bufferevent_openssl makes one SSL_write, so one TLS record and
     * one write(2), per chain; the client then needs two reads per record.
     * One contiguous chain puts the whole reply in a single record.
     */
    evbuffer_pullup(bufferevent_get_output(bev), -1);
    /*
     * A bufferevent writes only once epoll reports the socket writable,
     * one loop iteration later, and evhttp re-arms reading after that:
     * running the write callback now sends the reply in this iteration and
     * lets the changelist fold the write-enable/disable and read
     * disable/enable pairs into no epoll_ctl at all.
     */
    event_active(&bev->ev_write, EV_WRITE, 1);
}

/* A LurkResponse for a request refused before the handler, with its audit line. */
static void send_error(lurk_srv_loop *l, struct evhttp_request *req, const lurk_srv_peer *peer,
                       lurk_err err, const char *description, unsigned retry_after_ms,
                       int close_after, const char *allow)
{
    char *body = NULL;
    size_t len = 0;
    int status;
    lurk_srv_audit_rec rec;

    status = lurk_srv_error_response(err, description, retry_after_ms, &body, &len);
    if (allow != NULL) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    }
    send_body(req, status, body, len, retry_after_ms, close_after);

    memset(&rec, 0, sizeof(rec));
    lurk_srv_audit_time(&rec);
    if (peer != NULL) {
        snprintf(rec.peer, sizeof(rec.peer), "%s", peer->identity != NULL ? peer->identity : "");
        snprintf(rec.address, sizeof(rec.address), "%s",
                 peer->address != NULL ? peer->address : "");
    }
    snprintf(rec.op, sizeof(rec.op), "-");
    rec.status = status;
    rec.result = err;
    snprintf(rec.detail, sizeof(rec.detail), "%s", description);
    loop_audit(l, &rec);
}

/* The loop had nothing else to do: its backlog is gone, and the replies
 * have been written, so now the audit lines are. */
static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    lurk_srv_loop *l = arg;

    timerclear(&l->busy_since);
    loop_audit_flush(l, 0);
}

/* Milliseconds this loop has been busy without a pause, which is about how
 * long the request in hand waited.  The first request after a pause starts
 * a busy period and arms the idle event that ends it. */
static long queued_ms(lurk_srv_loop *l)
{
    struct timeval now;
    struct timeval d;

    evutil_gettimeofday(&now, NULL);
    if (!timerisset(&l->busy_since)) {
        l->busy_since = now;
        event_active(l->idle_ev, EV_TIMEOUT, 0);
        return 0;
    }
    timersub(&now, &l->busy_since, &d);
    return (long)d.tv_sec * 1000 + (long)d.tv_usec / 1000;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    lurk_srv_loop *l = arg;
    LURK_SRV_HTTP *h = l->srv;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    lurk_srv_conn *c = NULL;
    const char *path;
    struct evbuffer *in;
    size_t len;
    const unsigned char *body;
    char *resp = NULL;
    size_t resp_len = 0;
    int status;
    lurk_srv_audit_rec rec;
    lurk_srv_handler_ctx hctx;

    if (evhttp_connection_get_server(evcon) == l->plain) {
        c = conn_unix(l, evcon);
        if (c == NULL) {
            evhttp_send_error(req, 500, NULL);
            return;
        }
    } else {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);

        c = ssl != NULL ? SSL_get_ex_data(ssl, conn_idx) : NULL;
        if (c == NULL) {
            /* not one of our TLS bufferevents (SSL_new failed): never
             * answer in clear text; EOF makes evhttp drop it */
            shutdown(bufferevent_getfd(bev), SHUT_RDWR);
            return;
        }
        if (!c->have_peer) {
            c->evcon = evcon;
            conn_peer_tls(c, evcon, ssl);
            evtimer_del(c->ev); /* header deadline met */
        }
    }
    if (!c->peer.authenticated) {
        send_error(l, req, &c->peer, LURK_ERR_UNAUTHORIZED, "client not authenticated", 0, 1,
                   NULL);
        return;
    }
    if (c->refused) {
        send_error(l, req, &c->peer, LURK_ERR_UNAVAILABLE, "too many connections",
                   RETRY_AFTER_MS, 1, NULL);
        return;
    }
    path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL || strcmp(path, LURK_PROTO_PATH) != 0) {
        send_error(l, req, &c->peer, LURK_ERR_KEY_NOT_FOUND,
                   "no such resource: LURK is POST " LURK_PROTO_PATH, 0, l->draining, NULL);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        send_error(l, req, &c->peer, LURK_ERR_INVALID_FORMAT,
                   "method not allowed: LURK is POST " LURK_PROTO_PATH, 0, l->draining, "POST");
        return;
    }
    if (queued_ms(l) > QUEUE_MAX_MS) {
        send_error(l, req, &c->peer, LURK_ERR_UNAVAILABLE, "overloaded", RETRY_AFTER_MS,
                   l->draining, NULL);
        return;
    }
    in = evhttp_request_get_input_buffer(req);
    len = evbuffer_get_length(in);
    if (len > l->lim.max_body) {
        send_error(l, req, &c->peer, LURK_ERR_TOO_LARGE, "request body too large", 0,
                   l->draining, NULL);
        return;
    }
    body = evbuffer_pullup(in, -1);
    if (body == NULL && len > 0) {
        send_error(l, req, &c->peer, LURK_ERR_INTERNAL, "out of memory", 0, 1, NULL);
        return;
    }

    loop_refresh(l);
    hctx.keys = l->keys;
    hctx.libctx = h->libctx;
    hctx.propq = NULL;
    status = lurk_srv_handle(&hctx, &c->peer, (const char *)body, len, &resp, &resp_len, &rec);
    send_body(req, status, resp, resp_len, 0, l->draining);
    loop_audit(l, &rec);
}

/* ---- loops ---------------------------------------------------------------- */

static void apply_limits(lurk_srv_loop *l)
{
    struct evhttp *https[2] = { l->https, l->plain };

    for (size_t i = 0; i < 2; i++) {
        if (https[i] == NULL) {
            continue;
        }
        /* evhttp itself refuses (bare 413, close) past twice the limit;
         * on_request answers a LurkResponse 413 between the two */
        evhttp_set_max_body_size(https[i], (ev_ssize_t)(l->lim.max_body * 2));
        evhttp_set_timeout(https[i], l->lim.idle_timeout);
    }
}

static void loop_refresh(lurk_srv_loop *l)
{
    LURK_SRV_HTTP *h = l->srv;
    LURK_SRV_KEYSTORE *old_keys;
    SSL_CTX *old_tls;

    if (atomic_load_explicit(&h->gen, memory_order_acquire) == l->gen) {
        return;
    }
    old_keys = l->keys;
    old_tls = l->tls;
    pthread_mutex_lock(&h->lock);
    l->keys = h->keys;
    lurk_srv_keystore_up_ref(l->keys);
    l->tls = h->tls;
    if (l->tls != NULL) {
        SSL_CTX_up_ref(l->tls);
    }
    l->lim = h->lim;
    l->gen = atomic_load_explicit(&h->gen, memory_order_relaxed);
    pthread_mutex_unlock(&h->lock);
    apply_limits(l);
    lurk_srv_keystore_free(old_keys);
    SSL_CTX_free(old_tls);
}

static void on_drain_tick(evutil_socket_t unused, short what, void *arg)
{
    lurk_srv_loop *l = arg;
    struct timeval now;

    evutil_gettimeofday(&now, NULL);
    if (l->n_conns == 0 || evutil_timercmp(&now, &l->drain_deadline, >=)) {
        event_base_loopexit(l->base, NULL);
    }
}

static void loop_drain(lurk_srv_loop *l, unsigned drain_ms)
{
    struct timeval tick = { 0, DRAIN_TICK_MS * 1000 };
    struct timeval span = { drain_ms / 1000, (drain_ms % 1000) * 1000 };
    struct timeval now;
    lurk_srv_conn *c;
    lurk_srv_conn *next;

    if (l->draining) {
        return;
    }
    l->draining = 1;
    for (size_t i = 0; i < l->n_bound; i++) {
        evhttp_del_accept_socket(l->bound_http[i], l->bound[i]);
    }
    l->n_bound = 0;
    for (c = l->conns; c != NULL; c = next) {
        next = c->next;
        if (conn_idle(c)) {
            conn_close(c);
        }
    }
    evutil_gettimeofday(&now, NULL);
    evutil_timeradd(&now, &span, &l->drain_deadline);
    l->drain_ev = event_new(l->base, -1, EV_PERSIST, on_drain_tick, l);
    if (l->drain_ev == NULL || event_add(l->drain_ev, &tick) != 0) {
        event_base_loopexit(l->base, NULL);
    }
}

/* Control pipe: 'r' refresh, 'q' drain. */
static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
    lurk_srv_loop *l = arg;
    unsigned char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));

    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == 'r') {
            loop_refresh(l);
        } else if (buf[i] == 'q') {
            loop_drain(l, l->srv->drain_ms);
        }
    }
}

static void *loop_main(void *arg)
{
    lurk_srv_loop *l = arg;

    if (event_base_dispatch(l->base) < 0) {
        lurk_srv_log(LURK_LOG_ERROR, "event loop %zu failed", l->index);
    }
    /* the idle event may not have run since the last replies */
    loop_audit_flush(l, 1);
    return NULL;
}

/* ---- listeners ------------------------------------------------------------ */

/*
 * A listening socket for host:port.  reuseport 0 makes a probe: every loop
 * binds its own socket with SO_REUSEPORT, which would also let a second
 * server started by mistake share the port silently; an exclusive bind
 * first makes that an "address in use" error.
 */
static evutil_socket_t bind_tcp(const char *host, int port, int reuseport, int *bound_port,
                                char *why, size_t whylen)
{
    struct addrinfo hints;
    struct addrinfo *ai = NULL;
    char portstr[16];
    evutil_socket_t fd = -1;
    int one = 1;
    int rc;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        lurk_why(why, whylen, "listen %s:%d: %s", host, port, gai_strerror(rc));
        goto end;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        lurk_why(why, whylen, "listen %s:%d: socket: %s", host, port, strerror(errno));
        goto end;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0
        || (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)) {
        lurk_why(why, whylen, "listen %s:%d: setsockopt: %s", host, port, strerror(errno));
        goto fail;
    }
    /* accepted sockets inherit it on Linux; on_conn_event sets it again */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        lurk_why(why, whylen, "listen %s:%d: %s", host, port, strerror(errno));
        goto fail;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        lurk_why(why, whylen, "listen %s:%d: getsockname: %s", host, port, strerror(errno));
        goto fail;
    }
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    goto end;

fail:
    close(fd);
    fd = -1;
end:
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    return fd;
}

static evutil_socket_t bind_unix(const char *path, char *why, size_t whylen)
{
    struct sockaddr_un sun;
    struct stat st;
    evutil_socket_t fd = -1;
    mode_t old;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        lurk_why(why, whylen, "unix_socket %s: path too long", path);
        goto end;
    }
    memcpy(sun.sun_path, path, strlen(path));
    /* a socket left by a previous run; anything else is never removed */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            lurk_why(why, whylen, "unix_socket %s: exists and is not a socket", path);
            goto end;
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        lurk_why(why, whylen, "unix_socket %s: %s", path, strerror(errno));
        goto end;
    }
    old = umask(0117);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        umask(old);
        lurk_why(why, whylen, "unix_socket %s: %s", path, strerror(errno));
        close(fd);
        fd = -1;
        goto end;
    }
    umask(old);
    if (chmod(path, 0660) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        lurk_why(why, whylen, "unix_socket %s: %s", path, strerror(errno));
        close(fd);
        fd = -1;
        unlink(path);
    }

end:
    return fd;
}

static struct evhttp *make_evhttp(lurk_srv_loop *l, int tls)
{
    struct evhttp *http = evhttp_new(l->base);

    if (http == NULL) {
        return NULL;
    }
    evhttp_set_max_headers_size(http, MAX_HEADERS_SIZE);
    evhttp_set_default_content_type(http, LURK_PROTO_MEDIA_TYPE);
    /* every method reaches on_request, which answers with a LurkResponse */
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD
                                         | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE
                                         | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE
                                         | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http, on_request, l);
    if (tls) {
        evhttp_set_bevcb(http, on_new_tls_conn, l);
    }
    return http;
}

/* Each base is used by its own thread only (no locks); the changelist
 * folds the enable/disable pairs of a request into fewer epoll_ctl calls. */
static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base = NULL;

    if (cfg != NULL) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    /* 0 and 1 (libevent's default for new events: n / 2) for the work,
     * LOOP_PRIO_IDLE for the idle detector, which only runs when no other
     * event is active. */
    if (base != NULL && event_base_priority_init(base, LOOP_PRIO_IDLE + 1) != 0) {
        event_base_free(base);
        base = NULL;
    }
    return base;
}

static void format_addr(char *out, size_t len, const char *host, int port)
{
    if (strchr(host, ':') != NULL) {
        snprintf(out, len, "[%s]:%d", host, port);
    } else {
        snprintf(out, len, "%s:%d", host, port);
    }
}

lurk_err lurk_srv_http_new(const lurk_srv_conf *conf, OSSL_LIB_CTX *libctx,
                           LURK_SRV_KEYSTORE *keys, LURK_SRV_AUDIT *audit,
                           LURK_SRV_HTTP **out, char *why, size_t whylen)
{
    LURK_SRV_HTTP *h = NULL;
    int ports[LURK_SRV_MAX_LISTEN];
    lurk_err err = LURK_ERR_INTERNAL;

    *out = NULL;
    if (conn_idx < 0) {
        conn_idx = SSL_get_ex_new_index(0, "lurk conn", NULL, NULL, conn_ex_free);
        if (conn_idx < 0) {
            lurk_why(why, whylen, "cannot register SSL ex_data");
            goto end;
        }
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        lurk_why(why, whylen, "out of memory");
        goto end;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->libctx = libctx;
    h->keys = keys;
    lurk_srv_keystore_up_ref(keys);
    h->lim.max_body = conf->max_body;
    h->lim.header_timeout = conf->header_timeout;
    h->lim.idle_timeout = conf->idle_timeout;
    atomic_init(&h->gen, 1);
    atomic_init(&h->conns, 0);
    atomic_init(&h->max_conns, conf->max_connections);
    if (conf->n_listen > 0) {
        err = lurk_srv_tls_ctx_new(conf, libctx, &h->tls, why, whylen);
        if (err != LURK_OK) {
            goto end;
        }
        err = LURK_ERR_INTERNAL;
    }
    h->n_loops = (size_t)conf->threads;
    h->loops = calloc(h->n_loops, sizeof(*h->loops));
    if (h->loops == NULL) {
        lurk_why(why, whylen, "out of memory");
        goto end;
    }
    for (size_t i = 0; i < h->n_loops; i++) {
        h->loops[i].ctl[0] = -1;
        h->loops[i].ctl[1] = -1;
    }
    for (size_t j = 0; j < conf->n_listen; j++) {
        char host[256];

        if (lurk_srv_split_addr(conf->listen[j], host, sizeof(host), &ports[j]) != LURK_OK) {
            lurk_why(why, whylen, "bad listen address '%s'", conf->listen[j]);
            err = LURK_ERR_CONFIG;
            goto end;
        }
    }

    for (size_t i = 0; i < h->n_loops; i++) {
        lurk_srv_loop *l = &h->loops[i];

        l->srv = h;
        l->index = i;
        l->base = new_base();
        if (l->base == NULL || pipe2(l->ctl, O_NONBLOCK | O_CLOEXEC) != 0) {
            lurk_why(why, whylen, "cannot create event loop %zu", i);
            goto end;
        }
        l->ctl_ev = event_new(l->base, l->ctl[0], EV_READ | EV_PERSIST, on_ctl, l);
        l->idle_ev = event_new(l->base, -1, 0, on_idle, l);
        l->audit_ev = event_new(l->base, -1, 0, on_audit, l);
        l->audit_due = evtimer_new(l->base, on_audit_due, l);
        l->audit = lurk_srv_audit_buf_new(audit);
        if (l->ctl_ev == NULL || event_add(l->ctl_ev, NULL) != 0 || l->idle_ev == NULL
            || event_priority_set(l->idle_ev, LOOP_PRIO_IDLE) != 0 || l->audit_ev == NULL
            || l->audit_due == NULL || l->audit == NULL) {
            lurk_why(why, whylen, "cannot create event loop %zu", i);
            goto end;
        }
        loop_refresh(l);
        if (conf->n_listen > 0) {
            l->https = make_evhttp(l, 1);
            if (l->https == NULL) {
                lurk_why(why, whylen, "cannot create HTTP server %zu", i);
                goto end;
            }
        }
        for (size_t j = 0; j < conf->n_listen; j++) {
            char host[256];
            int port;
            int bound = 0;
            evutil_socket_t fd;

            lurk_srv_split_addr(conf->listen[j], host, sizeof(host), &port);
            if (i == 0 && ports[j] != 0) {
                fd = bind_tcp(host, ports[j], 0, &bound, why, whylen);
                if (fd < 0) {
                    err = LURK_ERR_IO;
                    goto end;
                }
                close(fd);
            }
            fd = bind_tcp(host, ports[j], 1, &bound, why, whylen);
            if (fd < 0) {
                err = LURK_ERR_IO;
                goto end;
            }
            ports[j] = bound; /* the other loops share this port */
            l->bound_http[l->n_bound] = l->https;
            l->bound[l->n_bound] = evhttp_accept_socket_with_handle(l->https, fd);
            if (l->bound[l->n_bound] == NULL) {
                close(fd);
                lurk_why(why, whylen, "listen %s: cannot accept", conf->listen[j]);
                goto end;
            }
            l->n_bound++;
            if (i == 0 && j == 0) {
                h->port = bound;
                format_addr(h->addr, sizeof(h->addr), host, bound);
            }
        }
        if (i == 0 && conf->unix_socket != NULL) {
            evutil_socket_t fd = bind_unix(conf->unix_socket, why, whylen);

            if (fd < 0) {
                err = LURK_ERR_IO;
                goto end;
            }
            h->unix_path = strdup(conf->unix_socket);
            l->plain = make_evhttp(l, 0);
            if (h->unix_path == NULL || l->plain == NULL) {
                close(fd);
                lurk_why(why, whylen, "cannot create the unix socket server");
                goto end;
            }
            l->bound_http[l->n_bound] = l->plain;
            l->bound[l->n_bound] = evhttp_accept_socket_with_handle(l->plain, fd);
            if (l->bound[l->n_bound] == NULL) {
                close(fd);
                lurk_why(why, whylen, "unix_socket %s: cannot accept", conf->unix_socket);
                goto end;
            }
            l->n_bound++;
        }
        apply_limits(l);
    }
    *out = h;
    h = NULL;
    err = LURK_OK;

end:
    lurk_srv_http_free(h);
    return err;
}

int lurk_srv_http_port(const LURK_SRV_HTTP *h)
{
    return h->port;
}

const char *lurk_srv_http_addr(const LURK_SRV_HTTP *h)
{
    return h->addr;
}

lurk_err lurk_srv_http_start(LURK_SRV_HTTP *h, char *why, size_t whylen)
{
    for (size_t i = 0; i < h->n_loops; i++) {
        lurk_srv_loop *l = &h->loops[i];
        int rc = pthread_create(&l->thread, NULL, loop_main, l);

        if (rc != 0) {
            lurk_why(why, whylen, "cannot start event loop thread: %s", strerror(rc));
            return LURK_ERR_INTERNAL;
        }
        l->started = 1;
    }
    return LURK_OK;
}

static void notify(lurk_srv_loop *l, const unsigned char *msg, size_t len)
{
    if (l->ctl[1] >= 0 && write(l->ctl[1], msg, len) != (ssize_t)len) {
        lurk_srv_log(LURK_LOG_WARN, "cannot notify event loop %zu: %s", l->index,
                     strerror(errno));
    }
}

void lurk_srv_http_reload(LURK_SRV_HTTP *h, const lurk_srv_conf *conf, LURK_SRV_KEYSTORE *keys,
                          SSL_CTX *tls)
{
    LURK_SRV_KEYSTORE *old_keys;
    SSL_CTX *old_tls;
    const unsigned char msg = 'r';

    lurk_srv_keystore_up_ref(keys);
    pthread_mutex_lock(&h->lock);
    old_keys = h->keys;
    old_tls = h->tls;
    h->keys = keys;
    h->tls = tls != NULL ? tls : old_tls;
    if (tls == NULL) {
        old_tls = NULL;
    }
    h->lim.max_body = conf->max_body;
    h->lim.header_timeout = conf->header_timeout;
    h->lim.idle_timeout = conf->idle_timeout;
    atomic_store_explicit(&h->max_conns, conf->max_connections, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->gen, 1, memory_order_release);
    pthread_mutex_unlock(&h->lock);
    lurk_srv_keystore_free(old_keys);
    SSL_CTX_free(old_tls);
    for (size_t i = 0; i < h->n_loops; i++) {
        notify(&h->loops[i], &msg, 1);
    }
}

void lurk_srv_http_stop(LURK_SRV_HTTP *h, unsigned drain_ms)
{
    const unsigned char msg = 'q';

    if (h == NULL || h->stopped) {
        return;
    }
    h->stopped = 1;
    h->drain_ms = drain_ms; /* read by the loops after the pipe write */
    for (size_t i = 0; i < h->n_loops; i++) {
        notify(&h->loops[i], &msg, 1);
    }
    for (size_t i = 0; i < h->n_loops; i++) {
        if (h->loops[i].started) {
            pthread_join(h->loops[i].thread, NULL);
            h->loops[i].started = 0;
        }
    }
}

void lurk_srv_http_free(LURK_SRV_HTTP *h)
{
    if (h == NULL) {
        return;
    }
    lurk_srv_http_stop(h, 0);
    for (size_t i = 0; h->loops != NULL && i < h->n_loops; i++) {
        lurk_srv_loop *l = &h->loops[i];

        /* frees every connection, and with it its lurk_srv_conn */
        if (l->https != NULL) {
            evhttp_free(l->https);
        }
        if (l->plain != NULL) {
            evhttp_free(l->plain);
        }
        if (l->base != NULL) {
            event_base_loop(l->base, EVLOOP_NONBLOCK); /* deferred frees */
        }
        if (l->audit != NULL) {
            loop_audit_flush(l, 1); /* lines of the deferred frees, if any */
        }
        if (l->drain_ev != NULL) {
            event_free(l->drain_ev);
        }
        if (l->ctl_ev != NULL) {
            event_free(l->ctl_ev);
        }
        if (l->idle_ev != NULL) {
            event_free(l->idle_ev);
        }
        if (l->audit_ev != NULL) {
            event_free(l->audit_ev);
        }
        if (l->audit_due != NULL) {
            event_free(l->audit_due);
        }
        if (l->base != NULL) {
            event_base_free(l->base);
        }
        for (size_t j = 0; j < 2; j++) {
            if (l->ctl[j] >= 0) {
                close(l->ctl[j]);
            }
        }
        free(l->unix_by_fd);
        lurk_srv_audit_buf_free(l->audit);
        lurk_srv_keystore_free(l->keys);
        SSL_CTX_free(l->tls);
    }
    free(h->loops);
    if (h->unix_path != NULL) {
        unlink(h->unix_path);
        free(h->unix_path);
    }
    lurk_srv_keystore_free(h->keys);
    SSL_CTX_free(h->tls);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
