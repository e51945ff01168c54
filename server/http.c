/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c - the key server's network front: the HTTP/1.1 exchange over
 * mutual TLS, event loops, limits, admission and queueing.  It hands each
 * request body to the pure handler and writes what comes back; it knows no
 * field of the protocol.  The request parser is http1.c, the TLS context
 * and peer identity tls.c, the listening sockets listen.c, the log log.c.
 *
 * Threads: `threads` event loops, each with its own event_base and
 * listening sockets (SO_REUSEPORT, so the kernel spreads connections and no
 * loop ever touches another's state).  The main thread talks to a loop
 * only through the loop's control pipe.  Each connection is a socket, an
 * SSL (TCP) and plain byte buffers: no bufferevent, no evhttp (libevent
 * 2.1's evhttp reads a connection's next request only once the previous
 * reply has been written, one write per reply, so pipelining bought
 * nothing; measured in the commit that replaced it).
 *
 * A request's life: the read callback reads what the socket has (a bounded
 * number of records), parses every complete request out of it (http1.c),
 * and queues each on its connection with the time its bytes were read.  No
 * handler runs there.  The work runs in slices (on_work): client identities
 * in turn (flows: a client does not get more by opening more connections),
 * and within one its connections in turn; identities and connections that
 * just became busy first (a queue of new ones before the queue of those
 * with a backlog, as fq_codel's new flows, which keep a place among the old
 * for one round once served),
 * each turn serving its requests for up to TURN_US (so that
 * its replies can leave together), for at most SLICE_US (or SLICE_MAX
 * requests) in all.  A connection's replies leave at the end of its turn
 * in one SSL_write (one TLS record up to 16 KiB, one write(2)); when it is
 * also next (the only busy one), at the end of the slice.  A slice that leaves work re-arms
 * itself as a zero timer, so epoll runs between slices and requests that
 * arrived meanwhile are read and timestamped within one slice; a slice
 * started by a read runs in the same loop iteration, after the reads.  So
 * a long operation (an RSA-4096 sign) delays requests of other connections
 * by about one operation, and a pipelining connection cannot make the
 * others wait behind its whole burst.
 *
 * Shedding: a request that waited longer than queue_max_ms between the
 * read of its bytes and the start of its turn is answered 503 with
 * Retry-After, cheaply, instead of being worked on late.  The wait in the
 * kernel's socket buffer is not seen, but it is at most one slice.
 *
 * Limits: header_timeout (TLS handshake plus the first request),
 * idle_timeout (no bytes in or out while no request of the connection
 * waits for us), max_body (a LurkResponse 413; a body up to twice the
 * limit is read and dropped and the connection kept, a larger one closes
 * it), request head size (LURK_HTTP1_MAX_HEAD), requests queued per
 * connection (QUEUE_HIGH: reading stops until the queue halves) and
 * replies not yet taken by the client (OUT_HIGH: the connection is not
 * served until they drain), max_connections (counted over all loops; a
 * connection past the cap is closed at once, before any TLS work).  Every
 * refusal the front makes is a LurkResponse (lurk_srv_error_response) with
 * its audit line; a malformed or ambiguous head is a 400 and closes the
 * connection (nothing after it can be framed).  A connection we close
 * after a reply is half-closed and drained for LINGER_MS, so that the
 * reply is not lost to a reset.
 *
 * Reload: the current key store, TLS context and limits sit behind one
 * mutex with a generation number.  A loop holds its own reference to each
 * and refreshes them when the generation moves (checked per accept and per
 * slice with one atomic load; the control pipe makes idle loops drop old
 * keys at once).  A request is handled synchronously inside its loop, so
 * the loop's reference keeps the key store alive for the whole call.
 *
 * Drain (SIGTERM): what the listen queue holds is accepted, listeners close;
 * every request read or arriving is answered, the last reply of each
 * connection with Connection: close; idle connections get DRAIN_IDLE_MS to
 * ask; until none is left or drain_ms passed (loop_drain).
 *
 * Audit: each loop batches its audit lines (audit.c) and writes them after
 * its replies: from an event of the lowest priority, which libevent runs
 * only when the loop has nothing else to do, or, when that one starves,
 * once the batch is half full or LURK_SRV_AUDIT_MAX_AGE_MS old (a timer
 * started with the batch).  A loop writes what is left when it exits.
 *
 * Identity: the subject CN of the verified client certificate (TCP), or
 * "uid:N" from SO_PEERCRED (unix socket, plain HTTP), fixed per connection.
 */
#include "srv_front.h"
#include "srv_http1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define ACCEPT_MAX 32              /* accepts per listener callback */
#define LOOP_PRIO_WORK 1           /* I/O, timers and slices: libevent's default */
#define LOOP_PRIO_IDLE 2
#define RETRY_AFTER_MS 1000
#define DRAIN_TICK_MS 50
#define LINGER_MS 1000
#define DRAIN_IDLE_MS 250          /* draining: an idle connection's last chance */
#define REFUSE_LOG_INTERVAL 10     /* seconds between "connection cap" warnings */
#define HS_LOG_INTERVAL 10         /* seconds of a failed-handshake log budget */
#define HS_LOG_LINES 5             /* failed handshakes logged one by one per interval */
#define IDENT_BUCKETS 256          /* identity -> connections table */
#define AUDIT_LOG_INTERVAL 10      /* seconds between "audit log" errors */
#define SLICE_US 1000              /* work per slice before epoll runs again */
#define SLICE_MAX 256              /* requests per slice */
#define TURN_US 200                /* work for one connection per turn */
#define READS_MAX 64               /* TLS records (reads) per read callback */
#define READ_CHUNK 16384           /* room made before each read: one record */
#define QUEUE_HIGH 256             /* requests queued on a connection: stop reading */
#define OUT_HIGH (256 * 1024)      /* unsent reply bytes: stop serving the connection */

typedef struct lurk_srv_loop lurk_srv_loop;
typedef struct lurk_srv_conn lurk_srv_conn;
typedef struct lurk_srv_flow lurk_srv_flow;

/* One parsed request, queued on its connection. */
typedef struct lurk_srv_req {
    struct lurk_srv_req *next;
    uint64_t t_read;           /* when its last bytes were read (ns, monotonic) */
    lurk_err err;              /* LURK_OK: for the handler; else refused */
    const char *why;           /* the refusal's description (static) */
    unsigned flags;
    size_t len;
    char body[];
} lurk_srv_req;

#define REQ_CLOSE 1u           /* close the connection after the reply */
#define REQ_HEAD 2u            /* HEAD: the reply has no body */
#define REQ_ALLOW_POST 4u      /* the reply names the allowed method */
#define REQ_KEEP_ALIVE 8u      /* HTTP/1.0 with Connection: keep-alive */

enum { CONN_HANDSHAKE = 0, CONN_OPEN, CONN_LINGER };
enum { RUNQ_NONE = 0, RUNQ_NEW, RUNQ_OLD };

/* One client identity's connections with work, in one loop: the loop serves
 * identities in turn, and each identity's connections in turn. */
struct lurk_srv_flow {
    lurk_srv_flow *hnext;          /* the loop's table */
    lurk_srv_flow *rprev;          /* the loop's run queue of identities */
    lurk_srv_flow *rnext;
    int runq;
    int refs;                      /* connections of this identity in the loop */
    lurk_srv_conn *new_head;       /* its connections' run queues */
    lurk_srv_conn *new_tail;
    lurk_srv_conn *old_head;
    lurk_srv_conn *old_tail;
    char id[];
};

#define FLOW_BUCKETS 64

struct lurk_srv_conn {
    lurk_srv_loop *loop;
    lurk_srv_conn *prev;           /* the loop's connections */
    lurk_srv_conn *next;
    lurk_srv_flow *flow;           /* its identity's (NULL until admitted) */
    lurk_srv_conn *rprev;          /* the run queue it is on (runq), its flow's */
    lurk_srv_conn *rnext;
    int runq;
    int dirty;                     /* answered in this slice, not flushed */
    int fd;
    SSL *ssl;                      /* NULL: unix socket, plain */
    struct event *rev;
    struct event *wev;
    struct event *tev;             /* header deadline, idle timeout, linger */
    struct event *kev;             /* read again in the next iteration */
    int state;
    int reading;                   /* rev is added */
    int writing;                   /* wev is added */
    int read_wants_write;
    int write_wants_read;
    int rd_done;                   /* no more requests: EOF, error, close */
    int closing;                   /* close once the replies are out */
    int peer_eof;
    int got_first;                 /* a whole request arrived: header deadline met */
    int sent_continue;
    int in_pre;                    /* on the loop's list of unauthenticated */
    int ident_held;                /* counted in the identity table */
    int over_cap;                  /* its identity had max_per_client already */
    lurk_srv_conn *pprev;          /* the loop's unauthenticated connections, */
    lurk_srv_conn *pnext;          /* oldest first */
    uint64_t t_accept;
    uint64_t last_active;
    char *in;
    size_t in_len;
    size_t in_cap;
    size_t discard;                /* body bytes of a refused request to skip */
    lurk_srv_req *q_head;
    lurk_srv_req *q_tail;
    size_t q_n;
    char *out;
    size_t out_off;
    size_t out_len;
    size_t out_cap;
    lurk_srv_peer peer;
    char identity[128];
    char address[64];
    char cap_why[256];             /* the over_cap refusal's description */
};

