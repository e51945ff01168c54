/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_http1.c - the key server's HTTP/1.1 request head parser
 * (lurk_http1_parse, server/http1.c), through its public header only.  The
 * first byte picks max_head; the rest is what the connection read.  Never
 * crashes; a parsed head lies inside the input and its fields inside the
 * head; every prefix of a complete head asks for more, as
 * the server sees it arrive a few bytes at a time.
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
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_heads[] = {LURK_HTTP1_MAX_HEAD, 64, 256, 1024};
    lurk_http1_req req, part;
    size_t max_head;
    char *buf;
    lurk_http1_result r;

    if (size < 1) {
        return 0;
    }
    max_head = max_heads[data[0] % (sizeof(max_heads) / sizeof(max_heads[0]))];
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
    }
    free(buf);
    return 0;
}
