/* SPDX-License-Identifier: Apache-2.0 */
/*
 * delay_proxy.c - lurk-delay-proxy: a loopback TCP relay that adds a fixed
 * one-way delay to every chunk it relays, in both directions, so benchmarks
 * and tests can put a key server "N ms away" on a kernel without netem.
 *
 *   lurk-delay-proxy --listen 127.0.0.1:PORT --to 127.0.0.1:PORT
 *                    --delay-ms N [--delay-us N] [--port-file FILE]
 *                    [--max-queue-mib N]
 *
 * The one-way delay is delay-ms + delay-us: a chunk read at time t is written
 * at t + delay, so the round trip grows by twice the delay.  Order is kept
 * per direction; a peer's EOF is passed on (shutdown SHUT_WR) after the same
 * delay, a reset or error closes both sides at once.
 *
 * Contract and shape: one thread, one epoll set; one timerfd armed at the
 * earliest deadline of all queued chunks.  The delay is the same for every
 * chunk, so deadlines grow in arrival order and one global FIFO (the "wait"
 * list) holds every chunk not yet due; chunks are also queued per direction
 * (the "out" list), where the due ones form a prefix.  Per message: one
 * read, one write, and at most one timerfd_settime (the expiry count is
 * cleared by re-arming, never read).  Memory is bounded per connection: a
 * direction with more than --max-queue-mib (4) MiB queued stops reading
 * until it drains to half of that.
 *
 * Only loopback addresses are accepted (127.0.0.0/8, [::1]).  PORT 0 on
 * --listen picks a free port; --port-file then receives the bound port and a
 * newline, written to a temporary file and renamed after listen succeeds.
 * SIGTERM/SIGINT exit cleanly; at exit and on SIGUSR1 one line goes to
 * stderr:
 *
 *   lurk-delay-proxy: connections=C messages=M bytes=B cpu_ms=X cpu_us_per_msg=Y
 *                     delay_us=D late_us_mean=L
 *
 * (messages = chunks written, both directions; CPU = getrusage utime+stime of
 * the whole process; late_us_mean = mean of write time - due time over the
 * delayed chunks, the error of the delay), so a benchmark can take the proxy
 * out of its figures.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define DP_READ_MAX (64 * 1024)
#define DP_EVENTS 256
#define DP_DEFAULT_QUEUE_MIB 4

typedef struct dp_chunk dp_chunk;
typedef struct dp_dir dp_dir;
typedef struct dp_conn dp_conn;

/* Bytes read from one side, to be written to the other at `due_ns`. */
struct dp_chunk {
    dp_chunk *out_next;       /* per-direction FIFO */
    dp_chunk *wait_prev;      /* global FIFO of chunks not yet due */
    dp_chunk *wait_next;
    dp_dir *dir;
    uint64_t due_ns;
    size_t len;
    size_t off;               /* bytes already written */
    int due;                  /* left the wait list: may be written */
    int eof;                  /* no data: shut the write side down */
    unsigned char data[];
};

/* One direction: reads from `from`, writes to `to`. */
struct dp_dir {
    dp_conn *conn;
    dp_chunk *head;
    dp_chunk *tail;
    size_t queued;            /* bytes in head..tail */
    int from;                 /* side index */
    int to;
    int read_eof;             /* EOF read from `from` */
    int write_shut;           /* EOF passed on to `to` */
};

/* One endpoint of a connection: what epoll_event.data.ptr points at. */
typedef struct {
    int kind;                 /* DP_KIND_SIDE */
    dp_conn *conn;
    int fd;
    int gone;                 /* hung up and out of the epoll set */
    uint32_t events;          /* current epoll interest */
} dp_side;

enum { DP_KIND_LISTEN = 1, DP_KIND_TIMER, DP_KIND_SIGNAL, DP_KIND_SIDE };

/* side 0 = the accepted client, side 1 = the upstream connection.
 * dir 0: client -> upstream; dir 1: upstream -> client. */