typedef struct {
    size_t max_body;
    int header_timeout;
    int handshake_timeout;         /* <= header_timeout */
    int idle_timeout;
    int queue_max_ms;
    size_t pre_max;                /* unauthenticated connections per loop */
    int per_client;                /* connections per identity, all loops */
    int max_handshakes;            /* as configured or derived (for messages) */
} limits;

typedef struct {
    lurk_srv_loop *loop;
    int fd;
    int is_unix;
    struct event *ev;
} listener;

struct lurk_srv_loop {
    LURK_SRV_HTTP *srv;
    size_t index;
    struct event_base *base;
    listener lst[LURK_SRV_MAX_LISTEN + 1];
    size_t n_lst;
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
    lurk_srv_conn *pre_head;       /* unauthenticated connections, oldest first */
    lurk_srv_conn *pre_tail;
    size_t n_pre;
    time_t last_refuse_log;
    time_t last_hs_log;            /* failed handshakes: one line per interval */
    unsigned long hs_unlogged;
    unsigned hs_logged;            /* lines in the current interval */
    time_t last_cap_log;
    lurk_srv_flow *flows[FLOW_BUCKETS];
    lurk_srv_flow *fnew_head;      /* identities with work: new first, then old */
    lurk_srv_flow *fnew_tail;
    lurk_srv_flow *fold_head;
    lurk_srv_flow *fold_tail;
    struct event *work_ev;         /* one slice of work */
    int work_sched;
    int in_work;
    lurk_srv_conn *dirty[SLICE_MAX];
    size_t n_dirty;
    time_t date_sec;               /* the Date header, once a second */
    char date[40];
    struct event *idle_ev;         /* lowest priority: runs when idle */
    LURK_SRV_AUDIT_BUF *audit;     /* this loop's audit lines */
    struct event *audit_due;       /* batch old or full, loss untold: */
    struct event *audit_ev;        /* then this one writes and reports */
    size_t audit_lost;             /* lost lines not reported yet */
    int audit_errno;
    time_t last_audit_log;
};

/* Connections per client identity, over all loops. */
typedef struct ident_ent {
    struct ident_ent *next;
    int n;
    char id[];
} ident_ent;

struct lurk_srv_http_st {
    OSSL_LIB_CTX *libctx;
    pthread_mutex_t ident_lock;
    ident_ent *ident[IDENT_BUCKETS];
    atomic_ulong hs_failed;          /* TLS handshakes that failed */
    atomic_ulong hs_timeouts;        /* ... that took longer than handshake_timeout */
    atomic_ulong hs_evicted;         /* ... closed for a newer one (max_handshakes) */
    atomic_ulong client_capped;      /* connections refused by max_per_client */
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

/* ---- small helpers -------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void ms_to_tv(uint64_t ms, struct timeval *tv)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

/* Room for n more bytes in *buf (capacity *cap, used len). */
static int grow(char **buf, size_t *cap, size_t len, size_t n)
{
    size_t want = len + n;
    size_t c = *cap != 0 ? *cap : 4096;
    char *p;

    if (want <= *cap) {
        return 1;
    }
    while (c < want) {
        c *= 2;
    }
    p = realloc(*buf, c);
    if (p == NULL) {
        return 0;
    }
    *buf = p;
    *cap = c;
    return 1;
}


/* ---- connections ---------------------------------------------------------- */

static void loop_refresh(lurk_srv_loop *l);
static void loop_audit(lurk_srv_loop *l, const lurk_srv_audit_rec *rec);
static void conn_on_read(lurk_srv_conn *c);
static int conn_flush(lurk_srv_conn *c);

static void conn_link(lurk_srv_conn *c)
{
    lurk_srv_loop *l = c->loop;

    c->prev = NULL;
    c->next = l->conns;
    if (l->conns != NULL) {
        l->conns->prev = c;
    }
    l->conns = c;
    l->n_conns++;
}

static void conn_unlink(lurk_srv_conn *c)
{
    lurk_srv_loop *l = c->loop;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        l->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    l->n_conns--;
    atomic_fetch_sub_explicit(&l->srv->conns, 1, memory_order_relaxed);
}

/* ---- unauthenticated connections and identities --------------------------- */


static void pre_link(lurk_srv_conn *c)
{
    lurk_srv_loop *l = c->loop;

    c->pnext = NULL;
    c->pprev = l->pre_tail;
    if (l->pre_tail != NULL) {
        l->pre_tail->pnext = c;
    } else {
        l->pre_head = c;
    }
    l->pre_tail = c;
    l->n_pre++;
    c->in_pre = 1;
}

static void pre_unlink(lurk_srv_conn *c)
{
    lurk_srv_loop *l = c->loop;

    if (!c->in_pre) {
        return;
    }
    if (c->pprev != NULL) {
        c->pprev->pnext = c->pnext;
    } else {
        l->pre_head = c->pnext;
    }
    if (c->pnext != NULL) {
        c->pnext->pprev = c->pprev;
    } else {
        l->pre_tail = c->pprev;
    }
    c->pprev = c->pnext = NULL;
    l->n_pre--;
    c->in_pre = 0;
}

/* 1: c has not sent a whole ClientHello and has no bytes waiting either
 * (an idle socket, or one stalled in the middle of its ClientHello). */
static int pre_stalled(const lurk_srv_conn *c)
{
    int pending = 0;

    if (c->ssl == NULL || SSL_get_state(c->ssl) != TLS_ST_BEFORE) {
        return 0;
    }
    return ioctl(c->fd, FIONREAD, &pending) == 0 && pending == 0;
}

/* The unauthenticated connection to close for a newer one: the oldest that
 * is stalled (idle, or stopped inside its ClientHello: such sockets cost
 * their owner nothing), else the oldest.  A client with a certificate has
 * its ClientHello in the socket buffer by the time it is accepted, and is
 * past it within the same read, so stalled sockets, however fast they are
 * reopened, push out only each other. */
static lurk_srv_conn *pre_victim(lurk_srv_loop *l)
{
    for (lurk_srv_conn *c = l->pre_head; c != NULL; c = c->pnext) {
        if (pre_stalled(c)) {
            return c;
        }
    }
    return l->pre_head;
}

/* FNV-1a of an identity: the bucket of the identity table and of a loop's
 * flow table. */
static uint32_t ident_hash(const char *id)
{
    uint32_t hash = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++) {
        hash = (hash ^ *p) * 16777619u;
    }
    return hash;
}

static size_t ident_bucket(const char *id)
{
    return ident_hash(id) % IDENT_BUCKETS;
}

/* One more connection of identity id; its count after, 0 on no memory. */
static int ident_acquire(LURK_SRV_HTTP *h, const char *id)
{
    size_t b = ident_bucket(id);
    ident_ent *e;
    int n = 0;

    pthread_mutex_lock(&h->ident_lock);
    for (e = h->ident[b]; e != NULL && strcmp(e->id, id) != 0; e = e->next) {
    }
    if (e == NULL) {
        size_t len = strlen(id) + 1;

        e = malloc(sizeof(*e) + len);
        if (e != NULL) {
            memcpy(e->id, id, len);
            e->n = 0;
            e->next = h->ident[b];
            h->ident[b] = e;
        }
    }
    if (e != NULL) {
        n = ++e->n;
    }
    pthread_mutex_unlock(&h->ident_lock);
    return n;
}

static void ident_release(LURK_SRV_HTTP *h, const char *id)
{
    size_t b = ident_bucket(id);
    ident_ent **pp;

    pthread_mutex_lock(&h->ident_lock);
    for (pp = &h->ident[b]; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            ident_ent *e = *pp;

            if (--e->n == 0) {
                *pp = e->next;
                free(e);
            }
            break;
        }
    }
    pthread_mutex_unlock(&h->ident_lock);
}

/* ---- run queues: identities in turn, their connections in turn ------------ */

