/* SPDX-License-Identifier: Apache-2.0 */
/*
 * async_load.c - many TLS handshakes in flight at once from one thread, for
 * tests/web/async.sh.
 *
 * COUNT connections, at most CONC in flight: non-blocking connect, a full
 * TLS handshake (no session cache, no tickets) whose chain is verified
 * against --ca and whose name is checked (--name), then, with --request, one
 * HTTP request whose answer must contain --expect.  Every connection has its
 * own deadline (--timeout-ms from its connect).  With --abort-ms, each
 * connection is instead closed that long after its connect, mid-handshake
 * (for abandoned-job tests); one that finished first counts as ok.  With
 * --max-failures N, no connection is started after the Nth failure.
 *
 * Output: one summary line on stdout,
 *
 *   ok=N failed=F aborted=A ms=TOTAL max_ms=M reasons=R1:n1,R2:n2
 *
 * where max_ms is the slowest successful connection (connect to answer) and
 * the reasons are short tokens (timeout, verify, alert, eof, refused, ...);
 * with -v the first failures are printed on stderr with OpenSSL's errors.
 * Exit status: 0 when every connection ended as expected (ok, or failed with
 * --expect-fail, or aborted), 1 otherwise, 2 for usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define AL_MAX_CONC 1024
#define AL_MAX_REASONS 16

typedef enum { AL_FREE = 0, AL_CONNECTING, AL_HANDSHAKE, AL_WRITE, AL_READ } al_state;

typedef struct {
    al_state st;
    int fd;
    SSL *ssl;
    long t0;           /* ms, connect started */
    char resp[4096];
    size_t resp_len;
    size_t req_sent;
} al_conn;

typedef struct {
    const char *host;
    int port;
    const char *name;
    const char *ca;
    int version;
    const char *sigalgs;
    const char *cipher;
    const char *groups;
    const char *request;
    const char *expect;
    int count;
    int conc;
    long timeout_ms;
    long abort_ms;
    int expect_fail;
    int max_failures;
    int verbose;
} al_opts;

static struct {
    char name[32];
    int n;
} al_reasons[AL_MAX_REASONS];
static int al_n_reasons;
static int al_printed;

static long al_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void al_reason(const al_opts *o, const char *why, const char *detail)
{
    int i;

    for (i = 0; i < al_n_reasons; i++) {
        if (strcmp(al_reasons[i].name, why) == 0) {
            break;
        }
    }
    if (i == al_n_reasons && al_n_reasons < AL_MAX_REASONS) {
        snprintf(al_reasons[i].name, sizeof(al_reasons[i].name), "%s", why);
        al_n_reasons++;
    }
    if (i < AL_MAX_REASONS) {
        al_reasons[i].n++;
    }
    if (o->verbose && al_printed < 5) {
        al_printed++;
        fprintf(stderr, "async_load: connection failed: %s%s%s\n", why,
                detail != NULL ? ": " : "", detail != NULL ? detail : "");
        ERR_print_errors_fp(stderr);
    }
    ERR_clear_error();
}

static void al_close(al_conn *c)
{
    if (c->ssl != NULL) {
        if (SSL_is_init_finished(c->ssl)) {
            /* close_notify, best effort (the socket is non-blocking) */
            (void)SSL_shutdown(c->ssl);
        }
        ERR_clear_error();
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->st = AL_FREE;
}

static int al_start(const al_opts *o, SSL_CTX *ctx, al_conn *c)
{
    struct sockaddr_in sa;
    int one = 1;

    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return 0;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)o->port);
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1) {
        return 0;
    }
    c->t0 = al_now_ms();
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1
        || SSL_set_tlsext_host_name(c->ssl, o->name) != 1 || SSL_set1_host(c->ssl, o->name) != 1) {
        return 0;
    }
    SSL_set_connect_state(c->ssl);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        return -1;
    }
    c->st = AL_CONNECTING;
    return 1;
}

/* Advances one connection; 1 = done ok, -1 = failed (reason recorded),
 * 0 = in progress (*events set to what to wait for). */
