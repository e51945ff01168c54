/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.c - HTTPS (mutual TLS) and HTTP-over-unix-socket POSTs to a key
 * server; the only file that knows libcurl.
 *
 * libcurl only connects: TCP or unix socket, TLS with both certificates from
 * memory, verification, the connect timeout and session resumption through
 * a CURLSH shared by the connections of a client (a new connection resumes
 * instead of doing a full handshake).  The HTTP/1.1 exchange is ours: a post
 * is one curl_easy_send of the whole request (one TLS record and one write
 * up to 16 KiB) and curl_easy_recv of the reply into one buffer, usually in
 * one call, parsed strictly and with bounds.  On a warm connection curl_easy_perform's HTTP
 * machinery made a post cost three times the instructions (TLS included) and
 * half again the system calls.
 *
 * One LURK_CONN = at most one persistent connection to one server
 * (keep-alive, TCP_NODELAY) = one curl easy handle made with CONNECT_ONLY;
 * a handle connects once, so a reconnection is a new handle with the same
 * options.  A kept-alive connection that the server closed meanwhile fails
 * before any reply byte arrives; the request is then sent once more on a new
 * connection, as libcurl itself would.
 *
 * Verification is never optional: peer and host name are checked against
 * the configured CA only (no system store), TLS 1.2 is the minimum, the
 * protocol is restricted to https (http only over a unix socket), there are
 * no redirects, and the reply is capped at max_response bytes of body plus
 * LURK_HTTP_HEAD_MAX of head.
 *
 * libcurl's TLS runs on OpenSSL's default library context.  Inside nginx or
 * haproxy that context also holds the lurk provider, so nothing here may
 * change global OpenSSL state (properties, providers, engines).
 */
#include "lurk_transport.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "http_reply.h"
#include "lurk_proto.h"

#define LURK_CONN_INITIAL_BUF 4096 /* a whole reply in one read, usually */

/* The reply reader (http_reply.c) decodes each reply in place in conn->buf. */