static void flow_q_remove(lurk_srv_loop *l, lurk_srv_flow *f)
{
    lurk_srv_flow **head = f->runq == RUNQ_NEW ? &l->fnew_head : &l->fold_head;
    lurk_srv_flow **tail = f->runq == RUNQ_NEW ? &l->fnew_tail : &l->fold_tail;

    if (f->runq == RUNQ_NONE) {
        return;
    }
    if (f->rprev != NULL) {
        f->rprev->rnext = f->rnext;
    } else {
        *head = f->rnext;
    }
    if (f->rnext != NULL) {
        f->rnext->rprev = f->rprev;
    } else {
        *tail = f->rprev;
    }
    f->rprev = f->rnext = NULL;
    f->runq = RUNQ_NONE;
}

static void flow_q_push(lurk_srv_loop *l, lurk_srv_flow *f, int which)
{
    lurk_srv_flow **head = which == RUNQ_NEW ? &l->fnew_head : &l->fold_head;
    lurk_srv_flow **tail = which == RUNQ_NEW ? &l->fnew_tail : &l->fold_tail;

    f->rnext = NULL;
    f->rprev = *tail;
    if (*tail != NULL) {
        (*tail)->rnext = f;
    } else {
        *head = f;
    }
    *tail = f;
    f->runq = which;
}

/* The loop's flow for identity id, one more reference; NULL: no memory. */
static lurk_srv_flow *flow_get(lurk_srv_loop *l, const char *id)
{
    uint32_t hash = ident_hash(id);
    lurk_srv_flow *f;
    size_t len = strlen(id) + 1;
    for (f = l->flows[hash % FLOW_BUCKETS]; f != NULL; f = f->hnext) {
        if (strcmp(f->id, id) == 0) {
            f->refs++;
            return f;
        }
    }
    f = calloc(1, sizeof(*f) + len);
    if (f == NULL) {
        return NULL;
    }
    memcpy(f->id, id, len);
    f->refs = 1;
    f->hnext = l->flows[hash % FLOW_BUCKETS];
    l->flows[hash % FLOW_BUCKETS] = f;
    return f;
}

static void flow_put(lurk_srv_loop *l, lurk_srv_flow *f)
{
    lurk_srv_flow **pp;

    if (f == NULL || --f->refs > 0) {
        return;
    }
    flow_q_remove(l, f); /* empty by now: its connections left its queues */
    for (size_t b = 0; b < FLOW_BUCKETS; b++) {
        for (pp = &l->flows[b]; *pp != NULL; pp = &(*pp)->hnext) {
            if (*pp == f) {
                *pp = f->hnext;
                free(f);
                return;
            }
        }
    }
}

static void runq_remove(lurk_srv_conn *c)
{
    lurk_srv_flow *f = c->flow;
    lurk_srv_conn **head;
    lurk_srv_conn **tail;

    if (c->runq == RUNQ_NONE || f == NULL) {
        return;
    }
    head = c->runq == RUNQ_NEW ? &f->new_head : &f->old_head;
    tail = c->runq == RUNQ_NEW ? &f->new_tail : &f->old_tail;
    if (c->rprev != NULL) {
        c->rprev->rnext = c->rnext;
    } else {
        *head = c->rnext;
    }
    if (c->rnext != NULL) {
        c->rnext->rprev = c->rprev;
    } else {
        *tail = c->rprev;
    }
    c->rprev = c->rnext = NULL;
    c->runq = RUNQ_NONE;
    if (f->new_head == NULL && f->old_head == NULL) {
        flow_q_remove(c->loop, f);
    }
}

static void runq_push(lurk_srv_conn *c, int which)
{
    lurk_srv_flow *f = c->flow;
    lurk_srv_conn **head;
    lurk_srv_conn **tail;

    if (f == NULL) {
        return; /* not admitted: never has requests */
    }
    head = which == RUNQ_NEW ? &f->new_head : &f->old_head;
    tail = which == RUNQ_NEW ? &f->new_tail : &f->old_tail;
    c->rnext = NULL;
    c->rprev = *tail;
    if (*tail != NULL) {
        (*tail)->rnext = c;
    } else {
        *head = c;
    }
    *tail = c;
    c->runq = which;
    if (f->runq == RUNQ_NONE) {
        flow_q_push(c->loop, f, which);
    }
}

/* The connection the next runq_pop returns, or NULL. */
static lurk_srv_conn *runq_peek(const lurk_srv_loop *l)
{
    const lurk_srv_flow *f = l->fnew_head != NULL ? l->fnew_head : l->fold_head;

    if (f == NULL) {
        return NULL;
    }
    return f->new_head != NULL ? f->new_head : f->old_head;
}

/* The next identity's next connection; the identity then goes to the end
 * of the old queue, so that the next pop is another identity's turn. */
static lurk_srv_conn *runq_pop(lurk_srv_loop *l, int *was_new)
{
    lurk_srv_flow *f = l->fnew_head != NULL ? l->fnew_head : l->fold_head;
    lurk_srv_conn *c;

    if (f == NULL) {
        return NULL;
    }
    c = f->new_head != NULL ? f->new_head : f->old_head;
    *was_new = c->runq == RUNQ_NEW;
    runq_remove(c);
    if (f->runq != RUNQ_NONE) {
        flow_q_remove(l, f);
        flow_q_push(l, f, RUNQ_OLD);
    }
    return c;
}

/* A slice now (from a read: after this iteration's other reads), or in the
 * next iteration, after epoll (from a slice). */
static void loop_schedule(lurk_srv_loop *l)
{
    static const struct timeval zero = { 0, 0 };

    if (l->work_sched) {
        return;
    }
    l->work_sched = 1;
    if (l->in_work) {
        evtimer_add(l->work_ev, &zero);
    } else {
        event_active(l->work_ev, EV_TIMEOUT, 0);
    }
}

static size_t conn_unsent(const lurk_srv_conn *c)
{
    return c->out_len - c->out_off;
}

/* Puts a connection with queued requests on a run queue, when it may be served. */
static void conn_make_runnable(lurk_srv_conn *c, int which)
{
    if (c->runq != RUNQ_NONE || c->q_n == 0 || c->state != CONN_OPEN
        || conn_unsent(c) >= OUT_HIGH) {
        return;
    }
    runq_push(c, which);
    loop_schedule(c->loop);
}

static void set_ev(struct event *ev, int *on, int want)
{
    if (want && !*on) {
        event_add(ev, NULL);
        *on = 1;
    } else if (!want && *on) {
        event_del(ev);
        *on = 0;
    }
}

/* Read interest: open, not done, queue and unsent replies under their marks. */
static void conn_update_read(lurk_srv_conn *c)
{
    int want;

    if (c->state == CONN_OPEN) {
        want = !c->rd_done && !c->closing && c->q_n < QUEUE_HIGH && conn_unsent(c) < OUT_HIGH;
        /* once stopped, wait until the queue has halved */
        if (want && !c->reading && c->q_n > QUEUE_HIGH / 2) {
            want = 0;
        }
    } else {
        want = 1; /* handshake, linger */
    }
    set_ev(c->rev, &c->reading, want);
}

static void conn_free(lurk_srv_conn *c)
{
    lurk_srv_req *r;

    if (c == NULL) {
        return;
    }
    runq_remove(c);
    flow_put(c->loop, c->flow);
    c->flow = NULL;
    pre_unlink(c);
    if (c->ident_held) {
        ident_release(c->loop->srv, c->identity);
    }
    conn_unlink(c);
    while ((r = c->q_head) != NULL) {
        c->q_head = r->next;
        free(r);
    }
    if (c->rev != NULL) {
        event_free(c->rev);
    }
    if (c->wev != NULL) {
        event_free(c->wev);
    }
    if (c->tev != NULL) {
        event_free(c->tev);
    }
    if (c->kev != NULL) {
        event_free(c->kev);
    }
    SSL_free(c->ssl);
    ERR_clear_error();
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->in);
    free(c->out);
    free(c);
}

/* The replies are out and nothing more will be read: half-close, then
 * drop what the client still sends for LINGER_MS (or until its EOF), so
 * that unread input does not turn our close into a reset that destroys
 * the reply in flight. */
static void conn_linger(lurk_srv_conn *c)
{
    struct timeval tv;
    lurk_srv_req *r;

    c->state = CONN_LINGER;
    runq_remove(c);
    while ((r = c->q_head) != NULL) {
        c->q_head = r->next;
        free(r);
    }
    c->q_tail = NULL;
    c->q_n = 0;
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl); /* close_notify, best effort */
        ERR_clear_error();
    }
    shutdown(c->fd, SHUT_WR);
    set_ev(c->wev, &c->writing, 0);
    set_ev(c->rev, &c->reading, 1);
    ms_to_tv(LINGER_MS, &tv);
    evtimer_add(c->tev, &tv);
}

