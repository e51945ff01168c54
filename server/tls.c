/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls.c - the key server's TLS: the server context (mutual TLS, TLS 1.2 at
 * least, resumption), the client identity of a finished handshake, and the
 * reason a handshake failed, in words an operator can act on.
 */
#include "srv_front.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static const char session_ctx_id[] = "lurk-keyserver";

lurk_err lurk_srv_tls_ctx_new(const lurk_srv_conf *conf, OSSL_LIB_CTX *libctx, SSL_CTX **out,
                              char *why, size_t whylen)
{
    SSL_CTX *ctx = NULL;
    STACK_OF(X509_NAME) *cas = NULL;
    char reason[256];
    lurk_err err = LURK_ERR_CONFIG;

    *out = NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
    if (ctx == NULL) {
        lurk_why(why, whylen, "cannot create a TLS context: %s",
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        lurk_why(why, whylen, "cannot require TLS 1.2");
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1) {
        lurk_why(why, whylen, "%s, [keyserver] tls_cert %s: %s", conf->path, conf->tls_cert,
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        goto end;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1) {
        lurk_why(why, whylen, "%s, [keyserver] tls_key %s: %s", conf->path, conf->tls_key,
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        goto end;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        lurk_why(why, whylen, "%s: tls_key %s does not match tls_cert %s", conf->path,
                 conf->tls_key, conf->tls_cert);
        goto end;
    }
    if (SSL_CTX_load_verify_file(ctx, conf->client_ca) != 1) {
        lurk_why(why, whylen, "%s, [keyserver] client_ca %s: %s", conf->path, conf->client_ca,
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        goto end;
    }
    cas = SSL_load_client_CA_file_ex(conf->client_ca, libctx, NULL);
    if (cas == NULL) {
        lurk_why(why, whylen, "%s, [keyserver] client_ca %s: no CA certificate in it",
                 conf->path, conf->client_ca);
        goto end;
    }
    SSL_CTX_set_client_CA_list(ctx, cas);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
    /* Resumption: tickets (TLS 1.3 and 1.2) and the server-side cache; the
     * id context is required once client certificates are verified. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)session_ctx_id,
                                   sizeof(session_ctx_id) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    SSL_CTX_set_timeout(ctx, 3600);
    SSL_CTX_set_num_tickets(ctx, 1);
    *out = ctx;
    ctx = NULL;
    err = LURK_OK;

end:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return err;
}

int lurk_srv_tls_peer(SSL *ssl, char *identity, size_t len)
{
    X509 *crt;
    X509_NAME *subj;
    int i;

    crt = SSL_get0_peer_certificate(ssl);
    if (crt == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
        return 0;
    }
    subj = X509_get_subject_name(crt);
    i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (i >= 0) {
        const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, s);

        if (n > 0 && (size_t)n < len && memchr(utf8, '\0', (size_t)n) == NULL) {
            memcpy(identity, utf8, (size_t)n);
            identity[n] = '\0';
        }
        OPENSSL_free(utf8);
    }
    return 1;
}

void lurk_srv_tls_failure(SSL *ssl, int ssl_err, char *reason, size_t len, const char **fix)
{
    long vr = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_error();

    *fix = "";
    if (vr != X509_V_OK) {
        snprintf(reason, len, "client certificate not accepted: %s",
                 X509_verify_cert_error_string(vr));
        *fix = "(client certificates must chain to the key server's client_ca)";
    } else if (e != 0 && ERR_reason_error_string(e) != NULL) {
        snprintf(reason, len, "%s", ERR_reason_error_string(e));
        if (ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
            *fix = "(lurk clients need a certificate from client_ca)";
        }
    } else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN) {
        snprintf(reason, len, "connection closed during the handshake");
    } else {
        snprintf(reason, len, "TLS error %d", ssl_err);
    }
}