struct lurk_share_st {
    CURLSH *sh;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

struct lurk_conn_st {
    const lurk_transport_server *srv;
    lurk_transport_opts opts;
    LURK_SHARE *share;
    size_t max;       /* max_response */
    CURL *curl;       /* NULL after a drop: the next post makes a new one */
    curl_socket_t fd; /* the connection's socket, to poll */
    int live;         /* connected, and the last exchange ended cleanly */
    long timeout_ms;  /* the current post's, for messages */
    char *req;        /* request line and fields; per post, length and body */
    size_t head_len;  /* the fixed part, up to "Content-Length: " */
    size_t req_cap;   /* bytes allocated at req */
    lurk_http_reply h; /* the reply being read */
    size_t answered;  /* replies read since the connection was made */
    char *buf;        /* raw replies, each decoded in place */
    size_t seen;      /* bytes of buf that held reply bytes since the last wipe */
    size_t cap;       /* bytes allocated at buf */
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t lurk_transport_once = PTHREAD_ONCE_INIT;
static CURLcode lurk_transport_init_rc = CURLE_FAILED_INIT;

static void lurk_transport_do_init(void)
{
    lurk_transport_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

lurk_err lurk_transport_init(char *detail, size_t detaillen)
{
    pthread_once(&lurk_transport_once, lurk_transport_do_init);
    if (lurk_transport_init_rc != CURLE_OK) {
        if (detail != NULL && detaillen > 0) {
            snprintf(detail, detaillen, "curl_global_init: %s",
                     curl_easy_strerror(lurk_transport_init_rc));
        }
        return LURK_ERR_INTERNAL;
    }
    return LURK_OK;
}

/* ------------------------------------------------------------------------ */
/* Server list entries                                                        */

static lurk_err lurk_parse_https(const char *entry, lurk_transport_server *out,
                                 char *detail, size_t detaillen)
{
    lurk_err err = LURK_ERR_CONFIG;
    CURLU *u = NULL;
    char *scheme = NULL;
    char *host = NULL;
    char *path = NULL;
    char *part = NULL;
    char *url = NULL;

    u = curl_url();
    if (u == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    if (curl_url_set(u, CURLUPART_URL, entry, 0) != CURLUE_OK) {
        lurk_why(detail, detaillen, "server \"%s\": not a valid URL", entry);
        goto end;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || strcasecmp(scheme, "https") != 0) {
        lurk_why(detail, detaillen, "server \"%s\": only https:// and unix: are allowed",
                        entry);
        goto end;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        lurk_why(detail, detaillen, "server \"%s\": no host", entry);
        goto end;
    }
    if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK
        || curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK
        || curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
        lurk_why(detail, detaillen,
                        "server \"%s\": user, query and fragment are not allowed", entry);
        goto end;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK || strcmp(path, "/") == 0
        || path[0] == '\0') {
        if (curl_url_set(u, CURLUPART_PATH, LURK_PROTO_PATH, 0) != CURLUE_OK) {
            lurk_why(detail, detaillen, "server \"%s\": cannot set the path", entry);
            goto end;
        }
    }
    if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        lurk_why(detail, detaillen, "server \"%s\": not a valid URL", entry);
        goto end;
    }
    if (strlen(url) >= sizeof(out->url)) {
        lurk_why(detail, detaillen, "server \"%s\": URL too long", entry);
        goto end;
    }
    strcpy(out->url, url);
    out->unix_path[0] = '\0';
    err = LURK_OK;

end:
    curl_free(part);
    curl_free(url);
    curl_free(path);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return err;
}

lurk_err lurk_transport_parse_server(const char *entry, lurk_transport_server *out,
                                     char *detail, size_t detaillen)
{
    size_t n;

    if (entry == NULL || out == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    n = strlen(entry);
    if (n >= sizeof(out->name)) {
        lurk_why(detail, detaillen, "server \"%.64s...\": too long", entry);
        return LURK_ERR_CONFIG;
    }
    memcpy(out->name, entry, n + 1);

    if (strncasecmp(entry, "unix:", 5) == 0) {
        const char *path = entry + 5;

        if (path[0] != '/' && path[0] != '@') {
            lurk_why(detail, detaillen,
                            "server \"%s\": unix: needs an absolute path (or @name)", entry);
            return LURK_ERR_CONFIG;
        }
        if (path[1] == '\0') {
            lurk_why(detail, detaillen, "server \"%s\": empty socket path", entry);
            return LURK_ERR_CONFIG;
        }
        strcpy(out->unix_path, path);
        snprintf(out->url, sizeof(out->url), "http://localhost%s", LURK_PROTO_PATH);
        return LURK_OK;
    }
    if (strncasecmp(entry, "https://", 8) == 0) {
        return lurk_parse_https(entry, out, detail, detaillen);
    }
    lurk_why(detail, detaillen, "server \"%s\": only https:// and unix: are allowed",
                    entry);
    return LURK_ERR_CONFIG;
}

/* ------------------------------------------------------------------------ */
/* Shared TLS sessions and DNS cache                                          */

static void lurk_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
    LURK_SHARE *sh = arg;

    (void)h;
    (void)access;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) {
        pthread_mutex_lock(&sh->locks[data]);
    }
}

static void lurk_share_unlock(CURL *h, curl_lock_data data, void *arg)
{
    LURK_SHARE *sh = arg;

    (void)h;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) {
        pthread_mutex_unlock(&sh->locks[data]);
    }
}