static void linger_read(lurk_srv_conn *c)
{
    char sink[4096];

    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        break;
    }
    conn_free(c);
}

/* Identity, once per connection (tls.c). */
static void conn_peer_tls(lurk_srv_conn *c)
{
    c->peer.authenticated = lurk_srv_tls_peer(c->ssl, c->identity, sizeof(c->identity));
}

/*
 * The peer is authenticated (TLS) or known (unix socket): it counts for its
 * identity.  One identity past max_connections_per_client keeps the
 * connection only to answer its first request with a LurkResponse 503 that
 * says why, and only for handshake_timeout; so one certificate cannot hold
 * every slot, while every other client can still connect.  The header
 * deadline runs on from the accept.  1: c is still there.
 */
static int conn_admit(lurk_srv_conn *c)
{
    lurk_srv_loop *l = c->loop;
    uint64_t now = now_ns();
    uint64_t deadline;
    struct timeval tv;
    int n;

    c->flow = flow_get(l, c->identity);
    if (c->flow == NULL) {
        conn_free(c); /* out of memory */
        return 0;
    }
    if (c->peer.authenticated) {
        n = ident_acquire(l->srv, c->identity);
        c->ident_held = n > 0;
        if (n > l->lim.per_client) {
            time_t t = time(NULL);

            c->over_cap = 1;
            atomic_fetch_add_explicit(&l->srv->client_capped, 1, memory_order_relaxed);
            snprintf(c->cap_why, sizeof(c->cap_why),
                     "client %s has %d connections already: max_connections_per_client = %d",
                     c->identity, n - 1, l->lim.per_client);
            if (t - l->last_cap_log >= REFUSE_LOG_INTERVAL) {
                l->last_cap_log = t;
                lurk_srv_log(LURK_LOG_WARN, "%s: refusing its new connections", c->cap_why);
            }
        }
    }
    deadline = c->t_accept + (uint64_t)l->lim.header_timeout * 1000000000u;
    if (c->over_cap) {
        deadline = now + (uint64_t)l->lim.handshake_timeout * 1000000000u;
    }
    ms_to_tv(deadline > now ? (deadline - now) / 1000000u + 1 : 1, &tv);
    evtimer_add(c->tev, &tv);
    return 1;
}

/*
 * A connection that never authenticated: a failed handshake (reason from
 * OpenSSL), a handshake past handshake_timeout, or one closed for a newer
 * one (max_handshakes).  Counted always; an audit line when the peer sent a
 * whole ClientHello (a socket stalled before that says nothing worth a
 * line, and a flood of them must not fill the audit log); the log
 * gets the first of each HS_LOG_INTERVAL and a count of the rest, so a flood
 * cannot flood the log.
 */
static void conn_hs_failed(lurk_srv_conn *c, atomic_ulong *counter, const char *reason,
                           const char *fix)
{
    lurk_srv_loop *l = c->loop;
    time_t now = time(NULL);
    int said_hello = c->ssl != NULL && SSL_get_state(c->ssl) != TLS_ST_BEFORE;

    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    if (said_hello) {
        lurk_srv_audit_rec rec;

        memset(&rec, 0, sizeof(rec));
        lurk_srv_audit_time(&rec);
        snprintf(rec.address, sizeof(rec.address), "%s", c->address);
        snprintf(rec.op, sizeof(rec.op), "Connect");
        rec.status = 401;
        rec.result = LURK_ERR_UNAUTHORIZED;
        snprintf(rec.detail, sizeof(rec.detail), "TLS handshake failed: %s", reason);
        loop_audit(l, &rec);
    }
    if (now - l->last_hs_log >= HS_LOG_INTERVAL) {
        if (l->hs_unlogged > 0) {
            lurk_srv_log(LURK_LOG_WARN, "%lu more connection(s) failed to authenticate in the "
                         "last %d s (not logged one by one)", l->hs_unlogged, HS_LOG_INTERVAL);
        }
        l->last_hs_log = now;
        l->hs_unlogged = 0;
        l->hs_logged = 0;
    }
    if (l->hs_logged < HS_LOG_LINES) {
        lurk_srv_log(LURK_LOG_WARN, "TLS handshake from %s failed: %s%s%s", c->address, reason,
                     fix[0] != '\0' ? " " : "", fix);
        l->hs_logged++;
    } else {
        l->hs_unlogged++;
    }
}


static void conn_handshake(lurk_srv_conn *c)
{
    int r;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->state = CONN_OPEN;
        pre_unlink(c);
        conn_peer_tls(c);
        set_ev(c->wev, &c->writing, 0);
        c->last_active = now_ns();
        if (!conn_admit(c)) {
            return;
        }
        conn_on_read(c); /* a request may have come with the Finished */
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        set_ev(c->wev, &c->writing, 0);
        break;
    case SSL_ERROR_WANT_WRITE:
        set_ev(c->wev, &c->writing, 1);
        break;
    default: {
        /* no certificate, a rogue CA, not TLS at all: nothing to answer,
         * but a trace */
        char reason[200];
        const char *fix;

        lurk_srv_tls_failure(c->ssl, SSL_get_error(c->ssl, r), reason, sizeof(reason), &fix);
        conn_hs_failed(c, &c->loop->srv->hs_failed, reason, fix);
        ERR_clear_error();
        conn_free(c);
        break;
    }
    }
}

#define IO_AGAIN (-1)
#define IO_WANT_WRITE (-2)
#define IO_WANT_READ (-3)
#define IO_EOF (-4)
#define IO_ERROR (-5)

static long conn_recv(lurk_srv_conn *c, char *buf, size_t len)
{
    if (c->ssl != NULL) {
        int n = SSL_read(c->ssl, buf, (int)len);

        if (n > 0) {
            return n;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            return IO_AGAIN;
        case SSL_ERROR_WANT_WRITE:
            return IO_WANT_WRITE;
        case SSL_ERROR_ZERO_RETURN:
            return IO_EOF;
        default:
            ERR_clear_error();
            return IO_ERROR;
        }
    } else {
        ssize_t n = recv(c->fd, buf, len, 0);

        if (n > 0) {
            return (long)n;
        }
        if (n == 0) {
            return IO_EOF;
        }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IO_AGAIN : IO_ERROR;
    }
}

static long conn_send(lurk_srv_conn *c, const char *buf, size_t len)
{
    if (c->ssl != NULL) {
        int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

        if (n > 0) {
            return n;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_WRITE:
            return IO_AGAIN;
        case SSL_ERROR_WANT_READ:
            return IO_WANT_READ;
        default:
            ERR_clear_error();
            return IO_ERROR;
        }
    } else {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

        if (n >= 0) {
            return (long)n;
        }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IO_AGAIN : IO_ERROR;
    }
}

/* ---- requests in ---------------------------------------------------------- */

static lurk_srv_req *req_new(size_t len, uint64_t t, lurk_err err, const char *why,
                             unsigned flags)
{
    lurk_srv_req *r = malloc(sizeof(*r) + len);

    if (r != NULL) {
        r->next = NULL;
        r->t_read = t;
        r->err = err;
        r->why = why;
        r->flags = flags;
        r->len = len;
    }
    return r;
}

static void conn_enqueue(lurk_srv_conn *c, lurk_srv_req *r)
{
    if (c->q_tail != NULL) {
        c->q_tail->next = r;
    } else {
        c->q_head = r;
    }
    c->q_tail = r;
    c->q_n++;
    if (r->flags & REQ_CLOSE) {
        c->rd_done = 1; /* nothing after it is read */
    }
    conn_make_runnable(c, RUNQ_NEW);
}

/* A refusal queued in order with the requests before it. */
static int conn_refuse(lurk_srv_conn *c, uint64_t t, lurk_err err, const char *why,
                       unsigned flags)
{
    lurk_srv_req *r = req_new(0, t, err, why, flags);

    if (r == NULL) {
        return 0;
    }
    conn_enqueue(c, r);
    return 1;
}

static void conn_queue_raw(lurk_srv_conn *c, const char *s, size_t n)
{
    if (grow(&c->out, &c->out_cap, c->out_len, n)) {
        memcpy(c->out + c->out_len, s, n);
        c->out_len += n;
    }
}

/* The queue entry for a whole request of body_len bytes: a refusal when the
 * peer, path or method is wrong (no body kept), else room for the body. */
