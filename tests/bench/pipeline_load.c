/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pipeline_load - a LURK load generator for key-server capacity runs
 * (tests/bench/run-capacity.sh): CONNS mutual-TLS connections to one key
 * server, each keeping DEPTH requests in flight on one kept-alive HTTP/1.1
 * connection (DEPTH 1: no pipelining), for SECONDS.  One thread and epoll,
 * OpenSSL directly (no client library), so that the generator costs little
 * next to the server.  Replies are matched in order by RequestId.
 *
 *   pipeline_load --port P --dir PKI --op ping|rsa|ec [--key-id ID]
 *                 [--conns N] [--depth D] [--seconds S] [--server-pid PID]
 *
 * PKI is a tests/lib/keyserver.sh directory (ca.crt, client.crt,
 * client.key).  Prints one line:
 *   RESULT op=.. conns=.. depth=.. done=.. ok=.. shed=.. other=.. secs=..
 *          rps=.. p50_ms=.. p99_ms=.. srv_cpu_us=..
 * where rps counts 200 replies per second of the measured window and
 * srv_cpu_us is the server's CPU time (all threads, schedstat) per reply
 * over the same window (-1 without --server-pid).  Benchmarks only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_DEPTH 256
#define MAX_CONNS 4096
#define REQ_MAX 1024
#define IN_CAP (256 * 1024)
#define MAX_SAMPLES 4000000

typedef struct {
    int fd;
    SSL *ssl;
    int idx;
    unsigned long seq_sent;
    unsigned long seq_done;
    double sent_at[MAX_DEPTH];   /* ring, by seq % depth */
    size_t in_len;
    char in[IN_CAP];
    size_t out_len;
    size_t out_off;
    char *out;
    size_t out_cap;
    int want_write;
} conn;

static const char *op = "ping";
static const char *key_id = "";
static int depth = 1;
static int n_conns = 16;
static double seconds = 3;
static long server_pid = -1;
static double *samples;
static size_t n_samples;
static long n_ok, n_shed, n_other;
static int measuring;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "pipeline_load: %s: %s\n", what, strerror(errno));
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* Sum of the run times of PID's threads in seconds (schedstat), or -1. */
static double server_cpu(void)
{
    char path[128];
    DIR *d;
    struct dirent *e;
    double sum = 0;

    if (server_pid <= 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%ld/task", server_pid);
    d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char p[300];
        FILE *f;
        unsigned long long ns = 0;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(p, sizeof(p), "/proc/%ld/task/%s/schedstat", server_pid, e->d_name);
        f = fopen(p, "r");
        if (f != NULL) {
            if (fscanf(f, "%llu", &ns) == 1) {
                sum += (double)ns / 1e9;
            }
            fclose(f);
        }
    }
    closedir(d);
    return sum;
}

/* base64url of a TLS 1.3 server CertificateVerify input (fixed hash) */
static const char *cv_input_b64(void)
{
    static char out[256];
    unsigned char in[130];
    static const char ctx[] = "TLS 1.3, server CertificateVerify";
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0, o = 0;

    memset(in, 0x20, 64);
    memcpy(in + 64, ctx, sizeof(ctx));
    n = 64 + sizeof(ctx);
    for (int i = 0; i < 32; i++) {
        in[n++] = (unsigned char)(i * 7 + 1);
    }
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        size_t k = n - i < 3 ? n - i : 3;

        if (k > 1) {
            v |= (unsigned)in[i + 1] << 8;
        }
        if (k > 2) {
            v |= in[i + 2];
        }
        out[o++] = alpha[(v >> 18) & 63];
        out[o++] = alpha[(v >> 12) & 63];
        if (k > 1) {
            out[o++] = alpha[(v >> 6) & 63];
        }
        if (k > 2) {
            out[o++] = alpha[v & 63];
        }
    }
    out[o] = '\0';
    return out;
}

static size_t make_request(char *buf, size_t cap, int c, unsigned long seq)
{
    char body[REQ_MAX];
    int n;

    if (strcmp(op, "ping") == 0) {
        n = snprintf(body, sizeof(body), "{\"PingRequest\":{\"RequestId\":\"r%d-%lu\"}}", c, seq);
    } else if (strcmp(op, "rsa") == 0) {
        n = snprintf(body, sizeof(body),
                     "{\"SignRequest\":{\"RequestId\":\"r%d-%lu\",\"KeyId\":\"%s\","
                     "\"Algorithm\":\"rsa-pss\",\"DigestAlg\":\"sha256\",\"SaltLength\":32,"
                     "\"Data\":\"%s\"}}",
                     c, seq, key_id, cv_input_b64());
    } else {
        n = snprintf(body, sizeof(body),
                     "{\"SignRequest\":{\"RequestId\":\"r%d-%lu\",\"KeyId\":\"%s\","
                     "\"Algorithm\":\"ecdsa\",\"DigestAlg\":\"sha256\",\"Data\":\"%s\"}}",
                     c, seq, key_id, cv_input_b64());
    }
    return (size_t)snprintf(buf, cap,
                            "POST /.well-known/lurk HTTP/1.1\r\nHost: keyserver\r\n"
                            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                            n, body);
}

