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
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static const char session_ctx_id[] = "lurk-keyserver";

/* client_crl: every CRL in the PEM file goes into the context's store, and
 * a client certificate is then checked against its issuer's CRL
 * (X509_V_FLAG_CRL_CHECK: the leaf; a CA that issues no CRL for its
 * intermediates is not refused).  A CRL past its nextUpdate refuses every
 * client it covers (OpenSSL: "CRL has expired"): said here at load. */
static int lurk_srv_tls_load_crl(SSL_CTX *ctx, const lurk_srv_conf *conf, char *why,
                                 size_t whylen)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    BIO *bio = BIO_new_file(conf->client_crl, "r");
    X509_CRL *crl;
    char reason[256];
    int n = 0;

    if (bio == NULL) {
        lurk_why(why, whylen, "%s, [keyserver] client_crl %s: %s", conf->path, conf->client_crl,
                 lurk_srv_ossl_reason(reason, sizeof(reason)));
        return 0;
    }
    while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);

        if (next != NULL && X509_cmp_current_time(next) < 0) {
            lurk_srv_log(LURK_LOG_WARN, "%s: client_crl %s: a CRL of %s expired: every client "
                         "certificate it covers is refused until it is renewed", conf->path,
                         conf->client_crl,
                         X509_NAME_oneline(X509_CRL_get_issuer(crl), reason, sizeof(reason)));
        }
        if (X509_STORE_add_crl(store, crl) != 1) {
            X509_CRL_free(crl);
            lurk_why(why, whylen, "%s, [keyserver] client_crl %s: %s", conf->path,
                     conf->client_crl, lurk_srv_ossl_reason(reason, sizeof(reason)));
            BIO_free(bio);
            return 0;
        }
        X509_CRL_free(crl);
        n++;
    }
    ERR_clear_error();
    BIO_free(bio);
    if (n == 0) {
        lurk_why(why, whylen, "%s, [keyserver] client_crl %s: no CRL in it (PEM expected)",
                 conf->path, conf->client_crl);
        return 0;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return 1;
}

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
    if (conf->client_crl != NULL && !lurk_srv_tls_load_crl(ctx, conf, why, whylen)) {
        goto end;
    }
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

int lurk_srv_tls_still_trusted(SSL_CTX *ctx, SSL *ssl, char *reason, size_t len)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    X509_STORE_CTX *sctx = NULL;
    int ok = 0;

    reason[0] = '\0';
    if (cert == NULL) {
        return 1; /* not a certificate peer (nothing to check again) */
    }
    sctx = X509_STORE_CTX_new();
    if (sctx == NULL
        || X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), cert,
                               SSL_get_peer_cert_chain(ssl)) != 1
        || X509_STORE_CTX_set_default(sctx, "ssl_client") != 1) {
        snprintf(reason, len, "cannot check the certificate again");
        goto end;
    }
    X509_VERIFY_PARAM_set_depth(X509_STORE_CTX_get0_param(sctx), 8);
    ok = X509_verify_cert(sctx) == 1;
    if (!ok) {
        snprintf(reason, len, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
    }
end:
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    return ok;
}