static lurk_srv_req *conn_request(lurk_srv_conn *c, const lurk_http1_req *req, uint64_t t,
                                  unsigned flags, size_t body_len)
{
    if (!c->peer.authenticated) {
        return req_new(0, t, LURK_ERR_UNAUTHORIZED, "client not authenticated",
                       flags | REQ_CLOSE);
    }
    if (c->over_cap) {
        return req_new(0, t, LURK_ERR_UNAVAILABLE, c->cap_why, flags | REQ_CLOSE);
    }
    if (req->path_len != sizeof(LURK_PROTO_PATH) - 1
        || memcmp(req->path, LURK_PROTO_PATH, req->path_len) != 0) {
        return req_new(0, t, LURK_ERR_KEY_NOT_FOUND,
                       "no such resource: LURK is POST " LURK_PROTO_PATH, flags);
    }
    if (!req->is_post) {
        return req_new(0, t, LURK_ERR_INVALID_FORMAT,
                       "method not allowed: LURK is POST " LURK_PROTO_PATH,
                       flags | REQ_ALLOW_POST);
    }
    return req_new(body_len, t, LURK_OK, NULL, flags);
}

/* A request whose body is not all in yet: Expect: 100-continue is answered,
 * once, and only in order (nothing else owed).  0 when c is gone. */
static int conn_continue(lurk_srv_conn *c, const lurk_http1_req *req)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (!req->expect_continue || c->sent_continue || c->q_n != 0 || conn_unsent(c) != 0) {
        return 1;
    }
    c->sent_continue = 1;
    conn_queue_raw(c, cont, sizeof(cont) - 1);
    return conn_flush(c);
}

/* Every complete request in the input buffer goes on the queue (t: when
 * the bytes were read); the rest stays for the next read. */
static int conn_parse(lurk_srv_conn *c, uint64_t t)
{
    lurk_srv_loop *l = c->loop;
    size_t pos = 0;
    int ok = 1;

    while (c->q_n < QUEUE_HIGH && !c->rd_done && pos < c->in_len) {
        lurk_http1_req req;
        const char *why = NULL;
        lurk_http1_result res;
        unsigned flags = 0;
        lurk_srv_req *r;
        size_t total;

        if (c->discard > 0) {
            size_t k = c->in_len - pos < c->discard ? c->in_len - pos : c->discard;

            pos += k;
            c->discard -= k;
            continue;
        }
        res = lurk_http1_parse(c->in + pos, c->in_len - pos, LURK_HTTP1_MAX_HEAD, &req, &why);
        if (res == LURK_HTTP1_MORE) {
            break;
        }
        if (res == LURK_HTTP1_BAD) {
            ok = conn_refuse(c, t, LURK_ERR_INVALID_FORMAT, why, REQ_CLOSE);
            break;
        }
        if (res == LURK_HTTP1_TOO_LARGE) {
            ok = conn_refuse(c, t, LURK_ERR_TOO_LARGE, "request head too large", REQ_CLOSE);
            break;
        }
        if (req.is_head) {
            flags |= REQ_HEAD;
        }
        if (req.conn_close || (req.minor == 0 && !req.conn_keep_alive)) {
            flags |= REQ_CLOSE;
        } else if (req.minor == 0) {
            flags |= REQ_KEEP_ALIVE;
        }
        if (req.chunked) {
            size_t enc = 0;
            size_t blen = 0;

            res = lurk_http1_chunked(c->in + pos + req.head_len, c->in_len - pos - req.head_len,
                                     l->lim.max_body, NULL, &enc, &blen, &why);
            if (res == LURK_HTTP1_BAD) {
                ok = conn_refuse(c, t, LURK_ERR_INVALID_FORMAT, why, flags | REQ_CLOSE);
                break;
            }
            if (res == LURK_HTTP1_TOO_LARGE) {
                c->got_first = 1;
                ok = conn_refuse(c, t, LURK_ERR_TOO_LARGE, "request body too large",
                                 flags | REQ_CLOSE);
                break;
            }
            if (res == LURK_HTTP1_MORE) {
                if (!conn_continue(c, &req)) {
                    return 0; /* c is gone */
                }
                break;
            }
            c->sent_continue = 0;
            c->got_first = 1;
            r = conn_request(c, &req, t, flags, blen);
            if (r == NULL) {
                ok = 0;
                break;
            }
            if (r->err == LURK_OK) {
                lurk_http1_chunked(c->in + pos + req.head_len, c->in_len - pos - req.head_len,
                                   l->lim.max_body, r->body, &enc, &blen, &why);
            }
            pos += req.head_len + enc;
            conn_enqueue(c, r);
            continue;
        }
        if (req.body_len > l->lim.max_body) {
            /* a body up to twice the limit is skipped, a larger one not */
            if (req.body_len > 2 * l->lim.max_body) {
                flags |= REQ_CLOSE;
            } else {
                c->discard = req.body_len;
            }
            pos += req.head_len;
            c->got_first = 1;
            ok = conn_refuse(c, t, LURK_ERR_TOO_LARGE, "request body too large", flags);
            if (!ok) {
                break;
            }
            continue;
        }
        total = req.head_len + req.body_len;
        if (c->in_len - pos < total) {
            if (!conn_continue(c, &req)) {
                return 0; /* c is gone */
            }
            break;
        }
        c->sent_continue = 0;
        c->got_first = 1;
        r = conn_request(c, &req, t, flags, req.body_len);
        if (r != NULL && r->err == LURK_OK) {
            memcpy(r->body, c->in + pos + req.head_len, req.body_len);
        }
        if (r == NULL) {
            ok = 0;
            break;
        }
        pos += total;
        conn_enqueue(c, r);
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    if (!ok) {
        /* out of memory: what is queued is answered, nothing more */
        c->rd_done = 1;
        c->closing = c->q_n == 0;
    }
    return 1;
}

/* Reads what the socket has (at most READS_MAX records) and queues the
 * requests; requests already buffered are parsed first. */
static void conn_on_read(lurk_srv_conn *c)
{
    uint64_t t = 0;

    if (c->state != CONN_OPEN) {
        return;
    }
    c->read_wants_write = 0;
    if (c->in_len > 0 && !conn_parse(c, now_ns())) {
        return;
    }
    for (int i = 0; !c->rd_done && !c->closing && c->q_n < QUEUE_HIGH; i++) {
        long n;

        if (i == READS_MAX) {
            /* Enough for one turn.  Records OpenSSL has read ahead raise
             * no epoll event: come back in the next iteration for them. */
            if (c->ssl != NULL && SSL_has_pending(c->ssl)) {
                static const struct timeval zero = { 0, 0 };

                evtimer_add(c->kev, &zero);
            }
            break;
        }

        if (!grow(&c->in, &c->in_cap, c->in_len, READ_CHUNK)) {
            c->rd_done = 1;
            break;
        }
        n = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n > 0) {
            size_t room = c->in_cap - c->in_len;

            c->in_len += (size_t)n;
            t = now_ns();
            c->last_active = t;
            if (!conn_parse(c, t)) {
                return;
            }
            /* What one read(2) brought is in: no second read only to hear
             * EAGAIN (epoll is level-triggered and says if more came). */
            if (c->ssl != NULL ? !SSL_has_pending(c->ssl) : (size_t)n < room) {
                break;
            }
            continue;
        }
        if (n == IO_AGAIN) {
            break;
        }
        if (n == IO_WANT_WRITE) {
            c->read_wants_write = 1;
            set_ev(c->wev, &c->writing, 1);
            break;
        }
        if (n == IO_ERROR) {
            conn_free(c);
            return;
        }
        /* EOF: answer what is queued, then close */
        c->peer_eof = 1;
        c->rd_done = 1;
        if (c->q_n == 0 && conn_unsent(c) == 0) {
            conn_free(c);
            return;
        }
    }
    conn_update_read(c);
}

/* ---- replies out ---------------------------------------------------------- */

