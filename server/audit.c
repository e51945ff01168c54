/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit.c - the append-only audit log: one JSON line per decision.
 *
 * Each record is one write(2) on a descriptor opened O_APPEND, so lines
 * from concurrent event loops never interleave and a crash loses at most
 * the line being written.  A reopen (log rotation on SIGHUP) swaps the
 * descriptor under a write lock; writers share a read lock.  Records hold
 * no payload bytes (the handler fills them; see lurk_srv_audit_rec).
 */
#include "lurk_srv.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


struct lurk_srv_audit_st {
    pthread_rwlock_t lock;
    int fd;
    char *path; /* NULL: standard error */
};

static int lurk_audit_open_fd(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
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
 * same escapes, and a value that is not valid UTF-8 has every byte outside
 * printable ASCII replaced by '?'.
 */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0. */
static size_t lurk_audit_utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0; /* also stops at the terminating NUL */
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
        || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

static int lurk_audit_valid_utf8(const char *val)
{
    const unsigned char *s = (const unsigned char *)val;

    while (*s != '\0') {
        size_t n = lurk_audit_utf8_seq(s);

        if (n == 0) {
            return 0;
        }
        s += n;
    }
    return 1;
}

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
    static const char hex[] = "0123456789ABCDEF";
    int clean = lurk_audit_valid_utf8(val);
    size_t max = clean ? (size_t)-1 : 511; /* what the '?' fallback kept */

    lurk_audit_raw(l, l->len > 1 ? ",\"" : "\"", l->len > 1 ? 2 : 1);
    lurk_audit_raw(l, key, strlen(key));
    lurk_audit_raw(l, "\":\"", 3);
    for (size_t i = 0; val[i] != '\0' && i < max; i++) {
        unsigned char c = (unsigned char)val[i];
        char esc[6] = { '\\', 0, 0, 0, 0, 0 };
        size_t n = 2;

        if (!clean) {
            c = c >= 0x20 && c < 0x7f ? c : '?';
        }
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (c >= 0x20) {
                esc[0] = (char)c;
                n = 1;
            } else {
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0x0f];
                n = 6;
            }
            break;
        }
        lurk_audit_raw(l, esc, n);
    }
    lurk_audit_raw(l, "\"", 1);
}

/* Every member escaped at worst 6:1, plus names, punctuation and newline. */
#define LURK_AUDIT_LINE_MAX (6 * sizeof(lurk_srv_audit_rec) + 256)

void lurk_srv_audit_write(LURK_SRV_AUDIT *a, const lurk_srv_audit_rec *rec)
{
    char buf[LURK_AUDIT_LINE_MAX];
    lurk_audit_line l = { buf, 0, sizeof(buf) };
    char status[24];
    int n;

    if (a == NULL || rec == NULL) {
        return;
    }
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

    pthread_rwlock_rdlock(&a->lock);
    if (a->fd >= 0) {
        ssize_t w = write(a->fd, l.p, l.len);
        (void)w; /* nowhere better to report a failing audit log */
    }
    pthread_rwlock_unlock(&a->lock);
}

lurk_err lurk_srv_audit_reopen(LURK_SRV_AUDIT *a)
{
    int fd;
    int old;

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
    pthread_rwlock_wrlock(&a->lock);
    old = a->fd;
    a->fd = fd;
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
