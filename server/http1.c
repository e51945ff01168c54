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
                               int *have_cl, int *have_te, const char **why)
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
        if (*have_te) {
            return bad(why, "Transfer-Encoding repeated");
        }
        if (end - v != 7 || strncasecmp(line + v, "chunked", 7) != 0) {
            return bad(why, "Transfer-Encoding other than chunked is not supported");
        }
        *have_te = 1;
        req->chunked = 1;
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
    int have_te = 0;

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
            if (have_te && have_cl) {
                return bad(why, "both Content-Length and Transfer-Encoding");
            }
            if (have_te && req->minor == 0) {
                return bad(why, "Transfer-Encoding in an HTTP/1.0 request");
            }
            return LURK_HTTP1_DONE;
        }
        if (!have_line) {
            r = request_line(buf + pos, llen, req, why);
            have_line = 1;
        } else {
            r = field(buf + pos, llen, req, &have_cl, &have_te, why);
        }
        if (r != LURK_HTTP1_DONE) {
            return r;
        }
        pos = (size_t)(nl - buf) + 1;
    }
}

/* A CRLF-terminated line at buf[pos..len): its length without CRLF in
 * *llen.  MORE: no CRLF within max bytes yet; BAD: a bare CR or LF, or no
 * CRLF within max. */
static lurk_http1_result crlf_line(const char *buf, size_t pos, size_t len, size_t max,
                                   size_t *llen, const char **why)
{
    size_t lim = len - pos < max + 2 ? len - pos : max + 2;
    const char *nl = memchr(buf + pos, '\n', lim);

    if (nl == NULL) {
        return lim == max + 2 ? bad(why, "chunk line too long") : LURK_HTTP1_MORE;
    }
    *llen = (size_t)(nl - (buf + pos));
    if (*llen == 0 || buf[pos + *llen - 1] != '\r') {
        return bad(why, "chunked body line without CRLF");
    }
    (*llen)--;
    if (memchr(buf + pos, '\r', *llen) != NULL || memchr(buf + pos, '\0', *llen) != NULL) {
        return bad(why, "stray CR or NUL in the chunked body");
    }
    return LURK_HTTP1_DONE;
}

/* RFC 9112 7.1.1: *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
static int chunk_ext_ok(const char *s, size_t n)
{
    size_t i = 0;

    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t')) {
            i++;
        }
        if (i == n) {
            return 1;
        }
        if (s[i++] != ';') {
            return 0;
        }
        while (i < n && (s[i] == ' ' || s[i] == '\t')) {
            i++;
        }
        if (i == n || !is_tchar((unsigned char)s[i])) {
            return 0;
        }
        while (i < n && is_tchar((unsigned char)s[i])) {
            i++;
        }
        while (i < n && (s[i] == ' ' || s[i] == '\t')) {
            i++;
        }
        if (i < n && s[i] == '=') {
            i++;
            while (i < n && (s[i] == ' ' || s[i] == '\t')) {
                i++;
            }
            if (i < n && s[i] == '"') {
                for (i++; i < n && s[i] != '"'; i++) {
                    if (s[i] == '\\') {
                        i++;
                    }
                    if (i >= n || !is_field_char((unsigned char)s[i])) {
                        return 0;
                    }
                }
                if (i >= n) {
                    return 0;
                }
                i++;
            } else {
                if (i == n || !is_tchar((unsigned char)s[i])) {
                    return 0;
                }
                while (i < n && is_tchar((unsigned char)s[i])) {
                    i++;
                }
            }
        }
    }
}

lurk_http1_result lurk_http1_chunked(const char *buf, size_t len, size_t max_body, char *out,
                                     size_t *consumed, size_t *body_len, const char **why)
{
    size_t pos = 0;
    size_t data = 0;
    size_t max_encoded = 2 * max_body + 65536;
    size_t trailer = 0;
    lurk_http1_result r;

    if (why != NULL) {
        *why = NULL;
    }
    for (;;) {
        size_t llen = 0;
        size_t size = 0;
        size_t i = 0;

        if (pos > max_encoded) {
            return LURK_HTTP1_TOO_LARGE;
        }
        r = crlf_line(buf, pos, len, LURK_HTTP1_MAX_CHUNK_LINE, &llen, why);
        if (r != LURK_HTTP1_DONE) {
            return r;
        }
        for (; i < llen && i < 9; i++) {
            char ch = buf[pos + i];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;

            if (d < 0) {
                break;
            }
            size = size * 16 + (size_t)d;
        }
        if (i == 0) {
            return bad(why, "bad chunk size");
        }
        if (i == 9 || size > max_body || data + size > max_body) {
            return LURK_HTTP1_TOO_LARGE;
        }
        if (!chunk_ext_ok(buf + pos + i, llen - i)) {
            return bad(why, "bad chunk extension");
        }
        pos += llen + 2;
        if (size == 0) {
            break;
        }
        if (len - pos < size + 2) {
            return LURK_HTTP1_MORE;
        }
        if (buf[pos + size] != '\r' || buf[pos + size + 1] != '\n') {
            return bad(why, "chunk data not followed by CRLF");
        }
        if (out != NULL) {
            memcpy(out + data, buf + pos, size);
        }
        data += size;
        pos += size + 2;
    }
    /* trailer section: field lines, then an empty line */
    for (;;) {
        size_t llen = 0;
        size_t n = 0;

        r = crlf_line(buf, pos, len, LURK_HTTP1_MAX_TRAILER, &llen, why);
        if (r != LURK_HTTP1_DONE) {
            return r;
        }
        pos += llen + 2;
        if (llen == 0) {
            break;
        }
        trailer += llen + 2;
        if (trailer > LURK_HTTP1_MAX_TRAILER) {
            return bad(why, "trailer section too large");
        }
        while (n < llen && is_tchar((unsigned char)buf[pos - llen - 2 + n])) {
            n++;
        }
        if (n == 0 || n == llen || buf[pos - llen - 2 + n] != ':') {
            return bad(why, "bad trailer field");
        }
        for (size_t k = n + 1; k < llen; k++) {
            if (!is_field_char((unsigned char)buf[pos - llen - 2 + k])) {
                return bad(why, "control character in a trailer field");
            }
        }
    }
    *consumed = pos;
    *body_len = data;
    return LURK_HTTP1_DONE;
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