static const char *loop_date(lurk_srv_loop *l)
{
    time_t now = time(NULL);

    if (now != l->date_sec) {
        struct tm tm;

        gmtime_r(&now, &tm);
        strftime(l->date, sizeof(l->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        l->date_sec = now;
    }
    return l->date;
}

/* The common reply, without a printf: "200 OK", kept alive. */
static void conn_reply_200(lurk_srv_conn *c, const char *body, size_t len)
{
    static const char pre[] = "HTTP/1.1 200 OK\r\nContent-Type: " LURK_PROTO_MEDIA_TYPE
                              "\r\nContent-Length: ";
    static const char date[] = "\r\nDate: ";
    const char *d = loop_date(c->loop);
    size_t dlen = strlen(d);
    char num[24];
    size_t nlen = 0;
    size_t v = len;
    char *o;

    do {
        num[sizeof(num) - 1 - nlen++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    if (!grow(&c->out, &c->out_cap, c->out_len,
              sizeof(pre) - 1 + nlen + sizeof(date) - 1 + dlen + 4 + len)) {
        c->closing = 1;
        c->rd_done = 1;
        return;
    }
    o = c->out + c->out_len;
    memcpy(o, pre, sizeof(pre) - 1);
    o += sizeof(pre) - 1;
    memcpy(o, num + sizeof(num) - nlen, nlen);
    o += nlen;
    memcpy(o, date, sizeof(date) - 1);
    o += sizeof(date) - 1;
    memcpy(o, d, dlen);
    o += dlen;
    memcpy(o, "\r\n\r\n", 4);
    o += 4;
    if (len > 0) {
        memcpy(o, body, len);
        o += len;
    }
    c->out_len = (size_t)(o - c->out);
}

/* 1: bytes of c's peer are waiting, in OpenSSL or in the socket. */
static int conn_input_pending(const lurk_srv_conn *c)
{
    int pending = 0;

    if (c->ssl != NULL && SSL_has_pending(c->ssl)) {
        return 1;
    }
    return ioctl(c->fd, FIONREAD, &pending) == 0 && pending > 0;
}

/* Appends one reply; the connection closes after it when asked, or when
 * draining and nothing more is owed or coming (no request queued, none
 * partly read, no bytes waiting: those are read and answered first). */
static void conn_reply(lurk_srv_conn *c, int status, const char *body, size_t len,
                       unsigned retry_after_ms, unsigned flags)
{
    lurk_srv_loop *l = c->loop;
    char head[512];
    char extra[128];
    int close_after;
    int n;
    size_t e = 0;

    close_after = (flags & REQ_CLOSE) != 0
                  || (l->draining && c->q_n == 0 && c->in_len == 0 && c->discard == 0
                      && !conn_input_pending(c));
    if (status == 200 && !close_after && (flags & (REQ_KEEP_ALIVE | REQ_HEAD)) == 0) {
        conn_reply_200(c, body, len);
        return;
    }
    extra[0] = '\0';
    if (status == 429 || status == 503) {
        e += (size_t)snprintf(extra + e, sizeof(extra) - e, "Retry-After: %u\r\n",
                              retry_after_ms == 0 ? 1 : (retry_after_ms + 999) / 1000);
    }
    if (flags & REQ_ALLOW_POST) {
        e += (size_t)snprintf(extra + e, sizeof(extra) - e, "Allow: POST\r\n");
    }
    if (close_after) {
        snprintf(extra + e, sizeof(extra) - e, "Connection: close\r\n");
    } else if (flags & REQ_KEEP_ALIVE) {
        snprintf(extra + e, sizeof(extra) - e, "Connection: keep-alive\r\n");
    }
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: " LURK_PROTO_MEDIA_TYPE
                 "\r\nContent-Length: %zu\r\nDate: %s\r\n%s\r\n",
                 status, lurk_http1_reason(status), len, loop_date(l), extra);
    if (flags & REQ_HEAD) {
        len = 0;
    }
    if (!grow(&c->out, &c->out_cap, c->out_len, (size_t)n + len)) {
        c->closing = 1;
        c->rd_done = 1;
        return;
    }
    memcpy(c->out + c->out_len, head, (size_t)n);
    c->out_len += (size_t)n;
    if (len > 0) {
        memcpy(c->out + c->out_len, body, len);
        c->out_len += len;
    }
    if (close_after) {
        c->closing = 1;
        c->rd_done = 1;
    }
}

static void fill_peer_rec(lurk_srv_audit_rec *rec, const lurk_srv_peer *peer)
{
    snprintf(rec->peer, sizeof(rec->peer), "%s", peer->identity != NULL ? peer->identity : "");
    snprintf(rec->address, sizeof(rec->address), "%s",
             peer->address != NULL ? peer->address : "");
}

/* A LurkResponse for a request refused before the handler, with its audit line. */
static void conn_error(lurk_srv_conn *c, lurk_err err, const char *description,
                       unsigned retry_after_ms, unsigned flags)
{
    char *body = NULL;
    size_t len = 0;
    int status;
    lurk_srv_audit_rec rec;

    status = lurk_srv_error_response(err, description, retry_after_ms, &body, &len);
    conn_reply(c, status, body, body != NULL ? len : 0, retry_after_ms, flags);
    free(body);

    memset(&rec, 0, sizeof(rec));
    lurk_srv_audit_time(&rec);
    fill_peer_rec(&rec, &c->peer);
    snprintf(rec.op, sizeof(rec.op), "-");
    rec.status = status;
    rec.result = err;
    snprintf(rec.detail, sizeof(rec.detail), "%s", description);
    loop_audit(c->loop, &rec);
}

/* Writes the unsent replies (one SSL_write: one record up to 16 KiB).
 * 0 when the connection is gone. */
static int conn_flush(lurk_srv_conn *c)
{
    c->write_wants_read = 0;
    while (c->out_off < c->out_len) {
        long n = conn_send(c, c->out + c->out_off, c->out_len - c->out_off);

        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_active = now_ns();
            continue;
        }
        if (n == IO_AGAIN) {
            set_ev(c->wev, &c->writing, 1);
            return 1;
        }
        if (n == IO_WANT_READ) {
            c->write_wants_read = 1;
            set_ev(c->rev, &c->reading, 1);
            return 1;
        }
        conn_free(c);
        return 0;
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > 65536) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    if (!c->read_wants_write) {
        set_ev(c->wev, &c->writing, 0);
    }
    if (c->closing && c->q_n == 0) {
        conn_linger(c);
        return 1;
    }
    if (c->peer_eof && c->q_n == 0) {
        conn_free(c);
        return 0;
    }
    return 1;
}

/* After a slice answered c: out with the replies, read again when the
 * queue has room, back on a run queue when more is queued. */
static void conn_after_work(lurk_srv_conn *c)
{
    int was_reading = c->reading;

    if (!conn_flush(c) || c->state != CONN_OPEN) {
        return;
    }
    conn_update_read(c);
    if (c->reading && !was_reading
        && (c->in_len > 0 || (c->ssl != NULL && SSL_has_pending(c->ssl)))) {
        conn_on_read(c); /* input left when reading stopped */
        return;
    }
    conn_make_runnable(c, RUNQ_OLD);
}

static void on_conn_io(evutil_socket_t fd, short what, void *arg)
{
    lurk_srv_conn *c = arg;

    if (c->state == CONN_HANDSHAKE) {
        conn_handshake(c);
        return;
    }
    if (c->state == CONN_LINGER) {
        if (what & EV_READ) {
            linger_read(c);
        }
        return;
    }
    if (what & EV_WRITE) {
        if (c->read_wants_write) {
            conn_on_read(c);
            return;
        }
        if (!conn_flush(c) || c->state != CONN_OPEN) {
            return;
        }
        conn_update_read(c);
        conn_make_runnable(c, RUNQ_OLD);
        return;
    }
    if (c->write_wants_read) {
        if (!conn_flush(c) || c->state != CONN_OPEN) {
            return;
        }
    }
    conn_on_read(c);
}

/* Header deadline (handshake + first request), then idle timeout, then the
 * end of a linger. */
static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    lurk_srv_conn *c = arg;
    lurk_srv_loop *l = c->loop;
    uint64_t idle = (uint64_t)l->lim.idle_timeout * 1000000000u;
    uint64_t now;
    struct timeval tv;

    if (c->state == CONN_HANDSHAKE) {
        char reason[96];

        snprintf(reason, sizeof(reason), "not done within handshake_timeout (%d s)",
                 l->lim.handshake_timeout);
        conn_hs_failed(c, &l->srv->hs_timeouts, reason, "");
        conn_free(c);
        return;
    }
    if (c->state != CONN_OPEN || (!c->got_first && !l->draining)) {
        conn_free(c);
        return;
    }
    if (l->draining && c->q_n == 0 && c->in_len == 0 && c->discard == 0
        && conn_unsent(c) == 0 && !conn_input_pending(c)) {
        conn_free(c); /* idle for DRAIN_IDLE_MS since the drain began */
        return;
    }
    now = now_ns();
    if (c->q_n > 0) {
        c->last_active = now; /* waiting for us, not idle */
    }
    if (now - c->last_active >= idle) {
        conn_free(c);
        return;
    }
    ms_to_tv((c->last_active + idle - now) / 1000000u + 1, &tv);
    evtimer_add(c->tev, &tv);
}

static void on_conn_kick(evutil_socket_t fd, short what, void *arg)
{
    lurk_srv_conn *c = arg;

    if (c->state == CONN_OPEN && c->reading) {
        conn_on_read(c);
    }
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

static int conn_new(lurk_srv_loop *l, int fd, int is_unix)
{
    lurk_srv_conn *c = calloc(1, sizeof(*c));
    struct timeval tv;
    int one = 1;

    if (c == NULL) {
        return 0;
    }
    c->loop = l;
    c->fd = fd;
    conn_link(c);
    c->peer.address = c->address;
    c->peer.identity = c->identity;
    c->last_active = now_ns();
    c->t_accept = c->last_active;
    c->rev = event_new(l->base, fd, EV_READ | EV_PERSIST, on_conn_io, c);
    c->wev = event_new(l->base, fd, EV_WRITE | EV_PERSIST, on_conn_io, c);
    c->tev = evtimer_new(l->base, on_conn_timer, c);
    c->kev = evtimer_new(l->base, on_conn_kick, c);
    if (c->rev == NULL || c->wev == NULL || c->tev == NULL || c->kev == NULL) {
        goto fail;
    }
    if (is_unix) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        snprintf(c->address, sizeof(c->address), "unix");
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            snprintf(c->identity, sizeof(c->identity), "uid:%u", (unsigned)cred.uid);
            c->peer.authenticated = 1;
        }
        c->state = CONN_OPEN;
        set_ev(c->rev, &c->reading, 1);
        conn_admit(c); /* frees c on failure; the fd goes with it */
        return 1;
    } else {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;

                inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
                port = ntohs(s6->sin6_port);
            } else if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;

                inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
                port = ntohs(s4->sin_port);
            }
        }
        snprintf(c->address, sizeof(c->address), "%s:%u", host, port);
        c->ssl = SSL_new(l->tls);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
            goto fail;
        }
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* one read(2) takes every record the socket has */
        SSL_set_read_ahead(c->ssl, 1);
        SSL_set_accept_state(c->ssl);
        c->state = CONN_HANDSHAKE;
        pre_link(c);
    }
    set_ev(c->rev, &c->reading, 1);
    tv.tv_sec = l->lim.handshake_timeout;
    tv.tv_usec = 0;
    evtimer_add(c->tev, &tv);
    /* TCP_DEFER_ACCEPT: the ClientHello is normally in already; answering
     * it now takes the connection past the stalled ones (pre_victim) before
     * the next accept of this batch could push it out.  May free c. */
    conn_handshake(c);
    return 1;