struct dp_conn {
    dp_side side[2];
    dp_dir dir[2];
    dp_conn *dead_next;
    int connected;            /* upstream connect finished */
    int closed;
};

static struct {
    struct sockaddr_storage listen_addr;
    socklen_t listen_len;
    struct sockaddr_storage to_addr;
    socklen_t to_len;
    uint64_t delay_ns;
    size_t max_queue;
    const char *port_file;
    int epfd;
    int tfd;
    uint64_t armed_ns;        /* 0 = disarmed */
    int64_t early_ns;         /* timers are armed this much early */
    double late_avg_ns;       /* EWMA of how late a timer wakes us */
    double release_sum_ns;    /* sum of (write time - due time), timed chunks */
    unsigned long long released;
    dp_chunk *wait_head;
    dp_chunk *wait_tail;
    dp_conn *dead;
    unsigned long long connections;
    unsigned long long messages;
    unsigned long long bytes;
    int open_conns;
} dp;

static int dp_kind_listen = DP_KIND_LISTEN;
static int dp_kind_timer = DP_KIND_TIMER;
static int dp_kind_signal = DP_KIND_SIGNAL;

static uint64_t dp_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void dp_usage(FILE *f)
{
    fprintf(f, "usage: lurk-delay-proxy --listen 127.0.0.1:PORT --to 127.0.0.1:PORT\n"
               "                        --delay-ms N [--delay-us N] [--port-file FILE]\n"
               "                        [--max-queue-mib N]\n"
               "  one-way delay = delay-ms + delay-us, in both directions (RTT + 2 x delay);\n"
               "  loopback addresses only; PORT 0 on --listen picks a free port.\n");
}

/* "127.0.0.1:PORT" or "[::1]:PORT", loopback only. */
static int dp_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                         int allow_zero_port)
{
    char host[64];
    const char *colon;
    char *end = NULL;
    size_t hlen;
    long port;

    memset(ss, 0, sizeof(*ss));
    colon = strrchr(s, ':');
    if (colon == NULL) {
        return 0;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 || port > 65535
        || (port == 0 && !allow_zero_port)) {
        return 0;
    }
    hlen = (size_t)(colon - s);
    if (hlen == 0 || hlen >= sizeof(host)) {
        return 0;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && host[hlen - 1] == ']') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

        host[hlen - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1
            || !IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) {
            return 0;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1
            || (ntohl(a4->sin_addr.s_addr) >> 24) != 127) {
            return 0;
        }
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
    }
    return 1;
}

static int dp_parse_num(const char *s, long max, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
        return 0;
    }
    *out = v;
    return 1;
}

static int dp_parse(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "to", required_argument, NULL, 't' },
        { "delay-ms", required_argument, NULL, 'm' },
        { "delay-us", required_argument, NULL, 'u' },
        { "port-file", required_argument, NULL, 'p' },
        { "max-queue-mib", required_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int have_listen = 0;
    int have_to = 0;
    int have_delay = 0;
    long ms = 0;
    long us = 0;
    long mib = DP_DEFAULT_QUEUE_MIB;
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (!dp_parse_addr(optarg, &dp.listen_addr, &dp.listen_len, 1)) {
                fprintf(stderr, "lurk-delay-proxy: --listen %s: want a loopback "
                                "127.x.y.z:PORT or [::1]:PORT\n", optarg);
                return 0;
            }
            have_listen = 1;
            break;
        case 't':
            if (!dp_parse_addr(optarg, &dp.to_addr, &dp.to_len, 0)) {
                fprintf(stderr, "lurk-delay-proxy: --to %s: want a loopback "
                                "127.x.y.z:PORT or [::1]:PORT (PORT > 0)\n", optarg);
                return 0;
            }
            have_to = 1;
            break;
        case 'm':
            if (!dp_parse_num(optarg, 3600L * 1000, &ms)) {
                fprintf(stderr, "lurk-delay-proxy: bad --delay-ms %s\n", optarg);
                return 0;
            }
            have_delay = 1;
            break;
        case 'u':
            if (!dp_parse_num(optarg, 3600L * 1000 * 1000, &us)) {
                fprintf(stderr, "lurk-delay-proxy: bad --delay-us %s\n", optarg);
                return 0;
            }
            have_delay = 1;
            break;
        case 'p':
            dp.port_file = optarg;
            break;
        case 'q':
            if (!dp_parse_num(optarg, 4096, &mib) || mib < 1) {
                fprintf(stderr, "lurk-delay-proxy: bad --max-queue-mib %s\n", optarg);
                return 0;
            }
            break;
        case 'h':
            dp_usage(stdout);
            exit(0);
        default:
            dp_usage(stderr);
            return 0;
        }
    }
    if (optind != argc || !have_listen || !have_to || !have_delay) {
        dp_usage(stderr);
        return 0;
    }
    dp.delay_ns = (uint64_t)ms * 1000000u + (uint64_t)us * 1000u;
    dp.max_queue = (size_t)mib * 1024 * 1024;
    return 1;
}

