/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_http1.c - the key server's HTTP/1.1 request head parser
 * (server/http1.c): a table of heads, each with the verdict and, for the
 * ones accepted, what the front reads out of them.  Every accepted head is
 * also fed one byte at a time: the parser must say MORE until the last byte.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "srv_http1.h"

#define P "POST /.well-known/lurk HTTP/1.1\r\n"

static const struct {
    const char *name;
    const char *head;
    lurk_http1_result want;
    long body_len;      /* -1: not checked */
    int close;
    int is_post;
} cases[] = {
    { "plain", P "Host: x\r\nContent-Length: 12\r\n\r\n", LURK_HTTP1_DONE, 12, 0, 1 },
    { "no body", P "Host: x\r\n\r\n", LURK_HTTP1_DONE, 0, 0, 1 },
    { "bare LF", "POST /.well-known/lurk HTTP/1.1\nContent-Length: 3\n\n", LURK_HTTP1_DONE, 3, 0, 1 },
    { "leading CRLF", "\r\n" P "Content-Length: 1\r\n\r\n", LURK_HTTP1_DONE, 1, 0, 1 },
    { "case", P "content-LENGTH:7\r\n\r\n", LURK_HTTP1_DONE, 7, 0, 1 },
    { "ows", P "Content-Length: \t 7 \t\r\n\r\n", LURK_HTTP1_DONE, 7, 0, 1 },
    { "close", P "Connection: keep-alive, close\r\n\r\n", LURK_HTTP1_DONE, 0, 1, 1 },
    { "http10", "POST /x HTTP/1.0\r\n\r\n", LURK_HTTP1_DONE, 0, 0, 1 },
    { "get", "GET /.well-known/lurk HTTP/1.1\r\n\r\n", LURK_HTTP1_DONE, 0, 0, 0 },
    { "query", "POST /.well-known/lurk?a=b HTTP/1.1\r\n\r\n", LURK_HTTP1_DONE, 0, 0, 1 },
    { "obs-text", P "X-A: caf\xc3\xa9\r\n\r\n", LURK_HTTP1_DONE, 0, 0, 1 },
    { "partial", P "Content-Length: 1", LURK_HTTP1_MORE, -1, 0, 0 },
    { "partial line", "POST /.well-kn", LURK_HTTP1_MORE, -1, 0, 0 },
    /* ambiguous framing */
    { "cl twice same", P "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl twice diff", P "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl list", P "Content-Length: 5, 5\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl plus", P "Content-Length: +5\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl minus", P "Content-Length: -1\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl hex", P "Content-Length: 0x5\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl empty", P "Content-Length:\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl inner space", P "Content-Length: 5 5\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl huge", P "Content-Length: 99999999999999999999\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "te chunked", P "Transfer-Encoding: chunked\r\n\r\n", LURK_HTTP1_DONE, 0, 0, 1 },
    { "te chunked case", P "transfer-encoding:  Chunked \r\n\r\n", LURK_HTTP1_DONE, 0, 0, 1 },
    { "te identity", P "Transfer-Encoding: identity\r\nContent-Length: 1\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "te and cl", P "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl after te", P "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "te gzip chunked", P "Transfer-Encoding: gzip, chunked\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "te chunked twice", P "Transfer-Encoding: chunked, chunked\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "te repeated", P "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "te http10", "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "cl plus", P "Content-Length: +5\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    /* malformed */
    { "space colon", P "Content-Length : 5\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "fold", P "X-A: a\r\n b\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "no colon", P "X-A\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "ctl in value", P "X-A: a\x01" "b\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "nul", P "X-A: a\0b\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "stray CR", P "X-A: a\rb\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "http2", "POST / HTTP/2.0\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "http09", "GET /\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "two spaces", "POST  / HTTP/1.1\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "tls hello", "\x16\x03\x01\x02\x05\x01\x07\x01\xfc\x03\x03\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "trailing junk", "POST / HTTP/1.1 x\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* strlen would stop at the embedded NUL of one case */
static size_t head_len(size_t i)
{
    return strcmp(cases[i].name, "nul") == 0 ? sizeof(P "X-A: a\0b\r\n\r\n") - 1
                                             : strlen(cases[i].head);
}

START_TEST(test_table)
{
    lurk_http1_req req;
    const char *why = NULL;
    size_t len = head_len((size_t)_i);
    lurk_http1_result r = lurk_http1_parse(cases[_i].head, len, LURK_HTTP1_MAX_HEAD, &req, &why);

    ck_assert_msg(r == cases[_i].want, "%s: got %d, want %d", cases[_i].name, r, cases[_i].want);
    if (r == LURK_HTTP1_BAD) {
        ck_assert_msg(why != NULL && why[0] != '\0', "%s: no reason", cases[_i].name);
    }
    if (r != LURK_HTTP1_DONE) {
        return;
    }
    ck_assert_uint_eq(req.head_len, len);
    if (cases[_i].body_len >= 0) {
        ck_assert_uint_eq(req.body_len, (size_t)cases[_i].body_len);
    }
    ck_assert_int_eq(req.conn_close, cases[_i].close);
    ck_assert_int_eq(req.is_post, cases[_i].is_post);
    /* byte by byte: MORE until the whole head is there */
    for (size_t n = 0; n < len; n++) {
        ck_assert_msg(lurk_http1_parse(cases[_i].head, n, LURK_HTTP1_MAX_HEAD, &req, NULL)
                          == LURK_HTTP1_MORE,
                      "%s: not MORE at %zu bytes", cases[_i].name, n);
    }
}
END_TEST

START_TEST(test_fields)
{
    static const char h[] = "POST /.well-known/lurk?x=1 HTTP/1.0\r\nConnection: Keep-Alive\r\n"
                            "Expect: 100-continue\r\nContent-Length: 00042\r\n\r\nBODY";
    lurk_http1_req req;

    ck_assert_int_eq(lurk_http1_parse(h, sizeof(h) - 1, LURK_HTTP1_MAX_HEAD, &req, NULL),
                     LURK_HTTP1_DONE);
    ck_assert_uint_eq(req.head_len, sizeof(h) - 1 - 4); /* the body is not the head's */
    ck_assert_uint_eq(req.body_len, 42);
    ck_assert_int_eq(req.minor, 0);
    ck_assert_int_eq(req.conn_keep_alive, 1);
    ck_assert_int_eq(req.expect_continue, 1);
    ck_assert_uint_eq(req.method_len, 4);
    ck_assert(memcmp(req.method, "POST", 4) == 0);
    ck_assert_uint_eq(req.path_len, strlen("/.well-known/lurk"));
    ck_assert(memcmp(req.path, "/.well-known/lurk", req.path_len) == 0);
}
END_TEST

/* Two pipelined requests: the first head ends where the second begins. */
START_TEST(test_pipelined)
{
    static const char h[] = P "Content-Length: 2\r\n\r\n{}" P "Content-Length: 0\r\n\r\n";
    lurk_http1_req req;
    size_t first;

    ck_assert_int_eq(lurk_http1_parse(h, sizeof(h) - 1, LURK_HTTP1_MAX_HEAD, &req, NULL),
                     LURK_HTTP1_DONE);
    first = req.head_len + req.body_len;
    ck_assert_int_eq(lurk_http1_parse(h + first, sizeof(h) - 1 - first, LURK_HTTP1_MAX_HEAD,
                                      &req, NULL),
                     LURK_HTTP1_DONE);
    ck_assert_uint_eq(first + req.head_len, sizeof(h) - 1);
}
END_TEST

/* No end of head within the bound: TOO_LARGE, whatever follows. */
START_TEST(test_too_large)
{
    static char big[LURK_HTTP1_MAX_HEAD + 64];
    lurk_http1_req req;
    size_t n = strlen(P);

    memcpy(big, P, n);
    memset(big + n, 'a', sizeof(big) - n);
    memcpy(big + n, "X-Pad: ", 7);
    ck_assert_int_eq(lurk_http1_parse(big, LURK_HTTP1_MAX_HEAD - 1, LURK_HTTP1_MAX_HEAD, &req,
                                      NULL),
                     LURK_HTTP1_MORE);
    ck_assert_int_eq(lurk_http1_parse(big, sizeof(big), LURK_HTTP1_MAX_HEAD, &req, NULL),
                     LURK_HTTP1_TOO_LARGE);
    /* a head that ends past the bound is refused too */
    memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
    ck_assert_int_eq(lurk_http1_parse(big, sizeof(big), LURK_HTTP1_MAX_HEAD, &req, NULL),
                     LURK_HTTP1_TOO_LARGE);
}
END_TEST

START_TEST(test_reason)
{
    ck_assert_str_eq(lurk_http1_reason(200), "OK");
    ck_assert_str_eq(lurk_http1_reason(503), "Service Unavailable");
    ck_assert_str_eq(lurk_http1_reason(999), "Unknown");
}
END_TEST

/* Chunked bodies (RFC 9112 7.1): data, encoded length, or the verdict. */
static const struct {
    const char *name;
    const char *body;
    lurk_http1_result want;
    const char *data;     /* DONE: the decoded data */
    size_t extra;         /* DONE: bytes after the body (not consumed) */
} chunked_cases[] = {
    { "one", "2\r\n{}\r\n0\r\n\r\n", LURK_HTTP1_DONE, "{}", 0 },
    { "several", "1\r\n{\r\nA\r\n\"a\":123456\r\n1\r\n}\r\n0\r\n\r\n", LURK_HTTP1_DONE,
      "{\"a\":123456}", 0 },
    { "empty", "0\r\n\r\n", LURK_HTTP1_DONE, "", 0 },
    { "next request after", "2\r\n{}\r\n0\r\n\r\nPOST", LURK_HTTP1_DONE, "{}", 4 },
    { "extensions", "2;a=b ; c ;d=\"x y\\\"z\"\r\n{}\r\n0;last\r\n\r\n", LURK_HTTP1_DONE, "{}", 0 },
    { "trailers", "2\r\n{}\r\n0\r\nX-T: 1\r\nY: z\r\n\r\n", LURK_HTTP1_DONE, "{}", 0 },
    { "upper hex", "00A\r\n0123456789\r\n0\r\n\r\n", LURK_HTTP1_DONE, "0123456789", 0 },
    { "incomplete size", "2", LURK_HTTP1_MORE, NULL, 0 },
    { "incomplete data", "5\r\n{}", LURK_HTTP1_MORE, NULL, 0 },
    { "no last chunk", "2\r\n{}\r\n", LURK_HTTP1_MORE, NULL, 0 },
    { "no final CRLF", "2\r\n{}\r\n0\r\n", LURK_HTTP1_MORE, NULL, 0 },
    { "bare LF", "2\n{}\n0\n\n", LURK_HTTP1_BAD, NULL, 0 },
    { "plus size", "+2\r\n{}\r\n0\r\n\r\n", LURK_HTTP1_BAD, NULL, 0 },
    { "0x size", "0x2\r\n{}\r\n0\r\n\r\n", LURK_HTTP1_BAD, NULL, 0 },
    { "space before size", " 2\r\n{}\r\n0\r\n\r\n", LURK_HTTP1_BAD, NULL, 0 },
    { "no size", "\r\n{}\r\n0\r\n\r\n", LURK_HTTP1_BAD, NULL, 0 },
    { "data overrun", "1\r\n{}\r\n0\r\n\r\n", LURK_HTTP1_BAD, NULL, 0 },
    { "bad extension", "2;\r\n{}\r\n0\r\n\r\n", LURK_HTTP1_BAD, NULL, 0 },
    { "bad extension value", "2;a=\r\n{}\r\n0\r\n\r\n", LURK_HTTP1_BAD, NULL, 0 },
    { "bad trailer", "0\r\nno colon\r\n\r\n", LURK_HTTP1_BAD, NULL, 0 },
    { "huge size", "123456789\r\n", LURK_HTTP1_TOO_LARGE, NULL, 0 },
    { "over max_body", "401\r\n", LURK_HTTP1_TOO_LARGE, NULL, 0 },
    { "at max_body", "400\r\n", LURK_HTTP1_MORE, NULL, 0 },
};

#define N_CHUNKED (sizeof(chunked_cases) / sizeof(chunked_cases[0]))

START_TEST(test_chunked)
{
    const char *b = chunked_cases[_i].body;
    size_t len = strlen(b);
    size_t enc = 0;
    size_t blen = 0;
    const char *why = NULL;
    char out[1024];
    lurk_http1_result r = lurk_http1_chunked(b, len, 1024, NULL, &enc, &blen, &why);

    ck_assert_msg(r == chunked_cases[_i].want, "%s: got %d, want %d (%s)", chunked_cases[_i].name,
                  r, chunked_cases[_i].want, why != NULL ? why : "");
    if (r == LURK_HTTP1_BAD) {
        ck_assert_msg(why != NULL && why[0] != '\0', "%s: no reason", chunked_cases[_i].name);
    }
    if (r != LURK_HTTP1_DONE) {
        return;
    }
    ck_assert_uint_eq(enc, len - chunked_cases[_i].extra);
    ck_assert_uint_eq(blen, strlen(chunked_cases[_i].data));
    ck_assert_int_eq(lurk_http1_chunked(b, len, 1024, out, &enc, &blen, &why), LURK_HTTP1_DONE);
    ck_assert(memcmp(out, chunked_cases[_i].data, blen) == 0);
    /* byte by byte: never DONE early, never BAD on a prefix */
    len = enc;
    for (size_t n = 0; n < len; n++) {
        ck_assert_msg(lurk_http1_chunked(b, n, 1024, NULL, &enc, &blen, NULL) == LURK_HTTP1_MORE,
                      "%s: not MORE at %zu bytes", chunked_cases[_i].name, n);
    }
}
END_TEST

/* Many small chunks: the data bound holds over the sum, and the encoding
 * bound over the whole (1-byte chunks with long extensions). */
START_TEST(test_chunked_bounds)
{
    static char buf[200000];
    size_t pos = 0;
    size_t enc = 0;
    size_t blen = 0;

    while (pos + 8 < 2000) {
        memcpy(buf + pos, "1\r\nx\r\n", 6);
        pos += 6;
    }
    memcpy(buf + pos, "0\r\n\r\n", 5);
    /* ~330 bytes of data: over a max_body of 100 */
    ck_assert_int_eq(lurk_http1_chunked(buf, pos + 5, 100, NULL, &enc, &blen, NULL),
                     LURK_HTTP1_TOO_LARGE);
    ck_assert_int_eq(lurk_http1_chunked(buf, pos + 5, 1000, NULL, &enc, &blen, NULL),
                     LURK_HTTP1_DONE);
    ck_assert_uint_eq(enc, pos + 5);
    /* 1-byte chunks with 1000-byte extensions: the encoding bound */
    pos = 0;
    while (pos + 1100 < sizeof(buf)) {
        buf[pos++] = '1';
        buf[pos++] = ';';
        memset(buf + pos, 'e', 1000);
        pos += 1000;
        memcpy(buf + pos, "\r\nx\r\n", 5);
        pos += 5;
    }
    ck_assert_int_eq(lurk_http1_chunked(buf, pos, 1000, NULL, &enc, &blen, NULL),
                     LURK_HTTP1_TOO_LARGE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http1");
    TCase *tc = tcase_create("http1");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_table, 0, (int)N_CASES);
    tcase_add_test(tc, test_fields);
    tcase_add_test(tc, test_pipelined);
    tcase_add_test(tc, test_too_large);
    tcase_add_test(tc, test_reason);
    tcase_add_loop_test(tc, test_chunked, 0, (int)N_CHUNKED);
    tcase_add_test(tc, test_chunked_bounds);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
