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

#include <jansson.h>

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

/* A JSON string member; bytes that are not valid UTF-8 become '?'. */
static void lurk_audit_set(json_t *obj, const char *key, const char *val)
{
    json_t *s = json_string(val);

    if (s == NULL) {
        char clean[512];
        size_t i;

        for (i = 0; val[i] != '\0' && i < sizeof(clean) - 1; i++) {
            unsigned char c = (unsigned char)val[i];

            clean[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        clean[i] = '\0';
        s = json_string(clean);
    }
    if (s != NULL) {
        json_object_set_new(obj, key, s);
    }
}

void lurk_srv_audit_write(LURK_SRV_AUDIT *a, const lurk_srv_audit_rec *rec)
{
    json_t *obj = NULL;
    char *line = NULL;
    size_t len;

    if (a == NULL || rec == NULL) {
        return;
    }
    obj = json_object();
    if (obj == NULL) {
        goto end;
    }
    lurk_audit_set(obj, "time", rec->time);
    lurk_audit_set(obj, "request_id", rec->request_id);
    lurk_audit_set(obj, "peer", rec->peer);
    lurk_audit_set(obj, "address", rec->address);
    lurk_audit_set(obj, "op", rec->op);
    lurk_audit_set(obj, "key_id", rec->key_id);
    lurk_audit_set(obj, "key_name", rec->key_name);
    lurk_audit_set(obj, "alg", rec->alg);
    json_object_set_new(obj, "status", json_integer(rec->status));
    lurk_audit_set(obj, "result", lurk_err_name(rec->result));
    lurk_audit_set(obj, "detail", rec->detail);

    line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line == NULL) {
        goto end;
    }
    len = strlen(line);
    {
        char *nl = realloc(line, len + 2);

        if (nl == NULL) {
            goto end;
        }
        line = nl;
    }
    line[len++] = '\n';
    line[len] = '\0';

    pthread_rwlock_rdlock(&a->lock);
    if (a->fd >= 0) {
        ssize_t w = write(a->fd, line, len);

        (void)w; /* nowhere better to report a failing audit log */
    }
    pthread_rwlock_unlock(&a->lock);
end:
    free(line);
    json_decref(obj);
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