fail:
    conn_free(c); /* closes fd */
    return 1;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    listener *lst = arg;
    lurk_srv_loop *l = lst->loop;
    LURK_SRV_HTTP *h = l->srv;

    loop_refresh(l);
    for (int i = 0; i < ACCEPT_MAX; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int n;

        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                lurk_srv_log(LURK_LOG_WARN, "accept: %s", strerror(errno));
            }
            break;
        }
        n = atomic_fetch_add_explicit(&h->conns, 1, memory_order_relaxed);
        if (n >= atomic_load_explicit(&h->max_conns, memory_order_relaxed) && !l->draining
            && l->pre_head != NULL) {
            /* Full: the oldest connection of this loop that has not
             * authenticated makes room, so that idle or slow sockets
             * cannot keep clients out; only authenticated ones are kept. */
            lurk_srv_conn *v = pre_victim(l);

            conn_hs_failed(v, &h->hs_evicted,
                           "closed for a newer connection: max_connections reached", "");
            conn_free(v);
        } else if (n >= atomic_load_explicit(&h->max_conns, memory_order_relaxed)
                   || l->draining) {
            atomic_fetch_sub_explicit(&h->conns, 1, memory_order_relaxed);
            close(cfd);
            log_refusal(l);
            continue;
        }
        if (!conn_new(l, cfd, lst->is_unix)) {
            atomic_fetch_sub_explicit(&h->conns, 1, memory_order_relaxed);
            close(cfd);
            continue;
        }
        if (l->n_pre > l->lim.pre_max) {
            /* the unauthenticated have their own, smaller budget */
            lurk_srv_conn *v = pre_victim(l);

            conn_hs_failed(v, &h->hs_evicted,
                           "closed for a newer connection: max_handshakes reached", "");
            conn_free(v);
        }
    }
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

/* The batch is old or full (or a loss is untold).  Replies are written at
 * the end of the slice that made them, so none waits behind this write;
 * audit_ev keeps the write out of the timer's own turn all the same. */
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

/* The loop had nothing else to do: the replies have been written, so now
 * the audit lines are. */
static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    loop_audit_flush(arg, 0);
}

/* ---- work ----------------------------------------------------------------- */

/* One request of c, the oldest. */
static void conn_serve_one(lurk_srv_conn *c, uint64_t now)
{
    lurk_srv_loop *l = c->loop;
    lurk_srv_req *r = c->q_head;
    lurk_srv_handler_ctx hctx;
    lurk_srv_audit_rec rec;
    char *resp = NULL;
    size_t resp_len = 0;
    int status;

    c->q_head = r->next;
    if (c->q_head == NULL) {
        c->q_tail = NULL;
    }
    c->q_n--;
    if (c->closing) {
        /* a reply that closes the connection went before it */
    } else if (r->err != LURK_OK) {
        conn_error(c, r->err, r->why, r->err == LURK_ERR_UNAVAILABLE ? RETRY_AFTER_MS : 0,
                   r->flags);
    } else if (now - r->t_read > (uint64_t)l->lim.queue_max_ms * 1000000u) {
        conn_error(c, LURK_ERR_UNAVAILABLE, "overloaded", RETRY_AFTER_MS, r->flags);
    } else {
        hctx.keys = l->keys;
        hctx.libctx = l->srv->libctx;
        hctx.propq = NULL;
        status = lurk_srv_handle(&hctx, &c->peer, r->body, r->len, &resp, &resp_len, &rec);
        conn_reply(c, status, resp, resp != NULL ? resp_len : 0, 0, r->flags);
        free(resp);
        loop_audit(l, &rec);
    }
    free(r);
}

/*
 * One slice: connections in turn (new ones first), each for up to TURN_US,
 * until SLICE_US have passed or SLICE_MAX requests were served, then the
 * replies go out, one write per connection.  Runs again in the next loop
 * iteration while work is left, so epoll runs between slices.
 */
static void on_work(evutil_socket_t fd, short what, void *arg)
{
    lurk_srv_loop *l = arg;
    uint64_t t0 = now_ns();
    uint64_t t = t0;
    size_t n = 0;
    int was_new = 0;
    lurk_srv_conn *c;

    l->work_sched = 0;
    l->in_work = 1;
    loop_refresh(l);
    while (n < SLICE_MAX && t - t0 < (uint64_t)SLICE_US * 1000u
           && (c = runq_pop(l, &was_new)) != NULL) {
        uint64_t turn = t;

        if (c->q_n == 0) {
            continue; /* a place kept in the old queue (below) */
        }
        /* its turn: requests while they take less than TURN_US together */
        do {
            conn_serve_one(c, t);
            n++;
            t = now_ns();
        } while (c->q_n > 0 && !c->closing && n < SLICE_MAX && t - turn < (uint64_t)TURN_US * 1000u
                 && t - t0 < (uint64_t)SLICE_US * 1000u);
        if (c->q_n > 0 && !c->closing && conn_unsent(c) < OUT_HIGH) {
            runq_push(c, RUNQ_OLD);
        } else if (was_new && c->q_n == 0) {
            /* As fq_codel: a connection served as new keeps a place at the
             * end of the old queue for one round, so that one which empties
             * its queue and refills it at once cannot stay ahead of the
             * connections with a backlog for ever. */
            runq_push(c, RUNQ_OLD);
        }
        /* Its replies leave now, before another connection's turn (an
         * RSA-4096 sign) could hold them; a connection that is next again
         * (the only busy one) keeps them for one write at the end. */
        if (c->dirty || runq_peek(l) == c) {
            if (!c->dirty) {
                c->dirty = 1;
                l->dirty[l->n_dirty++] = c;
            }
        } else {
            conn_after_work(c); /* may free c */
        }
    }
    for (size_t i = 0; i < l->n_dirty; i++) {
        c = l->dirty[i];
        c->dirty = 0;
        conn_after_work(c); /* may free c */
    }
    l->n_dirty = 0;
    if (l->fnew_head != NULL || l->fold_head != NULL) {
        l->work_sched = 0;
        loop_schedule(l);
    }
    l->in_work = 0;
}

/* ---- loops ---------------------------------------------------------------- */

/* A reload changed the TLS context (client CA, CRL): a connection whose
 * certificate no longer verifies is closed, with a log and an audit line;
 * the others go on.  New connections meet the new trust in their handshake
 * (its session cache and ticket keys are new too: no resumption of old
 * sessions). */
