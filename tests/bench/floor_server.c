/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_server - the floor under lurk-keyserver's cost per request: a server
 * that answers every LURK request with a PingResponse echoing its RequestId
 * and does nothing else (no JSON library, no key, no policy, no audit), on
 * the same mutual TLS over loopback.  Benchmarks only; never a key server.
 *
 *   floor_server evhttp|raw DIR PORT_FILE [THREADS]
 *
 *   evhttp  libevent evhttp on OpenSSL bufferevents, one loop per thread,
 *           as lurk-keyserver's front (src: server/http.c)
 *   raw     epoll and non-blocking SSL_read/SSL_write, no HTTP library: the
 *           least any TLS server over TCP can spend per request
 *
 * DIR holds server.crt, server.key and ca.crt (tests/lib/keyserver.sh's
 * PKI); the port the kernel picked is written to PORT_FILE.  It listens on
 * 127.0.0.1 only and runs until killed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_THREADS 16
#define REQ_MAX 16384

static SSL_CTX *tls;
static int port;

static void die(const char *what)
{
    fprintf(stderr, "floor_server: %s: %s\n", what, strerror(errno));
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A PingResponse for the request body, in out; its length. */
static int ping_reply(const char *body, size_t len, char *out, size_t cap)
{
    static const char key[] = "\"RequestId\":\"";
    const char *p = memmem(body, len, key, sizeof(key) - 1);
    const char *q = NULL;
    int idlen = 0;

    if (p != NULL) {
        p += sizeof(key) - 1;
        q = memchr(p, '"', len - (size_t)(p - body));
    }
    if (q != NULL && q - p <= 64) {
        idlen = (int)(q - p);
    }
    return snprintf(out, cap, "{\"PingResponse\":{\"RequestId\":\"%.*s\",\"Status\":200}}", idlen,
                    p != NULL ? p : "");
}

static int listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0
        || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0) {
        die("listen");
    }
    return fd;
}

/* ---- evhttp --------------------------------------------------------------- */

static struct bufferevent *evhttp_bev(struct event_base *base, void *arg)
{
    (void)arg;
    return bufferevent_openssl_socket_new(base, -1, SSL_new(tls), BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

static void evhttp_request(struct evhttp_request *req, void *arg)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    char out[256];
    int n = ping_reply(body != NULL ? body : "", body != NULL ? len : 0, out, sizeof(out));
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));

    (void)arg;
    evbuffer_add(evhttp_request_get_output_buffer(req), out, (size_t)n);
    evhttp_send_reply(req, 200, NULL, NULL);
    /* as lurk-keyserver's send_body: one record, written in this iteration */
    evbuffer_pullup(bufferevent_get_output(bev), -1);
    event_active(&bev->ev_write, EV_WRITE, 1);
}

static void *evhttp_loop(void *arg)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;
    struct evhttp *http;

    (void)arg;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    http = base != NULL ? evhttp_new(base) : NULL;
    if (http == NULL || evhttp_accept_socket(http, listener()) != 0) {
        die("evhttp");
    }
    evhttp_set_bevcb(http, evhttp_bev, NULL);
    evhttp_set_gencb(http, evhttp_request, NULL);
    event_base_dispatch(base);
    return NULL;
}

/* ---- raw ------------------------------------------------------------------ */

typedef struct {
    int fd;
    SSL *ssl;
    size_t len;
    char buf[REQ_MAX];
} raw_conn;

static void raw_close(raw_conn *c)
{
    SSL_free(c->ssl);
    close(c->fd);
    free(c);
}

/* Reads what is there; answers every complete request in the buffer. */
static void raw_serve(raw_conn *c)
{
    for (;;) {
        int r = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));

        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);

            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                raw_close(c);
            }
            return;
        }
        c->len += (size_t)r;
        for (;;) {
            char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
            char *cl;
            size_t body_len = 0;
            size_t total;
            char body[256];
            char out[512];
            int n;

            if (end == NULL) {
                if (c->len == sizeof(c->buf)) {
                    raw_close(c); /* a head this large is not a LURK request */
                    return;
                }
                break;
            }
            cl = memmem(c->buf, (size_t)(end - c->buf), "Content-Length: ", 16);
            if (cl != NULL) {
                body_len = strtoul(cl + 16, NULL, 10);
            }
            total = (size_t)(end + 4 - c->buf) + body_len;
            if (total > sizeof(c->buf)) {
                raw_close(c);
                return;
            }
            if (c->len < total) {
                break;
            }
            n = ping_reply(end + 4, body_len, body, sizeof(body));
            n = snprintf(out, sizeof(out),
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         n, body);
            if (SSL_write(c->ssl, out, n) != n) {
                raw_close(c);
                return;
            }
            memmove(c->buf, c->buf + total, c->len - total);
            c->len -= total;
        }
    }
}

static void *raw_loop(void *arg)
{
    int lfd = listener();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    int one = 1;

    (void)arg;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
        die("epoll");
    }
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);

        for (int i = 0; i < n; i++) {
            raw_conn *c = evs[i].data.ptr;

            if (c == NULL) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0) {
                    continue;
                }
                c = calloc(1, sizeof(*c));
                if (c == NULL || (c->ssl = SSL_new(tls)) == NULL) {
                    free(c);
                    close(fd);
                    continue;
                }
                c->fd = fd;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                SSL_set_fd(c->ssl, fd);
                SSL_set_accept_state(c->ssl);
                ev.events = EPOLLIN;
                ev.data.ptr = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            }
            raw_serve(c); /* the handshake, then requests */
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    char path[4096];
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    int raw = argc > 1 && strcmp(argv[1], "raw") == 0;
    pthread_t tid[MAX_THREADS];
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t salen = sizeof(sa);
    int probe;
    FILE *f;

    if (argc < 4 || (!raw && strcmp(argv[1], "evhttp") != 0) || threads < 1
        || threads > MAX_THREADS) {
        fprintf(stderr, "usage: floor_server evhttp|raw DIR PORT_FILE [THREADS]\n");
        return 2;
    }
    tls = SSL_CTX_new(TLS_server_method());
    snprintf(path, sizeof(path), "%s/server.crt", argv[2]);
    if (tls == NULL || SSL_CTX_use_certificate_chain_file(tls, path) != 1) {
        die(path);
    }
    snprintf(path, sizeof(path), "%s/server.key", argv[2]);
    if (SSL_CTX_use_PrivateKey_file(tls, path, SSL_FILETYPE_PEM) != 1) {
        die(path);
    }
    snprintf(path, sizeof(path), "%s/ca.crt", argv[2]);
    if (SSL_CTX_load_verify_file(tls, path) != 1) {
        die(path);
    }
    SSL_CTX_set_verify(tls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION);
    /* resumption with client certificates needs a session id context */
    SSL_CTX_set_session_id_context(tls, (const unsigned char *)"floor", 5);

    /* a free port for every loop's SO_REUSEPORT socket */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    probe = socket(AF_INET, SOCK_STREAM, 0);
    if (probe < 0 || bind(probe, (struct sockaddr *)&sa, sizeof(sa)) != 0
        || getsockname(probe, (struct sockaddr *)&sa, &salen) != 0) {
        die("port");
    }
    port = ntohs(sa.sin_port);
    close(probe);
    for (int i = 0; i < threads; i++) {
        pthread_create(&tid[i], NULL, raw ? raw_loop : evhttp_loop, NULL);
    }
    usleep(100 * 1000); /* the loops are listening */
    f = fopen(argv[3], "w");
    if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
        die(argv[3]);
    }
    pthread_join(tid[0], NULL);
    return 0;
}