/* ---- statistics ------------------------------------------------------------ */

static void dp_report(void)
{
    struct rusage ru;
    double cpu_ms;

    getrusage(RUSAGE_SELF, &ru);
    cpu_ms = (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3
             + (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
    fprintf(stderr,
            "lurk-delay-proxy: connections=%llu messages=%llu bytes=%llu cpu_ms=%.1f "
            "cpu_us_per_msg=%.2f delay_us=%.1f late_us_mean=%.1f\n",
            dp.connections, dp.messages, dp.bytes, cpu_ms,
            dp.messages > 0 ? cpu_ms * 1e3 / (double)dp.messages : 0.0,
            (double)dp.delay_ns / 1e3,
            dp.released > 0 ? dp.release_sum_ns / 1e3 / (double)dp.released : 0.0);
    fflush(stderr);
}

/* ---- the timer: armed at the head of the wait list -------------------------- */

static void dp_timer_update(void)
{
    struct itimerspec its;
    uint64_t want = 0;

    if (dp.wait_head != NULL) {
        want = dp.wait_head->due_ns - (uint64_t)dp.early_ns;
    }

    if (want == dp.armed_ns) {
        return;
    }
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(want / 1000000000u);
    its.it_value.tv_nsec = (long)(want % 1000000000u);
    if (want != 0 && its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
        its.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(dp.tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        perror("lurk-delay-proxy: timerfd_settime");
        exit(1);
    }
    dp.armed_ns = want;
}

static void dp_wait_unlink(dp_chunk *ch)
{
    if (ch->wait_prev != NULL) {
        ch->wait_prev->wait_next = ch->wait_next;
    } else {
        dp.wait_head = ch->wait_next;
    }
    if (ch->wait_next != NULL) {
        ch->wait_next->wait_prev = ch->wait_prev;
    } else {
        dp.wait_tail = ch->wait_prev;
    }
    ch->wait_prev = NULL;
    ch->wait_next = NULL;
}

/* ---- connections -------------------------------------------------------------- */

static void dp_set_events(dp_side *s, uint32_t ev)
{
    struct epoll_event e;

    if (s->fd < 0 || s->gone || ev == s->events) {
        return;
    }
    memset(&e, 0, sizeof(e));
    e.events = ev;
    e.data.ptr = s;
    if (epoll_ctl(dp.epfd, EPOLL_CTL_MOD, s->fd, &e) == 0) {
        s->events = ev;
    }
}

/* Interest of a side: read while its outgoing direction has room, write
 * while its incoming direction has a due chunk it could not write (or the
 * upstream connect is in progress). */
static void dp_update_side(dp_conn *c, int i)
{
    dp_side *s = &c->side[i];
    dp_dir *rd = &c->dir[i];        /* reads from side i */
    dp_dir *wr = &c->dir[1 - i];    /* writes to side i */
    uint32_t ev = 0;

    if (c->closed) {
        return;
    }
    if (i == 1 && !c->connected) {
        ev |= EPOLLOUT;
    } else if (wr->head != NULL && wr->head->due) {
        ev |= EPOLLOUT;
    }
    if (!rd->read_eof && rd->queued < dp.max_queue) {
        /* a stopped reader resumes at half the bound */
        if ((s->events & EPOLLIN) || rd->queued <= dp.max_queue / 2) {
            ev |= EPOLLIN;
        }
    }
    dp_set_events(s, ev);
}

static void dp_close(dp_conn *c)
{
    int i;

    if (c->closed) {
        return;
    }
    c->closed = 1;
    for (i = 0; i < 2; i++) {
        dp_dir *d = &c->dir[i];
        dp_chunk *ch = d->head;

        while (ch != NULL) {
            dp_chunk *next = ch->out_next;

            if (!ch->due) {
                dp_wait_unlink(ch);
            }
            free(ch);
            ch = next;
        }
        d->head = d->tail = NULL;
        d->queued = 0;
        if (c->side[i].fd >= 0) {
            close(c->side[i].fd);   /* also leaves the epoll set */
            c->side[i].fd = -1;
        }
    }
    c->dead_next = dp.dead;
    dp.dead = c;
    dp.open_conns--;
}

static void dp_maybe_done(dp_conn *c)
{
    if (!c->closed && c->dir[0].write_shut && c->dir[1].write_shut) {
        dp_close(c);
    }
}

/* Write the due prefix of a direction. */
static void dp_flush(dp_dir *d)
{
    dp_conn *c = d->conn;
    int fd = c->side[d->to].fd;

    if (c->closed || (d->to == 1 && !c->connected)) {
        return;
    }
    while (d->head != NULL && d->head->due) {
        dp_chunk *ch = d->head;

        if (ch->eof) {
            shutdown(fd, SHUT_WR);
            d->write_shut = 1;
        } else {
            ssize_t n = send(fd, ch->data + ch->off, ch->len - ch->off, MSG_NOSIGNAL);

            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    break;
                }
                if (errno == EINTR) {
                    continue;
                }
                dp_close(c);
                return;
            }
            ch->off += (size_t)n;
            dp.bytes += (unsigned long long)n;
            if (ch->off < ch->len) {
                break;              /* the kernel buffer is full */
            }
            dp.messages++;
        }
        d->queued -= ch->len;
        d->head = ch->out_next;
        if (d->head == NULL) {
            d->tail = NULL;
        }
        free(ch);
    }
    dp_update_side(c, d->to);
    dp_update_side(c, d->from);
    dp_maybe_done(c);
}

static void dp_enqueue(dp_dir *d, dp_chunk *ch, uint64_t now)
{
    ch->dir = d;
    ch->due_ns = now + dp.delay_ns;
    if (d->tail != NULL) {
        d->tail->out_next = ch;
    } else {
        d->head = ch;
    }
    d->tail = ch;
    d->queued += ch->len;
    if (dp.delay_ns == 0) {
        ch->due = 1;
        dp_flush(d);
        return;
    }
    ch->wait_prev = dp.wait_tail;
    if (dp.wait_tail != NULL) {
        dp.wait_tail->wait_next = ch;
    } else {
        dp.wait_head = ch;
    }
    dp.wait_tail = ch;
}

static void dp_read(dp_conn *c, int i)
{
    static unsigned char buf[DP_READ_MAX];
    dp_dir *d = &c->dir[i];
    uint64_t now;
    dp_chunk *ch;
    ssize_t n;

    n = recv(c->side[i].fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        dp_close(c);
        return;
    }
    now = dp_now();
    ch = calloc(1, sizeof(*ch) + (size_t)n);
    if (ch == NULL) {
        dp_close(c);
        return;
    }
    if (n == 0) {
        ch->eof = 1;
        d->read_eof = 1;
    } else {
        ch->len = (size_t)n;
        memcpy(ch->data, buf, (size_t)n);
    }
    dp_enqueue(d, ch, now);
    if (!c->closed) {
        dp_update_side(c, i);
    }
}

static int dp_nodelay(int fd)
{
    int one = 1;

    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int dp_add(dp_side *s, uint32_t ev)
{
    struct epoll_event e;

    memset(&e, 0, sizeof(e));
    e.events = ev;
    e.data.ptr = s;
    if (epoll_ctl(dp.epfd, EPOLL_CTL_ADD, s->fd, &e) != 0) {
        return 0;
    }
    s->events = ev;
    return 1;
}

static void dp_accept(int lfd)
{
    for (;;) {
        dp_conn *c = NULL;
        int cfd;
        int ufd = -1;
        int i;

        cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                perror("lurk-delay-proxy: accept");
            }
            return;
        }
        dp_nodelay(cfd);
        ufd = socket(dp.to_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        c = calloc(1, sizeof(*c));
        if (ufd < 0 || c == NULL) {
            goto fail;
        }
        dp_nodelay(ufd);
        if (connect(ufd, (struct sockaddr *)&dp.to_addr, dp.to_len) != 0
            && errno != EINPROGRESS) {
            goto fail;
        }
        for (i = 0; i < 2; i++) {
            c->side[i].kind = DP_KIND_SIDE;
            c->side[i].conn = c;
            c->dir[i].conn = c;
            c->dir[i].from = i;
            c->dir[i].to = 1 - i;
        }
        c->side[0].fd = cfd;
        c->side[1].fd = ufd;
        if (!dp_add(&c->side[0], EPOLLIN)) {
            goto fail;
        }
        if (!dp_add(&c->side[1], EPOLLIN | EPOLLOUT)) {
            epoll_ctl(dp.epfd, EPOLL_CTL_DEL, cfd, NULL);
            goto fail;
        }
        dp.connections++;
        dp.open_conns++;
        continue;
fail:
        close(cfd);
        if (ufd >= 0) {
            close(ufd);
        }
        free(c);
    }
}

/* Upstream writable: finish a pending connect first. */
static void dp_writable(dp_conn *c, int i)
{
    if (i == 1 && !c->connected) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(c->side[1].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            dp_close(c);
            return;
        }
        c->connected = 1;
    }
    dp_flush(&c->dir[1 - i]);
}