lurk_err lurk_share_new(LURK_SHARE **out)
{
    LURK_SHARE *sh = NULL;
    lurk_err err = LURK_ERR_NOMEM;

    *out = NULL;
    sh = calloc(1, sizeof(*sh));
    if (sh == NULL) {
        goto end;
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_init(&sh->locks[i], NULL);
    }
    sh->sh = curl_share_init();
    if (sh->sh == NULL) {
        goto end;
    }
    if (curl_share_setopt(sh->sh, CURLSHOPT_LOCKFUNC, lurk_share_lock) != CURLSHE_OK
        || curl_share_setopt(sh->sh, CURLSHOPT_UNLOCKFUNC, lurk_share_unlock) != CURLSHE_OK
        || curl_share_setopt(sh->sh, CURLSHOPT_USERDATA, sh) != CURLSHE_OK
        || curl_share_setopt(sh->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK
        || curl_share_setopt(sh->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    *out = sh;
    sh = NULL;
    err = LURK_OK;

end:
    lurk_share_free(sh);
    return err;
}

void lurk_share_free(LURK_SHARE *sh)
{
    if (sh == NULL) {
        return;
    }
    if (sh->sh != NULL && curl_share_cleanup(sh->sh) != CURLSHE_OK) {
        return; /* still in use: leaking beats a use after free */
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_destroy(&sh->locks[i]);
    }
    free(sh);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                                */

static int lurk_setopt_blob(CURL *curl, CURLoption opt, const lurk_transport_blob *b)
{
    struct curl_blob blob;

    blob.data = b->data;
    blob.len = b->len;
    blob.flags = CURL_BLOB_NOCOPY; /* the client keeps the blobs alive */
    return curl_easy_setopt(curl, opt, &blob) == CURLE_OK;
}

/* Read-ahead: a reply (TLS record header and body) in one read(2), not
 * two; the reply reader reads until every awaited reply is in or curl says
 * EAGAIN, so nothing it waits for stays in OpenSSL's buffer unseen. */
static CURLcode lurk_ssl_ctx_setup(CURL *curl, void *ssl_ctx, void *arg)
{
    (void)curl;
    (void)arg;
    SSL_CTX_set_read_ahead((SSL_CTX *)ssl_ctx, 1);
    return CURLE_OK;
}

/* Makes conn->curl: a handle that connects (perform) and then stops, bound
 * to the server, the credentials and the share.  CURLE_NOT_BUILT_IN when
 * this libcurl refuses an option. */
static CURLcode lurk_conn_handle(LURK_CONN *conn)
{
    const lurk_transport_server *srv = conn->srv;
    const lurk_transport_opts *opts = &conn->opts;
    CURL *curl;
    int ok = 1;

    curl = curl_easy_init();
    if (curl == NULL) {
        return CURLE_OUT_OF_MEMORY;
    }
    conn->curl = curl;
    ok &= curl_easy_setopt(curl, CURLOPT_URL, srv->url) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, conn->errbuf) == CURLE_OK;
    /* ALPN offers http/1.1 only: the requests written here are HTTP/1.1. */
    ok &= curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                           opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 1000L)
          == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 30L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 10L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_NOPROXY, "*") == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_PROXY, "") == CURLE_OK;
    if (conn->share != NULL) {
        ok &= curl_easy_setopt(curl, CURLOPT_SHARE, conn->share->sh) == CURLE_OK;
    }
    if (srv->unix_path[0] != '\0') {
        const char *path = srv->unix_path;
        CURLoption opt = CURLOPT_UNIX_SOCKET_PATH;

        if (path[0] == '@') {
            path++;
            opt = CURLOPT_ABSTRACT_UNIX_SOCKET;
        }
        ok &= curl_easy_setopt(curl, opt, path) == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK;
    } else {
        ok &= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK;
        ok &=
            curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2) == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 1L) == CURLE_OK;
        /* A TLS library without it only costs a read per reply. */
        (void) curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, lurk_ssl_ctx_setup);
        /* Only the configured CA: no system store. */
        ok &= curl_easy_setopt(curl, CURLOPT_CAINFO, NULL) == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_CAPATH, NULL) == CURLE_OK;
        ok &= lurk_setopt_blob(curl, CURLOPT_CAINFO_BLOB, opts->ca);
        if (opts->cert != NULL && opts->cert->len > 0) {
            ok &= curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM") == CURLE_OK;
            ok &= lurk_setopt_blob(curl, CURLOPT_SSLCERT_BLOB, opts->cert);
        }
        if (opts->key != NULL && opts->key->len > 0) {
            ok &= curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM") == CURLE_OK;
            ok &= lurk_setopt_blob(curl, CURLOPT_SSLKEY_BLOB, opts->key);
        }
    }
    return ok ? CURLE_OK : CURLE_NOT_BUILT_IN;
}