static void queue_request(conn *c, double t)
{
    char req[2048];
    size_t n = make_request(req, sizeof(req), c->idx, c->seq_sent);

    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (c->out == NULL) {
            die("realloc");
        }
    }
    memcpy(c->out + c->out_len, req, n);
    c->out_len += n;
    c->sent_at[c->seq_sent % (unsigned long)depth] = t;
    c->seq_sent++;
}

static int flush(conn *c)
{
    while (c->out_off < c->out_len) {
        int n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));

        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);

            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                c->want_write = 1;
                return 1;
            }
            return 0;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    c->want_write = 0;
    return 1;
}

/* Parses the complete replies in c->in; returns how many, -1 on a bad one. */
static int take_replies(conn *c, double t)
{
    size_t pos = 0;
    int got = 0;

    for (;;) {
        char *h = c->in + pos;
        size_t avail = c->in_len - pos;
        char *end = memmem(h, avail, "\r\n\r\n", 4);
        char *cl;
        size_t body_len, total;
        int status;
        char want[64];
        int wn;

        if (end == NULL) {
            break;
        }
        cl = memmem(h, (size_t)(end - h), "Content-Length: ", 16);
        if (cl == NULL || sscanf(h, "HTTP/1.1 %d", &status) != 1) {
            return -1;
        }
        body_len = strtoul(cl + 16, NULL, 10);
        total = (size_t)(end + 4 - h) + body_len;
        if (total > avail) {
            break;
        }
        if (status == 100) {
            pos += total;
            continue;
        }
        wn = snprintf(want, sizeof(want), "\"r%d-%lu\"", c->idx, c->seq_done);
        if (status == 200) {
            if (memmem(end + 4, body_len, want, (size_t)wn) == NULL) {
                fprintf(stderr, "pipeline_load: reply out of order on connection %d\n", c->idx);
                return -1;
            }
        }
        if (measuring) {
            if (status == 200) {
                n_ok++;
                if (n_samples < MAX_SAMPLES) {
                    samples[n_samples++] = t - c->sent_at[c->seq_done % (unsigned long)depth];
                }
            } else if (status == 503) {
                n_shed++;
            } else {
                n_other++;
            }
        }
        c->seq_done++;
        got++;
        pos += total;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return got;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: pipeline_load --port P --dir PKI --op ping|rsa|ec [--key-id ID]\n"
                    "       [--conns N] [--depth D] [--seconds S] [--server-pid PID]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },  { "dir", required_argument, NULL, 'd' },
        { "op", required_argument, NULL, 'o' },    { "key-id", required_argument, NULL, 'k' },
        { "conns", required_argument, NULL, 'c' }, { "depth", required_argument, NULL, 'D' },
        { "seconds", required_argument, NULL, 's' },
        { "server-pid", required_argument, NULL, 'P' },
        { NULL, 0, NULL, 0 },
    };
    int port = 0;
    const char *dir = NULL;
    char path[4096];
    SSL_CTX *ctx;
    conn **cs;
    int ep;
    int ch;
    double t_start, t_end, t_stop, cpu0, cpu1;
    long in_flight = 0;
    struct epoll_event evs[256];

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': port = atoi(optarg); break;
        case 'd': dir = optarg; break;
        case 'o': op = optarg; break;
        case 'k': key_id = optarg; break;
        case 'c': n_conns = atoi(optarg); break;
        case 'D': depth = atoi(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'P': server_pid = atol(optarg); break;
        default: usage();
        }
    }
    if (port <= 0 || dir == NULL || depth < 1 || depth > MAX_DEPTH || n_conns < 1
        || n_conns > MAX_CONNS || seconds <= 0 || seconds > 60
        || (strcmp(op, "ping") != 0 && strcmp(op, "rsa") != 0 && strcmp(op, "ec") != 0)) {
        usage();
    }
    samples = malloc(sizeof(*samples) * MAX_SAMPLES);
    ctx = SSL_CTX_new(TLS_client_method());
    if (samples == NULL || ctx == NULL) {
        die("init");
    }
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    if (SSL_CTX_load_verify_file(ctx, path) != 1) {
        die(path);
    }
    snprintf(path, sizeof(path), "%s/client.crt", dir);
    if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1) {
        die(path);
    }
    snprintf(path, sizeof(path), "%s/client.key", dir);
    if (SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1) {
        die(path);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ep = epoll_create1(EPOLL_CLOEXEC);
    cs = calloc((size_t)n_conns, sizeof(*cs));
    if (ep < 0 || cs == NULL) {
        die("epoll");
    }
    for (int i = 0; i < n_conns; i++) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        int one = 1;
        conn *c = calloc(1, sizeof(*c));
        struct epoll_event ev = { .events = EPOLLIN };

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (c == NULL) {
            die("calloc");
        }
        c->idx = i;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            die("connect");
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
        SSL_set1_host(c->ssl, "localhost");
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (SSL_connect(c->ssl) != 1) {
            die("TLS handshake");
        }
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0) {
            die("fcntl");
        }
        ev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            die("epoll_ctl");
        }
        cs[i] = c;
    }

    t_start = now_s();
    for (int i = 0; i < n_conns; i++) {
        for (int k = 0; k < depth; k++) {
            queue_request(cs[i], t_start);
            in_flight++;
        }
        if (!flush(cs[i])) {
            die("write");
        }
    }
    /* a short warm-up, then the measured window, then the drain */
    t_end = t_start + (seconds / 5 < 0.5 ? seconds / 5 : 0.5);
    t_stop = 0;
    cpu0 = cpu1 = -1;
    for (;;) {
        double t = now_s();
        int n;

        if (!measuring && t_stop == 0 && t >= t_end) {
            measuring = 1;
            cpu0 = server_cpu();
            t_start = t;
            t_end = t + seconds;
        } else if (measuring && t >= t_end) {
            measuring = 0;
            cpu1 = server_cpu();
            t_end = t;
            t_stop = t;
        }
        if (t_stop != 0 && (in_flight == 0 || t - t_stop > 10)) {
            break;
        }
        n = epoll_wait(ep, evs, 256, 10);
        t = now_s();
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            int got_total = 0;

            if (c->want_write && !flush(c)) {
                die("write");
            }
            for (;;) {
                int r = SSL_read(c->ssl, c->in + c->in_len, (int)(IN_CAP - c->in_len));
                int got;

                if (r <= 0) {
                    int e = SSL_get_error(c->ssl, r);

                    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                        break;
                    }
                    fprintf(stderr, "pipeline_load: connection %d closed by the server "
                                    "(%lu replies)\n", c->idx, c->seq_done);
                    return 1;
                }
                c->in_len += (size_t)r;
                got = take_replies(c, t);
                if (got < 0) {
                    return 1;
                }
                got_total += got;
                if (c->in_len == IN_CAP) {
                    fprintf(stderr, "pipeline_load: reply too large\n");
                    return 1;
                }
            }
            in_flight -= got_total;
            if (t_stop == 0) {
                for (int k = 0; k < got_total; k++) {
                    queue_request(c, t);
                    in_flight++;
                }
            }
            if (!flush(c)) {
                die("write");
            }
            {
                struct epoll_event ev = { .events = EPOLLIN | (c->want_write ? EPOLLOUT : 0),
                                          .data.ptr = c };

                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
    qsort(samples, n_samples, sizeof(*samples), cmp_double);
    printf("RESULT op=%s conns=%d depth=%d done=%ld ok=%ld shed=%ld other=%ld secs=%.2f "
           "rps=%.1f p50_ms=%.3f p99_ms=%.3f srv_cpu_us=%.1f\n",
           op, n_conns, depth, n_ok + n_shed + n_other, n_ok, n_shed, n_other, t_end - t_start,
           (double)n_ok / (t_end - t_start),
           n_samples ? samples[n_samples / 2] * 1e3 : 0,
           n_samples ? samples[(size_t)((double)(n_samples - 1) * 0.99)] * 1e3 : 0,
           cpu0 >= 0 && cpu1 >= 0 && n_ok + n_shed > 0 ? (cpu1 - cpu0) * 1e6 / (double)(n_ok + n_shed)
                                                        : -1.0);
    for (int i = 0; i < n_conns; i++) {
        SSL_free(cs[i]->ssl);
        close(cs[i]->fd);
        free(cs[i]->out);
        free(cs[i]);
    }
    free(cs);
    free(samples);
    SSL_CTX_free(ctx);
    return 0;
}