static int al_step(const al_opts *o, al_conn *c, short *events)
{
    int r, e;
    char detail[128];

    if (c->st == AL_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            if (err == EINPROGRESS || err == EALREADY) {
                *events = POLLOUT;
                return 0;
            }
            al_reason(o, err == ECONNREFUSED ? "refused" : "connect", strerror(err));
            return -1;
        }
        c->st = AL_HANDSHAKE;
    }
    if (c->st == AL_HANDSHAKE) {
        r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                *events = POLLIN;
                return 0;
            }
            if (e == SSL_ERROR_WANT_WRITE) {
                *events = POLLOUT;
                return 0;
            }
            if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
                al_reason(o, "verify",
                          X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
            } else if (e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_SSL && ERR_peek_error() == 0)) {
                al_reason(o, "eof", "connection closed during the handshake");
            } else {
                unsigned long le = ERR_peek_error();

                snprintf(detail, sizeof(detail), "%s", ERR_reason_error_string(le) != NULL
                                                           ? ERR_reason_error_string(le)
                                                           : "?");
                al_reason(o, strstr(detail, "alert") != NULL ? "alert" : "tls", detail);
            }
            return -1;
        }
        if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
            al_reason(o, "verify", X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
            return -1;
        }
        if (o->request == NULL) {
            return 1;
        }
        c->st = AL_WRITE;
    }
    if (c->st == AL_WRITE) {
        size_t n = strlen(o->request);

        while (c->req_sent < n) {
            r = SSL_write(c->ssl, o->request + c->req_sent, (int)(n - c->req_sent));
            if (r <= 0) {
                e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    *events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                    return 0;
                }
                al_reason(o, "write", NULL);
                return -1;
            }
            c->req_sent += (size_t)r;
        }
        c->st = AL_READ;
    }
    for (;;) {
        if (c->resp_len + 1 >= sizeof(c->resp)) {
            memmove(c->resp, c->resp + sizeof(c->resp) / 2, sizeof(c->resp) / 2);
            c->resp_len -= sizeof(c->resp) / 2;
        }
        r = SSL_read(c->ssl, c->resp + c->resp_len, (int)(sizeof(c->resp) - 1 - c->resp_len));
        if (r > 0) {
            c->resp_len += (size_t)r;
            c->resp[c->resp_len] = '\0';
            if (o->expect == NULL || strstr(c->resp, o->expect) != NULL) {
                return 1;
            }
            continue;
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            *events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            return 0;
        }
        if (o->expect == NULL && c->resp_len > 0) {
            return 1;
        }
        al_reason(o, "answer", "the answer lacks the expected text");
        return -1;
    }
}