/* The fixed start of every request: request line, Host, media types and the
 * name of the one field that varies. */
static lurk_err lurk_conn_head(LURK_CONN *conn)
{
    lurk_err err = LURK_ERR_NOMEM;
    CURLU *u = NULL;
    char *host = NULL;
    char *port = NULL;
    char *path = NULL;
    int n;

    u = curl_url();
    if (u == NULL || curl_url_set(u, CURLUPART_URL, conn->srv->url, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        goto end;
    }
    (void) curl_url_get(u, CURLUPART_PORT, &port, 0); /* only when the URL has one */
    conn->req_cap = strlen(host) + strlen(path) + (port != NULL ? strlen(port) : 0) + 256;
    conn->req = malloc(conn->req_cap);
    if (conn->req == NULL) {
        goto end;
    }
    n = snprintf(conn->req, conn->req_cap,
                 "POST %s HTTP/1.1\r\n"
                 "Host: %s%s%s\r\n"
                 "Content-Type: " LURK_PROTO_MEDIA_TYPE "\r\n"
                 "Accept: " LURK_PROTO_MEDIA_TYPE "\r\n"
                 "Content-Length: ",
                 path, host, port != NULL ? ":" : "", port != NULL ? port : "");
    if (n < 0 || (size_t) n >= conn->req_cap) {
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    conn->head_len = (size_t) n;
    err = LURK_OK;

end:
    curl_free(path);
    curl_free(port);
    curl_free(host);
    curl_url_cleanup(u);
    return err;
}

lurk_err lurk_conn_new(const lurk_transport_server *srv, const lurk_transport_opts *opts,
                       LURK_SHARE *share, LURK_CONN **out, char *detail, size_t detaillen)
{
    lurk_err err = LURK_ERR_NOMEM;
    LURK_CONN *conn = NULL;
    CURLcode rc;

    *out = NULL;
    err = lurk_transport_init(detail, detaillen);
    if (err != LURK_OK) {
        goto end;
    }
    if (srv->unix_path[0] == '\0' && (opts->ca == NULL || opts->ca->len == 0)) {
        lurk_why(detail, detaillen, "server %s: no CA configured", srv->name);
        err = LURK_ERR_CONFIG;
        goto end;
    }
    err = LURK_ERR_NOMEM;
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        goto end;
    }
    conn->srv = srv;
    conn->opts = *opts;
    conn->share = share;
    conn->fd = CURL_SOCKET_BAD;
    conn->max = opts->max_response > 0 ? opts->max_response : LURK_MAX_MESSAGE;
    conn->cap = LURK_CONN_INITIAL_BUF;
    conn->buf = malloc(conn->cap);
    if (conn->buf == NULL) {
        goto end;
    }
    conn->buf[0] = '\0';
    err = lurk_conn_head(conn);
    if (err != LURK_OK) {
        goto end;
    }
    rc = lurk_conn_handle(conn);
    if (rc != CURLE_OK) {
        err = LURK_ERR_NOMEM;
        if (rc != CURLE_OUT_OF_MEMORY) {
            lurk_why(detail, detaillen, "server %s: libcurl lacks a required option", srv->name);
            err = LURK_ERR_UNSUPPORTED;
        }
        goto end;
    }
    *out = conn;
    conn = NULL;
    err = LURK_OK;

end:
    lurk_conn_free(conn);
    return err;
}

/* Closes the connection (if any); the next post makes a new one. */
static void lurk_conn_drop(LURK_CONN *conn)
{
    if (conn->curl != NULL) {
        curl_easy_cleanup(conn->curl);
        conn->curl = NULL;
    }
    conn->fd = CURL_SOCKET_BAD;
    conn->live = 0;
    conn->answered = 0;
    memset(&conn->h, 0, sizeof(conn->h));
    if (conn->buf != NULL) {
        OPENSSL_cleanse(conn->buf, conn->seen); /* replies may have carried secrets */
    }
    conn->seen = 0;
}

void lurk_conn_free(LURK_CONN *conn)
{
    if (conn == NULL) {
        return;
    }
    lurk_conn_drop(conn);
    free(conn->req);
    if (conn->buf != NULL) {
        OPENSSL_cleanse(conn->buf, conn->cap);
    }
    free(conn->buf);
    free(conn);
}

/* The one place where curl's vocabulary becomes lurk's.  The reply reader
 * speaks it too: it reports a lost connection, a timeout or a bad reply with
 * the curl code that means it and its own text in conn->errbuf. */
static lurk_err lurk_transport_map(const LURK_CONN *conn, CURLcode rc, int fresh,
                                   char *detail, size_t detaillen)
{
    const char *text = conn->errbuf[0] != '\0' ? conn->errbuf : curl_easy_strerror(rc);
    lurk_err err;

    switch (rc) {
    case CURLE_OK:
        return LURK_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        err = LURK_ERR_UNREACHABLE;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        err = LURK_ERR_TIMEOUT;
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        err = LURK_ERR_TLS;
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        /* With TLS 1.3 the server judges the client certificate after the
         * client considers the handshake done: a refusal shows up as an
         * alert or a closed socket on the first send or read of a new
         * connection.  On a reused connection it is a lost connection. */
        if (strstr(text, "alert") != NULL) {
            err = LURK_ERR_TLS;
        } else if (fresh && conn->srv->unix_path[0] == '\0') {
            lurk_why(detail, detaillen,
                     "%s: connection closed right after the TLS handshake "
                     "(client certificate refused?): %s",
                     conn->srv->name, text);
            return LURK_ERR_TLS;
        } else {
            err = LURK_ERR_UNREACHABLE; /* another server may answer */
        }
        break;
    case CURLE_PARTIAL_FILE:
        err = LURK_ERR_UNREACHABLE; /* connection lost: another server may answer */
        break;
    case CURLE_FILESIZE_EXCEEDED:
        lurk_why(detail, detaillen, "%s: reply exceeds %zu bytes", conn->srv->name, conn->max);
        return LURK_ERR_PROTOCOL;
    case CURLE_OUT_OF_MEMORY:
        err = LURK_ERR_NOMEM;
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        err = LURK_ERR_CONFIG;
        break;
    default:
        err = LURK_ERR_PROTOCOL;
        break;
    }
    lurk_why(detail, detaillen, "%s: %s", conn->srv->name, text);
    return err;
}

/* ------------------------------------------------------------------------ */
/* One exchange on the connection                                             */

long lurk_transport_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the socket is ready for `events` or the deadline passes.
 * Readiness only says "try again": TLS may consume what arrived. */
static CURLcode lurk_conn_wait(LURK_CONN *conn, short events, long deadline)
{
    struct pollfd pfd;
    long left;
    int n;

    for (;;) {
        left = deadline - lurk_transport_now_ms();
        if (left <= 0) {
            snprintf(conn->errbuf, sizeof(conn->errbuf), "%s within %ld ms",
                     events == POLLIN ? "no reply" : "request not sent", conn->timeout_ms);
            return CURLE_OPERATION_TIMEDOUT;
        }
        pfd.fd = conn->fd;
        pfd.events = events;
        pfd.revents = 0;
        n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int) left);
        if (n > 0) {
            return CURLE_OK; /* ready, or an error or hang-up the next call reports */
        }
        if (n < 0 && errno != EINTR) {
            snprintf(conn->errbuf, sizeof(conn->errbuf), "poll: errno %d", errno);
            return CURLE_RECV_ERROR;
        }
    }
}

