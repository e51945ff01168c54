/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.c - HTTPS (mutual TLS) and HTTP-over-unix-socket POSTs to a key
 * server; the only file that knows libcurl.
 *
 * One LURK_CONN = one curl easy handle = at most one persistent connection
 * to one server (keep-alive, TCP_NODELAY).  Every option is set once when
 * the handle is made; a post only sets the body and the time budget, so the
 * hot path is one curl_easy_perform on a warm connection.  Connections of a
 * client share TLS sessions and the DNS cache through a CURLSH, so a new
 * connection resumes instead of doing a full handshake.
 *
 * Verification is never optional: peer and host name are checked against
 * the configured CA only (no system store), TLS 1.2 is the minimum, the
 * protocol is restricted to https (http only over a unix socket), redirects
 * are off and the reply is capped at max_response bytes.
 *
 * libcurl's TLS runs on OpenSSL's default library context.  Inside nginx or
 * haproxy that context also holds the lurk provider, so nothing here may
 * change global OpenSSL state (properties, providers, engines).
 */
#include "lurk_transport.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "lurk_proto.h"

#define LURK_CONN_INITIAL_BUF 4096

struct lurk_share_st {
    CURLSH *sh;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

struct lurk_conn_st {
    CURL *curl;
    struct curl_slist *headers;
    const lurk_transport_server *srv;
    char *buf;           /* reply body, NUL-terminated; kept between posts */
    size_t len;
    size_t cap;
    size_t max;          /* max_response */
    int overflow;        /* the write callback refused bytes */
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

static size_t lurk_conn_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    LURK_CONN *conn = arg;
    size_t n = size * nmemb;

    if (n > conn->max - conn->len) {
        conn->overflow = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (conn->len + n + 1 > conn->cap) {
        size_t cap = conn->cap;
        char *nb;

        while (cap < conn->len + n + 1) {
            cap *= 2;
        }
        if (cap > conn->max + 1) {
            cap = conn->max + 1;
        }
        nb = realloc(conn->buf, cap);
        if (nb == NULL) {
            return 0;
        }
        conn->buf = nb;
        conn->cap = cap;
    }
    memcpy(conn->buf + conn->len, ptr, n);
    conn->len += n;
    conn->buf[conn->len] = '\0';
    return n;
}

static int lurk_setopt_blob(CURL *curl, CURLoption opt, const lurk_transport_blob *b)
{
    struct curl_blob blob;

    blob.data = b->data;
    blob.len = b->len;
    blob.flags = CURL_BLOB_NOCOPY; /* the client keeps the blobs alive */
    return curl_easy_setopt(curl, opt, &blob) == CURLE_OK;
}

lurk_err lurk_conn_new(const lurk_transport_server *srv, const lurk_transport_opts *opts,
                       LURK_SHARE *share, LURK_CONN **out, char *detail, size_t detaillen)
{
    lurk_err err = LURK_ERR_NOMEM;
    LURK_CONN *conn = NULL;
    CURL *curl;
    int unix_socket = srv->unix_path[0] != '\0';
    int ok = 1;

    *out = NULL;
    err = lurk_transport_init(detail, detaillen);
    if (err != LURK_OK) {
        goto end;
    }
    err = LURK_ERR_NOMEM;
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        goto end;
    }
    conn->srv = srv;
    conn->max = opts->max_response > 0 ? opts->max_response : LURK_MAX_MESSAGE;
    conn->cap = LURK_CONN_INITIAL_BUF < conn->max + 1 ? LURK_CONN_INITIAL_BUF : conn->max + 1;
    conn->buf = malloc(conn->cap);
    conn->curl = curl_easy_init();
    if (conn->buf == NULL || conn->curl == NULL) {
        goto end;
    }
    conn->buf[0] = '\0';
    conn->headers = curl_slist_append(NULL, "Content-Type: " LURK_PROTO_MEDIA_TYPE);
    if (conn->headers == NULL) {
        goto end;
    }
    {
        struct curl_slist *h = curl_slist_append(conn->headers, "Accept: " LURK_PROTO_MEDIA_TYPE);

        if (h == NULL) {
            goto end;
        }
        h = curl_slist_append(conn->headers, "Expect:"); /* no 100-continue round trip */
        if (h == NULL) {
            goto end;
        }
    }