static void al_usage(void)
{
    fprintf(stderr,
            "usage: async_load --port PORT --ca FILE [--host 127.0.0.1] [--name localhost]\n"
            "         [--count N] [--concurrency C] [--tls1.2|--tls1.3] [--sigalgs S]\n"
            "         [--cipher C] [--groups G] [--request TEXT] [--expect TEXT]\n"
            "         [--timeout-ms MS] [--abort-ms MS] [--expect-fail]\n"
            "         [--max-failures N] [-v]\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "host", required_argument, NULL, 'H' },
        { "port", required_argument, NULL, 'p' },
        { "name", required_argument, NULL, 'n' },
        { "ca", required_argument, NULL, 'c' },
        { "tls1.2", no_argument, NULL, '2' },
        { "tls1.3", no_argument, NULL, '3' },
        { "sigalgs", required_argument, NULL, 's' },
        { "cipher", required_argument, NULL, 'C' },
        { "groups", required_argument, NULL, 'g' },
        { "request", required_argument, NULL, 'r' },
        { "expect", required_argument, NULL, 'e' },
        { "count", required_argument, NULL, 'N' },
        { "concurrency", required_argument, NULL, 'P' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "abort-ms", required_argument, NULL, 'a' },
        { "expect-fail", no_argument, NULL, 'F' },
        { "max-failures", required_argument, NULL, 'M' },
        { "verbose", no_argument, NULL, 'v' },
        { NULL, 0, NULL, 0 },
    };
    al_opts o = { "127.0.0.1", 0, "localhost", NULL, 0, NULL, NULL, NULL, NULL, NULL,
                  64, 64, 10000, 0, 0, 0, 0 };
    al_conn *conns = NULL;
    struct pollfd *pfds = NULL;
    int *pidx = NULL;
    SSL_CTX *ctx = NULL;
    int opt, started = 0, ok = 0, failed = 0, aborted = 0, active = 0, i;
    long t_start, max_ms = 0;
    int rc = 1;

    while ((opt = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'n': o.name = optarg; break;
        case 'c': o.ca = optarg; break;
        case '2': o.version = TLS1_2_VERSION; break;
        case '3': o.version = TLS1_3_VERSION; break;
        case 's': o.sigalgs = optarg; break;
        case 'C': o.cipher = optarg; break;
        case 'g': o.groups = optarg; break;
        case 'r': o.request = optarg; break;
        case 'e': o.expect = optarg; break;
        case 'N': o.count = atoi(optarg); break;
        case 'P': o.conc = atoi(optarg); break;
        case 't': o.timeout_ms = atol(optarg); break;
        case 'a': o.abort_ms = atol(optarg); break;
        case 'F': o.expect_fail = 1; break;
        case 'M': o.max_failures = atoi(optarg); break;
        case 'v': o.verbose = 1; break;
        default: al_usage(); return 2;
        }
    }
    if (o.port <= 0 || o.ca == NULL || o.count <= 0 || o.conc <= 0 || o.conc > AL_MAX_CONC
        || o.timeout_ms <= 0) {
        al_usage();
        return 2;
    }
    if (o.conc > o.count) {
        o.conc = o.count;
    }

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, o.ca, NULL) != 1) {
        fprintf(stderr, "async_load: cannot set up TLS with CA %s\n", o.ca);
        ERR_print_errors_fp(stderr);
        goto end;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (o.version != 0
        && (SSL_CTX_set_min_proto_version(ctx, o.version) != 1
            || SSL_CTX_set_max_proto_version(ctx, o.version) != 1)) {
        goto end;
    }
    if ((o.sigalgs != NULL && SSL_CTX_set1_sigalgs_list(ctx, o.sigalgs) != 1)
        || (o.cipher != NULL && SSL_CTX_set_cipher_list(ctx, o.cipher) != 1)
        || (o.groups != NULL && SSL_CTX_set1_groups_list(ctx, o.groups) != 1)) {
        fprintf(stderr, "async_load: bad --sigalgs/--cipher/--groups\n");
        ERR_print_errors_fp(stderr);
        goto end;
    }

    conns = calloc((size_t)o.conc, sizeof(*conns));
    pfds = calloc((size_t)o.conc, sizeof(*pfds));
    pidx = calloc((size_t)o.conc, sizeof(*pidx));
    if (conns == NULL || pfds == NULL || pidx == NULL) {
        goto end;
    }
    for (i = 0; i < o.conc; i++) {
        conns[i].fd = -1;
    }

    t_start = al_now_ms();
    for (;;) {
        int np = 0;
        long now, wait_ms = 1000;

        /* fill free slots, then advance every connection */
        for (i = 0; i < o.conc; i++) {
            al_conn *c = &conns[i];
            short ev = 0;
            int r;

            if (c->st == AL_FREE) {
                if (started >= o.count
                    || (o.max_failures > 0 && failed >= o.max_failures)) {
                    continue;
                }
                started++;
                r = al_start(&o, ctx, c);
                if (r <= 0) {
                    al_reason(&o, r < 0 ? "connect" : "setup", strerror(errno));
                    failed++;
                    al_close(c);
                    continue;
                }
                active++;
            }
            now = al_now_ms();
            if (o.abort_ms > 0 && now - c->t0 >= o.abort_ms) {
                aborted++;
                active--;
                al_close(c);
                i--; /* refill this slot */
                continue;
            }
            if (now - c->t0 >= o.timeout_ms) {
                al_reason(&o, "timeout", NULL);
                failed++;
                active--;
                al_close(c);
                i--;
                continue;
            }
            r = al_step(&o, c, &ev);
            if (r != 0) {
                if (r > 0) {
                    ok++;
                    long el = al_now_ms() - c->t0;

                    if (el > max_ms) {
                        max_ms = el;
                    }
                } else {
                    failed++;
                }
                active--;
                al_close(c);
                i--;
                continue;
            }
            pfds[np].fd = c->fd;
            pfds[np].events = ev;
            pfds[np].revents = 0;
            pidx[np] = i;
            np++;
            {
                long left = o.timeout_ms - (now - c->t0);

                if (o.abort_ms > 0 && o.abort_ms - (now - c->t0) < left) {
                    left = o.abort_ms - (now - c->t0);
                }
                if (left < wait_ms) {
                    wait_ms = left < 0 ? 0 : left;
                }
            }
        }
        if (active == 0
            && (started >= o.count || (o.max_failures > 0 && failed >= o.max_failures))) {
            break;
        }
        if (np > 0 && poll(pfds, (nfds_t)np, (int)wait_ms) < 0 && errno != EINTR) {
            perror("async_load: poll");
            goto end;
        }
    }

    printf("ok=%d failed=%d aborted=%d ms=%ld max_ms=%ld reasons=", ok, failed, aborted,
           al_now_ms() - t_start, max_ms);
    for (i = 0; i < al_n_reasons; i++) {
        printf("%s%s:%d", i > 0 ? "," : "", al_reasons[i].name, al_reasons[i].n);
    }
    printf("\n");
    fflush(stdout);
    if (o.expect_fail) {
        rc = ok == 0 && failed + aborted == o.count ? 0 : 1;
    } else {
        rc = ok + aborted == o.count && failed == 0 ? 0 : 1;
    }

end:
    if (conns != NULL) {
        for (i = 0; i < o.conc; i++) {
            if (conns[i].st != AL_FREE) {
                al_close(&conns[i]);
            }
        }
    }
    free(conns);
    free(pfds);
    free(pidx);
    SSL_CTX_free(ctx);
    return rc;
}
