/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit.c - the append-only audit log: one JSON line per decision.
 *
 * Lines are appended to a descriptor opened O_APPEND, so lines from
 * concurrent event loops never interleave.  A reopen (log rotation on
 * SIGHUP) swaps the descriptor under a write lock; writers share a read
 * lock.  Records hold no payload bytes (the handler fills them; see
 * lurk_srv_audit_rec).
 *
 * Each event loop batches its lines in its own LURK_SRV_AUDIT_BUF and
 * writes them with one write(2) after its replies (http.c): when it has
 * nothing else to do, and under load when the batch is half full or
 * LURK_SRV_AUDIT_MAX_AGE_MS old.  So a busy loop pays one system call (and
 * one turn at the file's inode lock) for many lines.  The trade-offs: a
 * line reaches the file after its reply, up to about
 * LURK_SRV_AUDIT_MAX_AGE_MS late, so lines of different loops can be out
 * of time order by as much (a consumer that needs order sorts by "time");
 * stopping the server (SIGTERM) writes every buffered line, a crash loses
 * the lines of that window.
 *
 * When the log is not a regular file (standard error: a pipe or a
 * terminal), a batch is written in pieces of whole lines of at most
 * PIPE_BUF bytes, each of which the kernel keeps in one piece.
 */
#include "lurk_srv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


struct lurk_srv_audit_st {
    pthread_rwlock_t lock;
    int fd;
    size_t piece; /* largest write kept in one piece: 0 any (regular file) */
    char *path;   /* NULL: standard error */
};

static int lurk_audit_open_fd(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* A write to a regular file opened O_APPEND lands in one piece whatever
 * its size; to a pipe, only up to PIPE_BUF bytes do. */
static size_t lurk_audit_piece(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? 0 : PIPE_BUF;
}

lurk_err lurk_srv_audit_open(const char *path, LURK_SRV_AUDIT **out, char *why, size_t whylen)
{
    LURK_SRV_AUDIT *a = NULL;
    lurk_err err = LURK_ERR_NOMEM;

    if (out == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        goto end;
    }
    a->fd = -1;
    if (pthread_rwlock_init(&a->lock, NULL) != 0) {
        free(a);
        a = NULL;
        goto end;
    }
    if (path == NULL || strcmp(path, "-") == 0) {
        a->fd = STDERR_FILENO;
        a->piece = lurk_audit_piece(a->fd);
    } else {
        a->path = strdup(path);
        if (a->path == NULL) {
            goto end;
        }
        a->fd = lurk_audit_open_fd(path);
        if (a->fd < 0) {
            if (why != NULL && whylen > 0) {
                snprintf(why, whylen, "cannot open audit log %s: %s", path, strerror(errno));
            }
            err = LURK_ERR_IO;
            goto end;
        }
        a->piece = lurk_audit_piece(a->fd);
    }
    *out = a;
    a = NULL;
    err = LURK_OK;
end:
    lurk_srv_audit_close(a);
    return err;
}

/*
 * The line is written by hand rather than through jansson: building and
 * dumping an 11-member object cost more than the rest of the request's
 * bookkeeping (~45k instructions, a dozen allocations).  The output is what
 * json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) wrote: same member order,
 * same escapes (the codec's string writer, lurk_proto_json_string, so that
 * JSON escaping exists once), and a value that is not valid UTF-8 has every
 * byte outside printable ASCII replaced by '?'.
 */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} lurk_audit_line;

static void lurk_audit_raw(lurk_audit_line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len) {
        n = l->cap - l->len; /* cannot happen: the buffer fits the worst case */
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

/* Appends "key":"value" (with a leading comma unless first). */
static void lurk_audit_str(lurk_audit_line *l, const char *key, const char *val)
{
    size_t len = strlen(val);
    size_t room;
    size_t n;

    lurk_audit_raw(l, l->len > 1 ? ",\"" : "\"", l->len > 1 ? 2 : 1);
    lurk_audit_raw(l, key, strlen(key));
    lurk_audit_raw(l, "\":", 2);
    room = l->cap - l->len;
    if (room < LURK_PROTO_JSON_STRING_MAX(len)) {
        /* cannot happen: the buffer fits the worst case */
        if (room < 2) {
            return;
        }
        len = (room - 2) / 6;
    }
    n = lurk_proto_json_string(l->p + l->len, val, len, 0);
    if (n == 0) {
        /* not UTF-8: at most 511 bytes (what the '?' fallback kept) */
        n = lurk_proto_json_string(l->p + l->len, val, len < 511 ? len : 511,
                                   LURK_PROTO_JSON_ASCII);
    }
    l->len += n;
}

/* Every member escaped at worst 6:1, plus names, punctuation and newline. */
#define LURK_AUDIT_LINE_MAX (6 * sizeof(lurk_srv_audit_rec) + 256)

/* Formats rec as one line into out (room for LURK_AUDIT_LINE_MAX bytes);
 * returns its length.  The one formatter of the log. */
static size_t lurk_audit_format(const lurk_srv_audit_rec *rec, char *out)
{
    lurk_audit_line l = { out, 0, LURK_AUDIT_LINE_MAX };
    char status[24];
    int n;

    lurk_audit_raw(&l, "{", 1);
    lurk_audit_str(&l, "time", rec->time);
    lurk_audit_str(&l, "request_id", rec->request_id);
    lurk_audit_str(&l, "peer", rec->peer);
    lurk_audit_str(&l, "address", rec->address);
    lurk_audit_str(&l, "op", rec->op);
    lurk_audit_str(&l, "key_id", rec->key_id);
    lurk_audit_str(&l, "key_name", rec->key_name);
    lurk_audit_str(&l, "alg", rec->alg);
    n = snprintf(status, sizeof(status), ",\"status\":%d", rec->status);
    lurk_audit_raw(&l, status, n > 0 ? (size_t)n : 0);
    lurk_audit_str(&l, "result", lurk_err_name(rec->result));
    lurk_audit_str(&l, "detail", rec->detail);
    lurk_audit_raw(&l, "}\n", 2);
    return l.len;
}

static size_t lurk_audit_count_lines(const char *p, size_t len)
{
    size_t n = 0;
    const char *end = p + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));

        n++; /* a last line without its newline counts too */
        if (nl == NULL) {
            break;
        }
        p = nl + 1;
    }
    return n;
}

