/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_http_reply.c - the client's HTTP/1.1 reply reader (client/http_reply.c),
 * driven as transport.c drives it, without curl: the bytes arrive in reads
 * whose sizes the first two input bytes choose, each reply is handed over
 * and the bytes after it start the next one, the unparsed bytes move down
 * to the body between reads.  The third byte picks the body limit.  Never
 * crashes or reads outside the buffer; a complete reply's body fits the
 * limit and was decoded from bytes the reader was given.
 */
#include <string.h>

#include "fuzz.h"
#include "http_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {65536, 0, 1, 16, 100, 4096};
    lurk_http_reply h;
    char err[256];
    char *buf;
    size_t cap;
    size_t max;
    size_t fed = 0;
    size_t step[2];
    unsigned reads = 0;
    int rc = 0;

    if (size < 3) {
        return 0;
    }
    step[0] = (size_t) data[0] + 1;
    step[1] = (size_t) data[1] % 16 + 1;
    max = maxes[data[2] % (sizeof(maxes) / sizeof(maxes[0]))];
    data += 3;
    size -= 3;

    /* Exactly the bytes given (transport.c's buffer is larger: any read
     * past what was received is a bug ASan sees here). */
    cap = size + 1;
    buf = malloc(cap);
    FUZZ_CHECK(buf != NULL);
    memset(&h, 0, sizeof(h));
    while (fed < size && rc >= 0) {
        size_t n = step[reads++ % 2];

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
            rest = h.len - h.pos;
            memmove(buf, buf + h.pos, rest);
            memset(&h, 0, sizeof(h));
            h.len = rest;
        }
    }
    free(buf);
    return 0;
}
