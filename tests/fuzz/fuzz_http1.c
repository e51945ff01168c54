/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_http1.c - the key server's HTTP/1.1 request parser (server/http1.c),
 * through its public header only: the head (lurk_http1_parse) and, after a
 * head with Transfer-Encoding: chunked, the chunked body
 * (lurk_http1_chunked).  The first byte picks max_head and max_body; the
 * rest is what the connection read.  Never crashes; a parsed head lies
 * inside the input and its fields inside the head; every prefix of a
 * complete head or body asks for more, as the server sees them arrive a few
 * bytes at a time; a body decodes to the same data with and without its
 * output buffer, and to what a plain reading of the chunked coding gives.
 */
#include <string.h>

#include "fuzz.h"
#include "srv_http1.h"

static lurk_http1_result parse(const char *buf, size_t len, size_t max_head, lurk_http1_req *req)
{
    const char *why = NULL;
    lurk_http1_result r;

    memset(req, 0, sizeof(*req));
    r = lurk_http1_parse(buf, len, max_head, req, &why);
    FUZZ_CHECK(r == LURK_HTTP1_DONE || r == LURK_HTTP1_MORE || r == LURK_HTTP1_BAD
               || r == LURK_HTTP1_TOO_LARGE);
    if (r == LURK_HTTP1_BAD) {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
    }
    if (r == LURK_HTTP1_DONE) {
        FUZZ_CHECK(req->head_len > 0 && req->head_len <= len && req->head_len <= max_head);
        FUZZ_CHECK(req->method != NULL && req->method >= buf
                   && req->method + req->method_len <= buf + req->head_len);
        FUZZ_CHECK(req->method_len > 0 && req->method_len <= LURK_HTTP1_MAX_METHOD);
        FUZZ_CHECK(req->path != NULL && req->path >= buf
                   && req->path + req->path_len <= buf + req->head_len);
        FUZZ_CHECK(req->path_len <= LURK_HTTP1_MAX_TARGET);
        FUZZ_CHECK(req->minor == 0 || req->minor == 1);
        FUZZ_CHECK(!req->chunked || req->body_len == 0);
    }
    return r;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        return (c | 0x20) - 'a' + 10;
    }
    return -1;
}

/* RFC 9112 7.1 read plainly (extensions and trailer lines skipped whole):
 * the data into out, their length, and the encoding's length.  Only for a
 * body the parser accepted, so the input is known to be well formed. */
static void dechunk(const char *b, size_t len, char *out, size_t *data, size_t *used)
{
    size_t pos = 0;
    size_t n = 0;

    for (;;) {
        size_t size = 0;
        const char *eol = memchr(b + pos, '\n', len - pos);

        FUZZ_CHECK(eol != NULL);
        for (const char *p = b + pos; hexval(*p) >= 0; p++) {
            size = size * 16 + (size_t) hexval(*p);
        }
        pos = (size_t) (eol - b) + 1;
        if (size == 0) {
            break;
        }
        FUZZ_CHECK(len - pos >= size + 2);
        memcpy(out + n, b + pos, size);
        n += size;
        pos += size + 2;
    }
    for (;;) {
        const char *eol = memchr(b + pos, '\n', len - pos);

        FUZZ_CHECK(eol != NULL);
        if (eol == b + pos + 1) {
            pos += 2;
            break;
        }
        pos = (size_t) (eol - b) + 1;
    }
    *data = n;
    *used = pos;
}

static void chunked(const char *b, size_t len, size_t max_body)
{
    const char *why = NULL;
    size_t used = 0;
    size_t data = 0;
    size_t used2 = 0;
    size_t data2 = 0;
    char *out;
    char *ref;
    lurk_http1_result r;

    r = lurk_http1_chunked(b, len, max_body, NULL, &used, &data, &why);
    FUZZ_CHECK(r == LURK_HTTP1_DONE || r == LURK_HTTP1_MORE || r == LURK_HTTP1_BAD
               || r == LURK_HTTP1_TOO_LARGE);
    if (r == LURK_HTTP1_BAD) {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
    }
    if (r != LURK_HTTP1_DONE) {
        return;
    }
    FUZZ_CHECK(used <= len && data <= max_body && data < used);
    out = malloc(data + 1);
    ref = malloc(len + 1);
    FUZZ_CHECK(out != NULL && ref != NULL);
    FUZZ_CHECK(lurk_http1_chunked(b, len, max_body, out, &used2, &data2, &why) == LURK_HTTP1_DONE);
    FUZZ_CHECK(used2 == used && data2 == data);
    dechunk(b, len, ref, &data2, &used2);
    FUZZ_CHECK(used2 == used && data2 == data && memcmp(out, ref, data) == 0);
    /* the body cut short, at its last 64 bytes */
    for (size_t cut = used > 64 ? used - 64 : 0; cut < used; cut++) {
        r = lurk_http1_chunked(b, cut, max_body, NULL, &used2, &data2, &why);
        FUZZ_CHECK(r == LURK_HTTP1_MORE);
    }
    free(out);
    free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_heads[] = {LURK_HTTP1_MAX_HEAD, 64, 256, 1024};
    static const size_t max_bodies[] = {65536, 16, 1024, 0};
    lurk_http1_req req, part;
    size_t max_head, max_body;
    char *buf;
    lurk_http1_result r;

    if (size < 1) {
        return 0;
    }
    max_head = max_heads[data[0] % 4];
    max_body = max_bodies[(data[0] >> 2) % 4];
    size--;
    /* An exact-size copy, so that ASan sees a read past the input. */
    buf = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data + 1, size);
    r = parse(buf, size, max_head, &req);
    if (r == LURK_HTTP1_DONE) {
        /* The same verdict with the bytes after the head gone, and MORE
         * for the head cut short (its last 64 cuts): a read that ends
         * anywhere, between CR and LF too, is never refused. */
        FUZZ_CHECK(parse(buf, req.head_len, max_head, &part) == LURK_HTTP1_DONE);
        FUZZ_CHECK(part.head_len == req.head_len && part.body_len == req.body_len);
        for (size_t cut = req.head_len > 64 ? req.head_len - 64 : 0; cut < req.head_len; cut++) {
            r = parse(buf, cut, max_head, &part);
            FUZZ_CHECK(r == LURK_HTTP1_MORE);
        }
        if (req.chunked) {
            chunked(buf + req.head_len, size - req.head_len, max_body);
        }
    }
    free(buf);
    return 0;
}