static void loop_recheck_peers(lurk_srv_loop *l)
{
    lurk_srv_conn *c;
    lurk_srv_conn *next;

    for (c = l->conns; c != NULL; c = next) {
        char reason[200];

        next = c->next;
        if (c->ssl == NULL || c->state != CONN_OPEN || !c->peer.authenticated
            || lurk_srv_tls_still_trusted(l->tls, c->ssl, reason, sizeof(reason))) {
            continue;
        }
        {
            lurk_srv_audit_rec rec;

            memset(&rec, 0, sizeof(rec));
            lurk_srv_audit_time(&rec);
            fill_peer_rec(&rec, &c->peer);
            snprintf(rec.op, sizeof(rec.op), "Connect");
            rec.status = 401;
            rec.result = LURK_ERR_UNAUTHORIZED;
            snprintf(rec.detail, sizeof(rec.detail),
                     "closed after a reload: client certificate no longer accepted: %.150s", reason);
            loop_audit(l, &rec);
        }
        lurk_srv_log(LURK_LOG_WARN, "closing the connection of %s from %s: after the reload its "
                     "certificate is no longer accepted: %s", c->identity, c->address, reason);
        conn_free(c);
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
    lurk_srv_keystore_free(old_keys);
    if (old_tls != NULL && l->tls != NULL && old_tls != l->tls) {
        loop_recheck_peers(l);
    }
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

static void loop_close_listeners(lurk_srv_loop *l)
{
    for (size_t i = 0; i < l->n_lst; i++) {
        if (l->lst[i].ev != NULL) {
            event_free(l->lst[i].ev);
            l->lst[i].ev = NULL;
        }
        if (l->lst[i].fd >= 0) {
            close(l->lst[i].fd);
            l->lst[i].fd = -1;
        }
    }
    l->n_lst = 0;
}

/*
 * SIGTERM: nothing a client sent may go unanswered.  Connections already in
 * the listen queue are accepted (a client may have sent its request on
 * one), then the listeners close.  Every connection keeps going: a request
 * already read, or arriving, is answered, the last one with Connection:
 * close; one still in its TLS handshake may finish it and ask; an idle one
 * gets DRAIN_IDLE_MS to ask (a client that works one request after another
 * is between a reply and its next request), then closes.  The loop exits
 * when no connection is left, or after drain_ms.
 */
static void loop_drain(lurk_srv_loop *l, unsigned drain_ms)
{
    struct timeval tick = { 0, DRAIN_TICK_MS * 1000 };
    struct timeval span = { drain_ms / 1000, (drain_ms % 1000) * 1000 };
    struct timeval grace;
    struct timeval now;
    lurk_srv_conn *c;
    lurk_srv_conn *next;

    if (l->draining) {
        return;
    }
    for (size_t i = 0; i < l->n_lst; i++) {
        /* each call takes up to ACCEPT_MAX; stops at the first EAGAIN */
        for (int k = 0; k < 64 && l->lst[i].fd >= 0; k++) {
            size_t before = l->n_conns;

            on_accept(l->lst[i].fd, EV_READ, &l->lst[i]);
            if (l->n_conns == before) {
                break;
            }
        }
    }
    l->draining = 1;
    loop_close_listeners(l);
    ms_to_tv(DRAIN_IDLE_MS, &grace);
    for (c = l->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == CONN_OPEN && c->q_n == 0 && c->in_len == 0 && c->discard == 0
            && conn_unsent(c) == 0) {
            evtimer_add(c->tev, &grace);
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

/* ---- event bases and listeners (sockets: listen.c) ------------------------ */

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
    /* LOOP_PRIO_WORK (libevent's default for new events: n / 2) for I/O,
     * timers and slices alike, so that reads and slices alternate;
     * LOOP_PRIO_IDLE for the idle event, which only runs when no other
     * event is active. */
    if (base != NULL && event_base_priority_init(base, LOOP_PRIO_IDLE + 1) != 0) {
        event_base_free(base);
        base = NULL;
    }
    return base;
}

static int loop_listen(lurk_srv_loop *l, int fd, int is_unix)
{
    listener *lst = &l->lst[l->n_lst];

    lst->loop = l;
    lst->fd = fd;
    lst->is_unix = is_unix;
    lst->ev = event_new(l->base, fd, EV_READ | EV_PERSIST, on_accept, lst);
    l->n_lst++;
    return lst->ev != NULL && event_add(lst->ev, NULL) == 0;
}

static void limits_from_conf(limits *lim, const lurk_srv_conf *conf)
{
    int threads = conf->threads > 0 ? conf->threads : 1;

    lim->max_body = conf->max_body;
    lim->header_timeout = conf->header_timeout;
    lim->handshake_timeout = conf->handshake_timeout < conf->header_timeout
                                 ? conf->handshake_timeout : conf->header_timeout;
    lim->max_handshakes = conf->max_handshakes > 0 ? conf->max_handshakes
                          : conf->max_connections / 8 > 16 ? conf->max_connections / 8 : 16;
    lim->pre_max = (size_t)(lim->max_handshakes / threads > 4 ? lim->max_handshakes / threads : 4);
    lim->per_client = conf->max_per_client > 0 ? conf->max_per_client
                      : conf->max_connections / 2 > 1 ? conf->max_connections / 2 : 1;
    lim->idle_timeout = conf->idle_timeout;
    lim->queue_max_ms = conf->queue_max_ms;
}

lurk_err lurk_srv_http_new(const lurk_srv_conf *conf, OSSL_LIB_CTX *libctx,
                           LURK_SRV_KEYSTORE *keys, LURK_SRV_AUDIT *audit,
                           LURK_SRV_HTTP **out, char *why, size_t whylen)
{
    LURK_SRV_HTTP *h = NULL;
    int ports[LURK_SRV_MAX_LISTEN];
    lurk_err err = LURK_ERR_INTERNAL;

    *out = NULL;
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        lurk_why(why, whylen, "out of memory");
        goto end;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->ident_lock, NULL);
    h->libctx = libctx;
    h->keys = keys;
    lurk_srv_keystore_up_ref(keys);
    limits_from_conf(&h->lim, conf);
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
        l->work_ev = evtimer_new(l->base, on_work, l);
        l->audit_ev = event_new(l->base, -1, 0, on_audit, l);
        l->audit_due = evtimer_new(l->base, on_audit_due, l);
        l->audit = lurk_srv_audit_buf_new(audit);
        if (l->ctl_ev == NULL || event_add(l->ctl_ev, NULL) != 0 || l->idle_ev == NULL
            || event_priority_set(l->idle_ev, LOOP_PRIO_IDLE) != 0 || l->work_ev == NULL
            || l->audit_ev == NULL || l->audit_due == NULL || l->audit == NULL) {
            lurk_why(why, whylen, "cannot create event loop %zu", i);
            goto end;
        }
        loop_refresh(l);
        for (size_t j = 0; j < conf->n_listen; j++) {
            char host[256];
            int port;
            int bound = 0;
            evutil_socket_t fd;

            lurk_srv_split_addr(conf->listen[j], host, sizeof(host), &port);
            if (i == 0 && ports[j] != 0) {
                fd = lurk_srv_listen_tcp(host, ports[j], 0, h->lim.handshake_timeout, &bound, why, whylen);
                if (fd < 0) {
                    err = LURK_ERR_IO;
                    goto end;
                }
                close(fd);
            }
            fd = lurk_srv_listen_tcp(host, ports[j], 1, h->lim.handshake_timeout, &bound, why, whylen);
            if (fd < 0) {
                err = LURK_ERR_IO;
                goto end;
            }
            ports[j] = bound; /* the other loops share this port */
            if (!loop_listen(l, fd, 0)) {
                lurk_why(why, whylen, "listen %s: cannot accept", conf->listen[j]);
                goto end;
            }
            if (i == 0 && j == 0) {
                h->port = bound;
                lurk_srv_format_addr(h->addr, sizeof(h->addr), host, bound);
            }
        }
        if (i == 0 && conf->unix_socket != NULL) {
            evutil_socket_t fd = lurk_srv_listen_unix(conf->unix_socket, why, whylen);

            if (fd < 0) {
                err = LURK_ERR_IO;
                goto end;
            }
            h->unix_path = strdup(conf->unix_socket);
            if (!loop_listen(l, fd, 1) || h->unix_path == NULL) {
                lurk_why(why, whylen, "unix_socket %s: cannot accept", conf->unix_socket);
                goto end;
            }
        }
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
    limits_from_conf(&h->lim, conf);
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

        while (l->conns != NULL) {
            conn_free(l->conns);
        }
        loop_close_listeners(l);
        if (l->audit != NULL) {
            loop_audit_flush(l, 1);
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
        if (l->work_ev != NULL) {
            event_free(l->work_ev);
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
    for (size_t b = 0; b < IDENT_BUCKETS; b++) {
        while (h->ident[b] != NULL) { /* none: every connection released its own */
            ident_ent *e = h->ident[b];

            h->ident[b] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&h->ident_lock);
    free(h);
}