    curl = conn->curl;
    ok &= curl_easy_setopt(curl, CURLOPT_URL, srv->url) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, conn->errbuf) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_HTTPHEADER, conn->headers) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_POST, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, lurk_conn_write) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_WRITEDATA, conn) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)conn->max) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_MAXCONNECTS, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                           opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 1000L)
          == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 30L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 10L) == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_NOPROXY, "*") == CURLE_OK;
    ok &= curl_easy_setopt(curl, CURLOPT_PROXY, "") == CURLE_OK;
    if (share != NULL) {
        ok &= curl_easy_setopt(curl, CURLOPT_SHARE, share->sh) == CURLE_OK;
    }
    if (unix_socket) {
        const char *path = srv->unix_path;
        CURLoption opt = CURLOPT_UNIX_SOCKET_PATH;

        if (path[0] == '@') {
            path++;
            opt = CURLOPT_ABSTRACT_UNIX_SOCKET;
        }
        ok &= curl_easy_setopt(curl, opt, path) == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http") == CURLE_OK;
    } else {
        if (opts->ca == NULL || opts->ca->len == 0) {
            lurk_why(detail, detaillen, "server %s: no CA configured", srv->name);
            err = LURK_ERR_CONFIG;
            goto end;
        }
        ok &= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https") == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2)
              == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
        ok &= curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 1L) == CURLE_OK;
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
    if (!ok) {
        lurk_why(detail, detaillen, "server %s: libcurl lacks a required option",
                        srv->name);
        err = LURK_ERR_UNSUPPORTED;
        goto end;
    }
    *out = conn;
    conn = NULL;
    err = LURK_OK;

end:
    lurk_conn_free(conn);
    return err;
}

void lurk_conn_free(LURK_CONN *conn)
{
    if (conn == NULL) {
        return;
    }
    if (conn->curl != NULL) {
        curl_easy_cleanup(conn->curl);
    }
    curl_slist_free_all(conn->headers);
    if (conn->buf != NULL) {
        OPENSSL_cleanse(conn->buf, conn->cap);
    }
    free(conn->buf);
    free(conn);
}

void lurk_conn_cleanse(LURK_CONN *conn)
{
    if (conn != NULL && conn->buf != NULL) {
        OPENSSL_cleanse(conn->buf, conn->len);
        conn->len = 0;
    }
}

/* The one place where curl's vocabulary becomes lurk's. */
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
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (conn->overflow || rc == CURLE_FILESIZE_EXCEEDED) {
            lurk_why(detail, detaillen, "%s: reply exceeds %zu bytes", conn->srv->name,
                            conn->max);
            return LURK_ERR_PROTOCOL;
        }
        err = LURK_ERR_NOMEM;
        break;
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

lurk_err lurk_conn_post(LURK_CONN *conn, const char *body, size_t len, long timeout_ms,
                        lurk_transport_reply *reply, char *detail, size_t detaillen)
{
    CURL *curl = conn->curl;
    CURLcode rc;
    long status = 0;

    memset(reply, 0, sizeof(*reply));
    conn->len = 0;
    conn->overflow = 0;
    conn->errbuf[0] = '\0';
    conn->buf[0] = '\0';
    if (timeout_ms <= 0) {
        timeout_ms = 1;
    }
    rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_perform(curl);
    }
    /* Never keep a pointer to the caller's body beyond this call. */
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
    if (rc != CURLE_OK) {
        long connects = 0;

        curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
        return lurk_transport_map(conn, rc, connects > 0, detail, detaillen);
    }
    if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status == 0) {
        lurk_why(detail, detaillen, "%s: no HTTP status", conn->srv->name);
        return LURK_ERR_PROTOCOL;
    }
    reply->http_status = status;
    reply->body = conn->buf;
    reply->body_len = conn->len;
    return LURK_OK;
}