/* Connects (TCP or unix socket, TLS with both certificates checked) within
 * the time left. */
static CURLcode lurk_conn_connect(LURK_CONN *conn, long deadline)
{
    long left = deadline - lurk_transport_now_ms();
    curl_socket_t fd = CURL_SOCKET_BAD;
    CURLcode rc = CURLE_OK;

    if (left <= 0) {
        snprintf(conn->errbuf, sizeof(conn->errbuf), "no time left to reconnect within %ld ms",
                 conn->timeout_ms);
        return CURLE_OPERATION_TIMEDOUT;
    }
    if (conn->curl == NULL) {
        rc = lurk_conn_handle(conn); /* a performed handle is never performed again */
    }
    conn->errbuf[0] = '\0';
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(conn->curl, CURLOPT_TIMEOUT_MS, left);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_perform(conn->curl);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_getinfo(conn->curl, CURLINFO_ACTIVESOCKET, &fd);
    }
    if (rc == CURLE_OK && fd == CURL_SOCKET_BAD) {
        rc = CURLE_COULDNT_CONNECT;
    }
    if (rc == CURLE_OK) {
        conn->fd = fd;
        conn->live = 1;
    }
    return rc;
}

/* Writes the request (conn->req, `len` bytes) in one curl_easy_send: one TLS
 * record, one write, unless the socket buffer is full. */