/*
 * Writes len bytes of whole lines: the rest of a short write is written
 * again.  Returns the number of lines lost to a failing write (errno says
 * why), normally 0.
 */
static size_t lurk_audit_put(LURK_SRV_AUDIT *a, const char *p, size_t len)
{
    size_t lost = 0;
    int why = 0;

    pthread_rwlock_rdlock(&a->lock);
    while (len > 0) {
        size_t n = len;
        ssize_t w;

        if (a->piece != 0 && n > a->piece) {
            /* whole lines up to piece bytes; a longer line by itself */
            const char *nl = memrchr(p, '\n', a->piece);

            if (nl == NULL) {
                nl = memchr(p + a->piece, '\n', len - a->piece);
            }
            n = nl != NULL ? (size_t)(nl - p) + 1 : len;
        }
        w = write(a->fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            why = w < 0 ? errno : EIO;
            lost = lurk_audit_count_lines(p, len);
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    pthread_rwlock_unlock(&a->lock);
    if (lost > 0) {
        errno = why;
    }
    return lost;
}

/* ---- a loop's batch of lines ---------------------------------------------- */

#define LURK_AUDIT_BUF_SIZE (64 * 1024)

struct lurk_srv_audit_buf_st {
    LURK_SRV_AUDIT *audit;
    size_t len;
    char data[LURK_AUDIT_BUF_SIZE];
};

_Static_assert(LURK_AUDIT_BUF_SIZE >= 4 * LURK_AUDIT_LINE_MAX,
               "an audit batch holds several worst-case lines");

LURK_SRV_AUDIT_BUF *lurk_srv_audit_buf_new(LURK_SRV_AUDIT *a)
{
    LURK_SRV_AUDIT_BUF *b;

    if (a == NULL) {
        return NULL;
    }
    b = malloc(sizeof(*b));
    if (b != NULL) {
        b->audit = a;
        b->len = 0;
    }
    return b;
}

size_t lurk_srv_audit_buf_append(LURK_SRV_AUDIT_BUF *b, const lurk_srv_audit_rec *rec)
{
    size_t lost = 0;

    if (b == NULL || rec == NULL) {
        return 0;
    }
    if (sizeof(b->data) - b->len < LURK_AUDIT_LINE_MAX) {
        /* the owner's flush came too late: write now rather than drop */
        lost = lurk_srv_audit_buf_flush(b);
    }
    b->len += lurk_audit_format(rec, b->data + b->len);
    return lost;
}

int lurk_srv_audit_buf_pending(const LURK_SRV_AUDIT_BUF *b)
{
    return b != NULL && b->len > 0;
}

/* Half full: the other half takes the lines that come before the flush. */
int lurk_srv_audit_buf_full(const LURK_SRV_AUDIT_BUF *b)
{
    return b != NULL && b->len >= sizeof(b->data) / 2;
}

size_t lurk_srv_audit_buf_flush(LURK_SRV_AUDIT_BUF *b)
{
    size_t lost;

    if (b == NULL || b->len == 0) {
        return 0;
    }
    lost = lurk_audit_put(b->audit, b->data, b->len);
    b->len = 0; /* what a failing write left is counted in lost */
    return lost;
}

void lurk_srv_audit_buf_free(LURK_SRV_AUDIT_BUF *b)
{
    if (b == NULL) {
        return;
    }
    (void)lurk_srv_audit_buf_flush(b);
    free(b);
}

lurk_err lurk_srv_audit_reopen(LURK_SRV_AUDIT *a)
{
    int fd;
    int old;
    size_t piece;

    if (a == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    if (a->path == NULL) {
        return LURK_OK;
    }
    fd = lurk_audit_open_fd(a->path);
    if (fd < 0) {
        return LURK_ERR_IO; /* keep writing to the old file */
    }
    piece = lurk_audit_piece(fd);
    pthread_rwlock_wrlock(&a->lock);
    old = a->fd;
    a->fd = fd;
    a->piece = piece;
    pthread_rwlock_unlock(&a->lock);
    if (old >= 0) {
        close(old);
    }
    return LURK_OK;
}

void lurk_srv_audit_close(LURK_SRV_AUDIT *a)
{
    if (a == NULL) {
        return;
    }
    if (a->path != NULL && a->fd >= 0) {
        close(a->fd);
    }
    pthread_rwlock_destroy(&a->lock);
    free(a->path);
    free(a);
}

/* ---- the time of a line ------------------------------------------------ */

/* The last second formatted by this thread: requests come many a second,
 * so calendar conversion and strftime run once a second per loop. */
static __thread struct {
    time_t sec;
    size_t len; /* 0: nothing formatted yet */
    char text[24];
} lurk_audit_clock;

void lurk_srv_audit_time(lurk_srv_audit_rec *rec)
{
    struct timespec ts;
    struct tm tm;
    int ms;
    size_t n;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return;
    }
    if (lurk_audit_clock.len == 0 || lurk_audit_clock.sec != ts.tv_sec) {
        lurk_audit_clock.len = 0;
        if (gmtime_r(&ts.tv_sec, &tm) == NULL) {
            return;
        }
        n = strftime(lurk_audit_clock.text, sizeof(lurk_audit_clock.text), "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0 || n + 6 > sizeof(rec->time)) {
            return;
        }
        lurk_audit_clock.sec = ts.tv_sec;
        lurk_audit_clock.len = n;
    }
    n = lurk_audit_clock.len;
    ms = (int)(ts.tv_nsec / 1000000L);
    memcpy(rec->time, lurk_audit_clock.text, n);
    rec->time[n] = '.';
    rec->time[n + 1] = (char)('0' + ms / 100);
    rec->time[n + 2] = (char)('0' + ms / 10 % 10);
    rec->time[n + 3] = (char)('0' + ms % 10);
    rec->time[n + 4] = 'Z';
    rec->time[n + 5] = '\0';
}
