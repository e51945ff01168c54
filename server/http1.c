/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http1.c - the HTTP/1.1 request head parser of the key server's front
 * (contract in srv_http1.h).  One pass over the head, no allocation; it
 * never reads past len, and gives up at max_head bytes.
 */
#include "srv_http1.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 tchar */
static int is_tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
           || (ch != '\0' && strchr(extra, ch) != NULL);
}

/* RFC 9110 5.5 field-vchar, SP, HTAB, obs-text */
static int is_field_char(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || (ch >= 0x21 && ch != 0x7f);
}

/* The comma-separated list value[0..len) holds token (case-insensitive). */
static int list_has(const char *v, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;

    while (i < len) {
        size_t start;
        size_t end;

        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
            i++;
        }
        start = i;
        while (i < len && v[i] != ',') {
            i++;
        }
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) {
            end--;
        }
        if (end - start == tlen && strncasecmp(v + start, token, tlen) == 0) {
            return 1;
        }
    }
    return 0;
}

static lurk_http1_result bad(const char **why, const char *what)
{
    if (why != NULL) {
        *why = what;
    }
    return LURK_HTTP1_BAD;
}

/* "METHOD SP target SP HTTP/1.x", line[0..len) without its line end. */
static lurk_http1_result request_line(const char *line, size_t len, lurk_http1_req *req,
                                      const char **why)
{
    size_t i = 0;
    size_t t;

    while (i < len && is_tchar((unsigned char)line[i])) {
        i++;
    }
    if (i == 0 || i > LURK_HTTP1_MAX_METHOD || i >= len || line[i] != ' ') {
        return bad(why, "bad request line");
    }
    req->method = line;
    req->method_len = i;
    req->is_post = i == 4 && memcmp(line, "POST", 4) == 0;
    req->is_head = i == 4 && memcmp(line, "HEAD", 4) == 0;
    t = ++i;
    while (i < len && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f) {
        i++;
    }
    if (i == t || i - t > LURK_HTTP1_MAX_TARGET || i >= len || line[i] != ' ') {
        return bad(why, "bad request target");
    }
    req->path = line + t;
    req->path_len = i - t;
    {
        const char *q = memchr(req->path, '?', req->path_len);

        if (q != NULL) {
            req->path_len = (size_t)(q - req->path);
        }
    }
    i++;
    if (len - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0
        || (line[i + 7] != '0' && line[i + 7] != '1')) {
        return bad(why, "unsupported HTTP version");
    }
    req->minor = line[i + 7] - '0';
    return LURK_HTTP1_DONE;
}

/* "name: value", line[0..len) without its line end. */
static lurk_http1_result field(const char *line, size_t len, lurk_http1_req *req,
                               int *have_cl, const char **why)
{
    size_t n = 0;
    size_t v;
    size_t end;

    if (line[0] == ' ' || line[0] == '\t') {
        return bad(why, "obsolete line folding");
    }
    while (n < len && is_tchar((unsigned char)line[n])) {
        n++;
    }
    if (n == 0 || n >= len || line[n] != ':') {
        return bad(why, "bad header field");
    }
    v = n + 1;
    while (v < len && (line[v] == ' ' || line[v] == '\t')) {
        v++;
    }
    end = len;
    while (end > v && (line[end - 1] == ' ' || line[end - 1] == '\t')) {
        end--;
    }
    for (size_t i = v; i < end; i++) {
        if (!is_field_char((unsigned char)line[i])) {
            return bad(why, "control character in a header field");
        }
    }
    if (n == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        size_t cl = 0;

        if (*have_cl) {
            return bad(why, "Content-Length repeated");
        }
        if (end == v || end - v > 9) {
            return bad(why, "bad Content-Length");
        }
        for (size_t i = v; i < end; i++) {
            if (line[i] < '0' || line[i] > '9') {
                return bad(why, "bad Content-Length");
            }
            cl = cl * 10 + (size_t)(line[i] - '0');
        }
        *have_cl = 1;
        req->body_len = cl;
    } else if (n == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        return bad(why, "Transfer-Encoding is not supported: send Content-Length");
    } else if (n == 10 && strncasecmp(line, "Connection", 10) == 0) {
        req->conn_close |= list_has(line + v, end - v, "close");
        req->conn_keep_alive |= list_has(line + v, end - v, "keep-alive");
    } else if (n == 6 && strncasecmp(line, "Expect", 6) == 0) {
        req->expect_continue |= end - v == 12 && strncasecmp(line + v, "100-continue", 12) == 0;
    }
    return LURK_HTTP1_DONE;
}

lurk_http1_result lurk_http1_parse(const char *buf, size_t len, size_t max_head,
                                   lurk_http1_req *req, const char **why)
{
    size_t pos = 0;
    size_t lim = len < max_head ? len : max_head;
    int have_line = 0;
    int have_cl = 0;

    memset(req, 0, sizeof(*req));
    if (why != NULL) {
        *why = NULL;
    }
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', lim - pos);
        size_t llen;
        lurk_http1_result r;

        if (nl == NULL) {
            return len >= max_head ? LURK_HTTP1_TOO_LARGE : LURK_HTTP1_MORE;
        }
        llen = (size_t)(nl - (buf + pos));
        if (llen > 0 && buf[pos + llen - 1] == '\r') {
            llen--;
        }
        if (memchr(buf + pos, '\r', llen) != NULL || memchr(buf + pos, '\0', llen) != NULL) {
            return bad(why, "stray CR or NUL in the request head");
        }
        if (llen == 0) {
            pos = (size_t)(nl - buf) + 1;
            if (!have_line) {
                continue; /* empty lines before the request line */
            }
            req->head_len = pos;
            return LURK_HTTP1_DONE;
        }
        if (!have_line) {
            r = request_line(buf + pos, llen, req, why);
            have_line = 1;
        } else {
            r = field(buf + pos, llen, req, &have_cl, why);
        }
        if (r != LURK_HTTP1_DONE) {
            return r;
        }
        pos = (size_t)(nl - buf) + 1;
    }
}

const char *lurk_http1_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}
