/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_json.h - the codec's JSON writer (json.c), internal to the LURK
 * codec: proto.c writes messages with it, the key server's audit log uses
 * its string escaper (lurk_proto_json_string, declared in lurk_proto.h).
 *
 * A writer appends to one growing buffer; the first error sticks (every
 * later call does nothing) and lurk_jw_finish reports it.  The buffer may
 * hold a premaster: it is cleansed when it grows and when it is dropped.
 * `comma` tracks whether the next member or item needs a ','.
 */
#ifndef LURK_JSON_H
#define LURK_JSON_H

#include <stddef.h>
#include <string.h>

#include "lurk_proto.h"

#define JW_CAP_MAX (LURK_MAX_MESSAGE + 2048)

typedef struct {
    char *p;      /* may hold a premaster (DecryptResponse) */
    size_t len;
    size_t cap;
    lurk_err err;
    int comma;    /* a value was written: the next member or item needs ',' */
} lurk_jw;

/* `payload`: bytes expected beyond the small members (binaries, text). */
void lurk_jw_init(lurk_jw *w, size_t payload);
/* Grows the buffer for n more bytes and the final NUL. */
int lurk_jw_grow(lurk_jw *w, size_t n);
/* A string value (refused, LURK_ERR_INVALID_ARG, when not UTF-8). */
void lurk_jw_strn(lurk_jw *w, const char *s, size_t len);
void lurk_jw_str(lurk_jw *w, const char *s);
/* The envelope's member: "<Tx>Request", "LurkResponse", ... */
void lurk_jw_key(lurk_jw *w, const char *name);
void lurk_jw_int(lurk_jw *w, long long v);
/* Base64url straight from the bytes into the message. */
void lurk_jw_bin(lurk_jw *w, const lurk_buf *b);
/* Drops the buffer, cleansed. */
void lurk_jw_discard(lurk_jw *w);
/* Hands the NUL-terminated text to the caller, or fails with the first
 * error (the buffer cleansed and freed). */
lurk_err lurk_jw_finish(lurk_jw *w, char **json, size_t *len);

/* Room for n more bytes and the final NUL (a failed writer has none). */
static inline int lurk_jw_room(lurk_jw *w, size_t n)
{
    return (n < w->cap - w->len && w->err == LURK_OK) || lurk_jw_grow(w, n);
}

static inline void lurk_jw_raw(lurk_jw *w, const char *s, size_t n)
{
    if (lurk_jw_room(w, n)) {
        memcpy(w->p + w->len, s, n);
        w->len += n;
    }
}

static inline void lurk_jw_char(lurk_jw *w, char c)
{
    if (lurk_jw_room(w, 1)) {
        w->p[w->len++] = c;
    }
}

/* Before a member or an array item. */
static inline void lurk_jw_sep(lurk_jw *w)
{
    if (w->comma) {
        lurk_jw_char(w, ',');
    }
}

/* '{' or '[' */
static inline void lurk_jw_open(lurk_jw *w, char c)
{
    lurk_jw_sep(w);
    lurk_jw_char(w, c);
    w->comma = 0;
}

/* '}' or ']' */
static inline void lurk_jw_close(lurk_jw *w, char c)
{
    lurk_jw_char(w, c);
    w->comma = 1;
}

/* A member name: a literal of this file, written as is. */
static inline void lurk_jw_name_raw(lurk_jw *w, const char *text, size_t n)
{
    lurk_jw_sep(w);
    lurk_jw_raw(w, text, n);
    w->comma = 0;
}

/* A member name: a literal of proto.c, written as is. */
#define JW_NAME(w, member) lurk_jw_name_raw((w), "\"" member "\":", sizeof("\"" member "\":") - 1)

#endif /* LURK_JSON_H */