/* A timer wakes us late on a VM (100-150 µs here, against a 1 ns slack):
 * keep an average of that lateness and arm that much early, so the delay
 * is right on average instead of always long.  Chunks due within the
 * advance are written by the same wake-up. */
static void dp_timer_fired(void)
{
    uint64_t now = dp_now();
    uint64_t horizon;

    if (dp.armed_ns != 0 && dp.armed_ns != UINT64_MAX && now >= dp.armed_ns) {
        double late = (double)(now - dp.armed_ns);
        /* at most a quarter of the delay and 500 µs: lateness from CPU
         * contention (another busy task on this core) is not corrected */
        double cap = (double)dp.delay_ns / 4 < 500e3 ? (double)dp.delay_ns / 4 : 500e3;

        dp.late_avg_ns += (late - dp.late_avg_ns) / 16;
        dp.early_ns = (int64_t)(dp.late_avg_ns < cap ? dp.late_avg_ns : cap);
    }
    horizon = now + (uint64_t)dp.early_ns;
    while (dp.wait_head != NULL && dp.wait_head->due_ns <= horizon) {
        dp_chunk *ch = dp.wait_head;
        dp_dir *d = ch->dir;

        dp.release_sum_ns += (double)now - (double)ch->due_ns;
        dp.released++;
        dp_wait_unlink(ch);
        ch->due = 1;
        /* write when the chunk is the head of its direction; later chunks
         * of the same direction are written by the same flush */
        if (d->head == ch) {
            dp_flush(d);
        }
    }
    dp.armed_ns = UINT64_MAX;       /* force a re-arm: it clears the expiry */
    dp_timer_update();
}

