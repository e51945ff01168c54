/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_http_reply.c - the client's HTTP/1.1 reply reader (client/http_reply.c),
 * driven as transport.c drives it, without curl: the bytes arrive in reads
 * whose sizes the first two input bytes choose, each reply is handed over
 * and the bytes after it start the next one, the unparsed bytes move down
 * to the body between reads.  The third byte picks the body limit.  Never
 * crashes or reads outside what was received; a complete reply's body fits
 * the limit; and how the bytes were cut into reads changes nothing: the
 * replies and the verdict are those of reading everything at once.
 */
#include <string.h>

#include "fuzz.h"
#include "http_reply.h"

#define MAX_REPLIES 64

typedef struct {
    int rc; /* the last verdict: 0 more, -1 malformed, -2 too large */
    size_t n;
    long status[MAX_REPLIES];
    int close[MAX_REPLIES];
    size_t body_len[MAX_REPLIES];
    unsigned long body_sum[MAX_REPLIES];
} outcome;

static void drive(const uint8_t *data, size_t size, size_t step0, size_t step1, size_t max,
                  outcome *o)
{
    lurk_http_reply h;
    char err[256];
    char *buf;
    size_t cap = size + 1;
    size_t fed = 0;
    unsigned reads = 0;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    /* Exactly the bytes given, so that ASan sees any read past them. */
    buf = malloc(cap);
    FUZZ_CHECK(buf != NULL);
    memset(&h, 0, sizeof(h));
    while (fed < size && rc >= 0) {
        size_t n = reads++ % 2 == 0 ? step0 : step1;

        if (n > size - fed) {
            n = size - fed;
        }
        /* transport.c's lurk_conn_room: the unparsed bytes follow the body */
        if (h.pos > h.body) {
            memmove(buf + h.body, buf + h.pos, h.len - h.pos);
            h.len -= h.pos - h.body;
            h.pos = h.body;
        }
        FUZZ_CHECK(h.len + n < cap);
        memcpy(buf + h.len, data + fed, n);
        h.len += n;
        fed += n;
        for (;;) {
            size_t rest;

            err[0] = '\0';
            rc = h.len > h.pos ? lurk_http_reply_parse(&h, buf, max, err, sizeof(err)) : 0;
            FUZZ_CHECK(rc >= -2 && rc <= 1);
            FUZZ_CHECK(h.pos <= h.len && h.body <= h.pos);
            if (rc == -1) {
                FUZZ_CHECK(strncmp(err, "malformed HTTP reply: ", 22) == 0);
            }
            if (rc != 1) {
                break;
            }
            /* transport.c's lurk_conn_deliver */
            FUZZ_CHECK(h.state == LURK_HTTP_DONE);
            FUZZ_CHECK(h.status >= 200 && h.status <= 599);
            FUZZ_CHECK(h.body <= max);
            if (o->n < MAX_REPLIES) {
                unsigned long sum = 0;

                for (size_t i = 0; i < h.body; i++) {
                    sum = sum * 31 + (unsigned char) buf[i];
                }
                o->status[o->n] = h.status;
                o->close[o->n] = h.close;
                o->body_len[o->n] = h.body;
                o->body_sum[o->n] = sum;
            }
            o->n++;
            rest = h.len - h.pos;
            memmove(buf, buf + h.pos, rest);
            memset(&h, 0, sizeof(h));
            h.len = rest;
        }
    }
    o->rc = rc;
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {65536, 0, 1, 16, 100, 4096};
    static outcome cut, whole;
    size_t max;

    if (size < 3) {
        return 0;
    }
    max = maxes[data[2] % (sizeof(maxes) / sizeof(maxes[0]))];
    drive(data + 3, size - 3, (size_t) data[0] + 1, (size_t) data[1] % 16 + 1, max, &cut);
    drive(data + 3, size - 3, size, size, max, &whole);
    FUZZ_CHECK(cut.rc == whole.rc);
    FUZZ_CHECK(cut.n == whole.n);
    FUZZ_CHECK(memcmp(cut.status, whole.status, sizeof(cut.status)) == 0);
    FUZZ_CHECK(memcmp(cut.close, whole.close, sizeof(cut.close)) == 0);
    FUZZ_CHECK(memcmp(cut.body_len, whole.body_len, sizeof(cut.body_len)) == 0);
    FUZZ_CHECK(memcmp(cut.body_sum, whole.body_sum, sizeof(cut.body_sum)) == 0);
    return 0;
}
