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
    { "te chunked", P "Transfer-Encoding: chunked\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "te identity", P "Transfer-Encoding: identity\r\nContent-Length: 1\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
    { "te and cl", P "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", LURK_HTTP1_BAD, -1, 0, 0 },
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
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