static int dp_listen(void)
{
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    int one = 1;
    int fd;
    int port;

    fd = socket(dp.listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("lurk-delay-proxy: socket");
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&dp.listen_addr, dp.listen_len) != 0
        || listen(fd, 4096) != 0
        || getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        perror("lurk-delay-proxy: bind/listen");
        close(fd);
        return -1;
    }
    port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (dp.port_file != NULL) {
        char tmp[PATH_MAX];
        FILE *f;

        snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", dp.port_file, (long)getpid());
        f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0
            || rename(tmp, dp.port_file) != 0) {
            perror("lurk-delay-proxy: port file");
            unlink(tmp);
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void dp_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct epoll_event evs[DP_EVENTS];
    struct epoll_event e;
    sigset_t mask;
    int lfd = -1;
    int sfd = -1;
    int running = 1;
    int rc = 1;

    dp.epfd = -1;
    dp.tfd = -1;
    if (!dp_parse(argc, argv)) {
        return 2;
    }
    dp_raise_nofile();
    /* timers fire within a few µs, not the default 50 µs slack */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    dp.epfd = epoll_create1(EPOLL_CLOEXEC);
    dp.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (dp.epfd < 0 || dp.tfd < 0 || sfd < 0) {
        perror("lurk-delay-proxy: epoll/timerfd/signalfd");
        goto end;
    }
    lfd = dp_listen();
    if (lfd < 0) {
        goto end;
    }
    memset(&e, 0, sizeof(e));
    e.events = EPOLLIN;
    e.data.ptr = &dp_kind_listen;
    epoll_ctl(dp.epfd, EPOLL_CTL_ADD, lfd, &e);
    e.data.ptr = &dp_kind_timer;
    epoll_ctl(dp.epfd, EPOLL_CTL_ADD, dp.tfd, &e);
    e.data.ptr = &dp_kind_signal;
    epoll_ctl(dp.epfd, EPOLL_CTL_ADD, sfd, &e);

    while (running) {
        int n = epoll_wait(dp.epfd, evs, DP_EVENTS, -1);
        int i;

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("lurk-delay-proxy: epoll_wait");
            goto end;
        }
        for (i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;

            if (kind == DP_KIND_LISTEN) {
                dp_accept(lfd);
            } else if (kind == DP_KIND_TIMER) {
                dp_timer_fired();
            } else if (kind == DP_KIND_SIGNAL) {
                struct signalfd_siginfo si;

                while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                    if (si.ssi_signo == SIGUSR1) {
                        dp_report();
                    } else {
                        running = 0;
                    }
                }
            } else {
                dp_side *s = evs[i].data.ptr;
                dp_conn *c = s->conn;
                int side = s == &c->side[0] ? 0 : 1;
                uint32_t ev = evs[i].events;

                if (c->closed) {
                    continue;
                }
                if (ev & (EPOLLOUT | EPOLLERR)) {
                    dp_writable(c, side);
                }
                if (!c->closed && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                    if (c->dir[side].read_eof) {
                        /* Both ways shut on this side.  Once our EOF has
                         * reached it, only the other direction is left:
                         * stop watching this fd.  A hang-up with data
                         * still owed to it is a reset. */
                        if (!(ev & (EPOLLHUP | EPOLLERR))) {
                            /* nothing */
                        } else if (c->dir[1 - side].write_shut && !(ev & EPOLLERR)) {
                            epoll_ctl(dp.epfd, EPOLL_CTL_DEL, s->fd, NULL);
                            s->gone = 1;
                        } else {
                            dp_close(c);
                        }
                    } else if (c->side[side].events & EPOLLIN || (ev & (EPOLLHUP | EPOLLERR))) {
                        dp_read(c, side);
                    }
                }
            }
        }
        dp_timer_update();
        while (dp.dead != NULL) {
            dp_conn *c = dp.dead;

            dp.dead = c->dead_next;
            free(c);
        }
    }
    rc = 0;
end:
    dp_report();
    if (lfd >= 0) {
        close(lfd);
    }
    if (sfd >= 0) {
        close(sfd);
    }
    if (dp.tfd >= 0) {
        close(dp.tfd);
    }
    if (dp.epfd >= 0) {
        close(dp.epfd);
    }
    return rc;
}