static CURLcode lurk_conn_write(LURK_CONN *conn, size_t len, long deadline)
{
    size_t off = 0;

    while (off < len) {
        size_t n = 0;
        CURLcode rc = curl_easy_send(conn->curl, conn->req + off, len - off, &n);

        off += n;
        if (rc == CURLE_AGAIN) {
            rc = lurk_conn_wait(conn, POLLOUT, deadline);
        }
        if (rc != CURLE_OK) {
            return rc;
        }
    }
    return CURLE_OK;
}

/* Room to read into: moves the unparsed bytes down to the body, then grows
 * the buffer, wiping the old one.  Bounded by the body limit plus one head. */
static CURLcode lurk_conn_room(LURK_CONN *conn, lurk_http_reply *h)
{
    size_t limit = conn->max + LURK_HTTP_HEAD_MAX + 1;
    size_t cap;
    char *nb;

    if (h->pos > h->body) {
        memmove(conn->buf + h->body, conn->buf + h->pos, h->len - h->pos);
        h->len -= h->pos - h->body;
        h->pos = h->body;
    }
    if (h->len + 1 < conn->cap) {
        return CURLE_OK;
    }
    cap = conn->cap * 2 < limit ? conn->cap * 2 : limit;
    if (cap <= h->len + 1) {
        return CURLE_FILESIZE_EXCEEDED;
    }
    nb = malloc(cap);
    if (nb == NULL) {
        snprintf(conn->errbuf, sizeof(conn->errbuf), "no memory for the reply");
        return CURLE_OUT_OF_MEMORY;
    }
    memcpy(nb, conn->buf, h->len);
    OPENSSL_cleanse(conn->buf, conn->seen);
    free(conn->buf);
    conn->buf = nb;
    conn->cap = cap;
    conn->seen = h->len;
    return CURLE_OK;
}

lurk_err lurk_conn_send(LURK_CONN *conn, const char *body, size_t len, long deadline,
                        long timeout_ms, int *reused, char *detail, size_t detaillen)
{
    size_t need, n;
    CURLcode rc = CURLE_OK;
    lurk_err err;
    int fresh;

    conn->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    need = conn->head_len + 24 + len; /* Content-Length digits, CRLF CRLF */
    if (need > conn->req_cap) {
        char *nr = realloc(conn->req, need);

        if (nr == NULL) {
            lurk_why(detail, detaillen, "%s: no memory for the request", conn->srv->name);
            return LURK_ERR_NOMEM;
        }
        conn->req = nr;
        conn->req_cap = need;
    }
    n = conn->head_len;
    n += (size_t) snprintf(conn->req + n, conn->req_cap - n, "%zu\r\n\r\n", len);
    memcpy(conn->req + n, body, len);
    n += len;

    fresh = !conn->live;
    *reused = !fresh;
    if (fresh) {
        rc = lurk_conn_connect(conn, deadline);
    }
    if (rc == CURLE_OK) {
        rc = lurk_conn_write(conn, n, deadline);
    }
    if (rc != CURLE_OK) {
        err = lurk_transport_map(conn, rc, fresh, detail, detaillen);
        lurk_conn_drop(conn);
        return err;
    }
    return LURK_OK;
}

int lurk_conn_fd(const LURK_CONN *conn)
{
    return conn->live ? (int) conn->fd : -1;
}

int lurk_conn_partial(const LURK_CONN *conn)
{
    return conn->h.len > 0 || conn->h.state != LURK_HTTP_HEAD;
}

/* One reply is complete: hands it over (unless it is one too many), then
 * moves the bytes after it to the start of the buffer and wipes the rest.
 * 0, or a CURLcode with the reason in conn->errbuf. */
static CURLcode lurk_conn_deliver(LURK_CONN *conn, size_t *expected, lurk_conn_reply_fn *cb,
                                  void *arg)
{
    lurk_http_reply *h = &conn->h;
    lurk_transport_reply reply;
    size_t rest = h->len - h->pos;

    if (*expected == 1 && rest > 0) {
        snprintf(conn->errbuf, sizeof(conn->errbuf),
                 "malformed HTTP reply: %zu bytes after the reply", rest);
        return CURLE_WEIRD_SERVER_REPLY;
    }
    reply.http_status = h->status;
    reply.body = conn->buf;
    reply.body_len = h->body;
    conn->answered++;
    (*expected)--;
    cb(arg, &reply);
    memmove(conn->buf, conn->buf + h->pos, rest);
    if (conn->seen > rest) {
        OPENSSL_cleanse(conn->buf + rest, conn->seen - rest);
    }
    conn->seen = rest;
    memset(h, 0, sizeof(*h));
    h->len = rest;
    return CURLE_OK;
}

lurk_err lurk_conn_recv(LURK_CONN *conn, size_t expected, lurk_conn_reply_fn *cb, void *arg,
                        int *lost, char *detail, size_t detaillen)
{
    lurk_http_reply *h = &conn->h;
    CURLcode rc = CURLE_OK;
    lurk_err err;
    int close = 0;

    *lost = 0;
    if (!conn->live) {
        return LURK_OK;
    }
    conn->errbuf[0] = '\0';
    while (rc == CURLE_OK && expected > 0 && !close) {
        size_t n = 0;
        int parsed;

        /* Bytes of the next reply may already be in the buffer. */
        parsed = h->len > h->pos ? lurk_http_reply_parse(h, conn->buf, conn->max, conn->errbuf,
                                                         sizeof(conn->errbuf))
                                 : 0;
        if (parsed == 1) {
            close = h->close;
            rc = lurk_conn_deliver(conn, &expected, cb, arg);
            continue;
        }
        if (parsed == -2) {
            rc = CURLE_FILESIZE_EXCEEDED;
            break;
        }
        if (parsed < 0) {
            rc = CURLE_WEIRD_SERVER_REPLY;
            break;
        }
        rc = lurk_conn_room(conn, h);
        if (rc != CURLE_OK) {
            break;
        }
        /* Read whenever curl may have something: TLS can hold decrypted
         * bytes the socket no longer shows. */
        rc = curl_easy_recv(conn->curl, conn->buf + h->len, conn->cap - 1 - h->len, &n);
        if (rc == CURLE_AGAIN) {
            return LURK_OK; /* wait for the socket */
        }
        if (rc != CURLE_OK) {
            break;
        }
        if (n == 0) {
            snprintf(conn->errbuf, sizeof(conn->errbuf), "connection closed %s",
                     lurk_conn_partial(conn) ? "in the middle of the reply" : "without a reply");
            rc = lurk_conn_partial(conn) ? CURLE_PARTIAL_FILE : CURLE_GOT_NOTHING;
            break;
        }
        h->len += n;
        if (h->len > conn->seen) {
            conn->seen = h->len;
        }
    }
    if (rc == CURLE_OK) {
        if (close) {
            lurk_conn_drop(conn); /* the server said so (Connection: close, HTTP/1.0) */
        }
        return LURK_OK;
    }
    *lost = rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING;
    err = lurk_transport_map(conn, rc, conn->answered == 0, detail, detaillen);
    lurk_conn_drop(conn);
    return err;
}

void lurk_conn_close(LURK_CONN *conn)
{
    lurk_conn_drop(conn);
}
