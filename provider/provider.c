/* SPDX-License-Identifier: Apache-2.0 */
/*
 * provider.c - OSSL_provider_init and the provider context.
 *
 * Init only reads configuration: no network, no threads, no sockets, and it
 * never fails because a key server is down or not configured.  A missing
 * lurk-servers just means keys cannot be used until configured; that is
 * reported at first use (LURK_ERR_CONFIG).  Connections are made lazily by
 * the client library, per process and per thread.
 *
 * Only keys of our own are claimed: the operations offered are KEYMGMT,
 * SIGNATURE, ASYM_CIPHER, KEYEXCH, DECODER and STORE; no digests, ciphers,
 * random or TLS groups, so every generic fetch still ends in `default`.
 */
#include "provider.h"

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/conf.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/provider.h>

/* One LURK_CLIENT per distinct server list. */
typedef struct lurk_prov_server_st {
    char *servers;
    LURK_CLIENT *client;
    struct lurk_prov_server_st *next;
} lurk_prov_server;

struct lurk_prov_ctx_st {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx;

    OSSL_FUNC_core_new_error_fn *core_new_error;
    OSSL_FUNC_core_set_error_debug_fn *core_set_error_debug;
    OSSL_FUNC_core_vset_error_fn *core_vset_error;

    /* Configuration (owned copies; NULL when not set). */
    char *servers;
    char *ca_file;
    char *cert_file;
    char *key_file;
    long connect_timeout_ms;
    long timeout_ms;
    lurk_err config_err;           /* a bad lurk-* setting: no key loads */
    char config_error[600];
    lurk_prov_verify verify;

    pthread_mutex_t lock;          /* guards everything below */
    OSSL_LIB_CTX *pubctx;
    OSSL_PROVIDER *pubctx_default;
    EVP_MD *md[LURK_MD__COUNT];
    lurk_prov_server *clients;
};

/* ---- accessors ----------------------------------------------------------- */

OSSL_LIB_CTX *lurk_prov_libctx(const LURK_PROV_CTX *prov)
{
    return prov->libctx;
}

lurk_prov_verify lurk_prov_verify_mode(const LURK_PROV_CTX *prov)
{
    return prov->verify;
}

/* Loads the default provider into a library context of our own: public-key
 * work must never come back into lurk, and must not depend on what the
 * application's context has activated. */
OSSL_LIB_CTX *lurk_prov_pubctx(LURK_PROV_CTX *prov)
{
    OSSL_LIB_CTX *ctx = NULL;
    OSSL_PROVIDER *dflt = NULL;
    OSSL_LIB_CTX *ret = NULL;

    pthread_mutex_lock(&prov->lock);
    if (prov->pubctx != NULL) {
        ret = prov->pubctx;
        goto end;
    }
    ctx = OSSL_LIB_CTX_new();
    if (ctx == NULL) {
        goto end;
    }
    dflt = OSSL_PROVIDER_load(ctx, "default");
    if (dflt == NULL) {
        goto end;
    }
    for (int i = LURK_MD_SHA256; i < LURK_MD__COUNT; i++) {
        prov->md[i] = EVP_MD_fetch(ctx, lurk_md_ossl_name((lurk_md)i), NULL);
        if (prov->md[i] == NULL) {
            goto end;
        }
    }
    prov->pubctx = ctx;
    prov->pubctx_default = dflt;
    ctx = NULL;
    dflt = NULL;
    ret = prov->pubctx;

end:
    if (ret == NULL) {
        for (int i = 0; i < LURK_MD__COUNT; i++) {
            EVP_MD_free(prov->md[i]);
            prov->md[i] = NULL;
        }
    }
    OSSL_PROVIDER_unload(dflt);
    OSSL_LIB_CTX_free(ctx);
    pthread_mutex_unlock(&prov->lock);
    if (ret == NULL) {
        LURK_PROV_RAISE(prov, LURK_ERR_INTERNAL,
                        "cannot load OpenSSL's default provider for public-key work");
    }
    return ret;
}

const EVP_MD *lurk_prov_evp_md(LURK_PROV_CTX *prov, lurk_md md)
{
    if (md <= LURK_MD_NONE || md >= LURK_MD__COUNT || lurk_prov_pubctx(prov) == NULL) {
        return NULL;
    }
    return prov->md[md];
}

int lurk_prov_config_ok(LURK_PROV_CTX *prov)
{
    if (prov->config_err == LURK_OK) {
        return 1;
    }
    LURK_PROV_RAISE(prov, prov->config_err, "lurk.so is not configured: %s", prov->config_error);
    return 0;
}

lurk_err lurk_prov_client(LURK_PROV_CTX *prov, const char *servers, LURK_CLIENT **out,
                          lurk_detail *d)
{
    lurk_err err = LURK_OK;
    lurk_prov_server *entry = NULL;
    lurk_client_config cfg = { 0 };

    if (servers == NULL) {
        servers = prov->servers;
    }
    if (servers == NULL || servers[0] == '\0') {
        snprintf(d->msg, sizeof(d->msg),
                 "no key server configured: set lurk-servers in the provider's "
                 "openssl.cnf section");
        return LURK_ERR_CONFIG;
    }

    pthread_mutex_lock(&prov->lock);
    for (lurk_prov_server *c = prov->clients; c != NULL; c = c->next) {
        if (strcmp(c->servers, servers) == 0) {
            *out = c->client;
            goto end;
        }
    }
    entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    entry->servers = strdup(servers);
    if (entry->servers == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    cfg.servers = servers;
    cfg.ca_file = prov->ca_file;
    cfg.cert_file = prov->cert_file;
    cfg.key_file = prov->key_file;
    cfg.connect_timeout_ms = prov->connect_timeout_ms;
    cfg.timeout_ms = prov->timeout_ms;
    err = lurk_client_new(&cfg, &entry->client, d);
    if (err != LURK_OK) {
        goto end;
    }
    entry->next = prov->clients;
    prov->clients = entry;
    *out = entry->client;
    entry = NULL;

end:
    pthread_mutex_unlock(&prov->lock);
    if (entry != NULL) {
        free(entry->servers);
        free(entry);
    }
    return err;
}

void lurk_prov_raise(const LURK_PROV_CTX *prov, const char *file, int line, const char *func,
                     lurk_err err, const char *fmt, ...)
{
    va_list ap;

    if (prov == NULL || prov->core_new_error == NULL) {
        return;
    }
    prov->core_new_error(prov->handle);
    prov->core_set_error_debug(prov->handle, file, line, func);
    va_start(ap, fmt);
    prov->core_vset_error(prov->handle, (uint32_t)err, fmt, ap);
    va_end(ap);
}

/* ---- provider dispatch --------------------------------------------------- */

static const OSSL_ALGORITHM lurk_keymgmt_algs[] = {
    { LURK_NAMES_RSA, LURK_PROV_PROPS, lurk_rsa_keymgmt_functions, "lurk RSA key" },
    { LURK_NAMES_EC, LURK_PROV_PROPS, lurk_ec_keymgmt_functions, "lurk EC key" },
    { LURK_NAMES_ED25519, LURK_PROV_PROPS, lurk_ed25519_keymgmt_functions, "lurk Ed25519 key" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM lurk_signature_algs[] = {
    { LURK_NAMES_RSA, LURK_PROV_PROPS, lurk_rsa_signature_functions, "lurk RSA signature" },
    { LURK_NAMES_ECDSA, LURK_PROV_PROPS, lurk_ecdsa_signature_functions, "lurk ECDSA" },
    { LURK_NAMES_ED25519, LURK_PROV_PROPS, lurk_ed25519_signature_functions, "lurk Ed25519" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM lurk_asym_cipher_algs[] = {
    { LURK_NAMES_RSA, LURK_PROV_PROPS, lurk_rsa_asym_cipher_functions, "lurk RSA decryption" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM lurk_keyexch_algs[] = {
    { LURK_NAMES_ECDH, LURK_PROV_PROPS, lurk_ecdh_keyexch_functions, "lurk ECDH" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM lurk_decoder_algs[] = {
    { "DER", LURK_PROV_PROPS ",input=pem", lurk_pem_der_decoder_functions,
      "lurk key reference PEM to DER" },
    { LURK_NAMES_RSA, LURK_PROV_PROPS ",input=der,structure=" LURK_DER_STRUCTURE,
      lurk_der_rsa_decoder_functions, "lurk RSA key reference" },
    { LURK_NAMES_EC, LURK_PROV_PROPS ",input=der,structure=" LURK_DER_STRUCTURE,
      lurk_der_ec_decoder_functions, "lurk EC key reference" },
    { LURK_NAMES_ED25519, LURK_PROV_PROPS ",input=der,structure=" LURK_DER_STRUCTURE,
      lurk_der_ed25519_decoder_functions, "lurk Ed25519 key reference" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM lurk_store_algs[] = {
    { "lurk", LURK_PROV_PROPS, lurk_store_functions, "lurk: key server URIs" },
    { NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM *lurk_prov_query(void *provctx, int operation_id, int *no_cache)
{
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT:
        return lurk_keymgmt_algs;
    case OSSL_OP_SIGNATURE:
        return lurk_signature_algs;
    case OSSL_OP_ASYM_CIPHER:
        return lurk_asym_cipher_algs;
    case OSSL_OP_KEYEXCH:
        return lurk_keyexch_algs;
    case OSSL_OP_DECODER:
        return lurk_decoder_algs;
    case OSSL_OP_STORE:
        return lurk_store_algs;
    default:
        return NULL;
    }
}

/* Reason strings: the reason code of every lurk error is its lurk_err. */
static OSSL_ITEM lurk_prov_reasons[LURK_ERR__COUNT];

static const OSSL_ITEM *lurk_prov_get_reason_strings(void *provctx)
{
    return lurk_prov_reasons;
}

static const OSSL_PARAM lurk_prov_param_types[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_prov_gettable_params(void *provctx)
{
    return lurk_prov_param_types;
}

static int lurk_prov_get_params(void *provctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "lurk: remote keys over LURK")) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, LURK_VERSION)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, LURK_VERSION)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
    if (p != NULL && !OSSL_PARAM_set_int(p, 1)) {
        return 0;
    }
    return 1;
}

static void lurk_prov_ctx_free(LURK_PROV_CTX *prov)
{
    lurk_prov_server *next = NULL;

    if (prov == NULL) {
        return;
    }
    for (lurk_prov_server *c = prov->clients; c != NULL; c = next) {
        next = c->next;
        lurk_client_free(c->client);
        free(c->servers);
        free(c);
    }
    for (int i = 0; i < LURK_MD__COUNT; i++) {
        EVP_MD_free(prov->md[i]);
    }
    OSSL_PROVIDER_unload(prov->pubctx_default);
    OSSL_LIB_CTX_free(prov->pubctx);
    OSSL_LIB_CTX_free(prov->libctx);
    free(prov->servers);
    free(prov->ca_file);
    free(prov->cert_file);
    free(prov->key_file);
    pthread_mutex_destroy(&prov->lock);
    free(prov);
}

static void lurk_prov_teardown(void *provctx)
{
    lurk_prov_ctx_free(provctx);
}

static const OSSL_DISPATCH lurk_prov_dispatch[] = {
    { OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))lurk_prov_teardown },
    { OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))lurk_prov_gettable_params },
    { OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))lurk_prov_get_params },
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))lurk_prov_query },
    { OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))lurk_prov_get_reason_strings },
    { 0, NULL }
};

/* The lurk-* settings lurk.so was given (its openssl.cnf section). */
typedef struct {
    const char *names[8];
    const char *values[8];
} lurk_prov_settings;

static const char *lurk_prov_setting(void *arg, const char *name)
{
    const lurk_prov_settings *s = arg;

    for (size_t i = 0; i < 8 && s->names[i] != NULL; i++) {
        if (strcmp(s->names[i], name) == 0) {
            return s->values[i];
        }
    }
    return NULL;
}

/* The mutual-TLS files must be readable now, by this process (nginx and
 * haproxy load the provider before they drop privileges): an unreadable
 * one is named at start with the user, not at the first handshake. */
static lurk_err lurk_prov_check_files(const lurk_client_cnf *cnf, const char *where,
                                      lurk_detail *d)
{
    const char *const names[] = { "lurk-ca", "lurk-cert", "lurk-key" };
    const char *const files[] = { cnf->ca_file, cnf->cert_file, cnf->key_file };

    for (size_t i = 0; i < 3; i++) {
        if (files[i] != NULL && access(files[i], R_OK) != 0) {
            int e = errno;
            struct passwd *pw = getpwuid(geteuid());

            snprintf(d->msg, sizeof(d->msg), "%.150s: %s %.150s: user %.32s (uid %u) cannot read it: %.64s",
                     where, names[i], files[i], pw != NULL ? pw->pw_name : "?",
                     (unsigned)geteuid(), strerror(e));
            return LURK_ERR_CONFIG;
        }
    }
    return LURK_OK;
}

/*
 * Reads the settings with the client library's reader (the `lurk` tool
 * reads them the same way).  A bad value, or a lurk-* key that is no
 * setting, stops the provider from loading: the error names the key and
 * the file, and nginx and haproxy print it at start.  The core hands over
 * only the names asked for, so the unknown keys are found by reading the
 * configuration file the process loads (OPENSSL_CONF or the default).
 */
static int lurk_prov_read_config(LURK_PROV_CTX *prov, OSSL_FUNC_core_get_params_fn *get_params)
{
    lurk_prov_settings st = {
        { "lurk-servers", "lurk-ca", "lurk-cert", "lurk-key", "lurk-connect-timeout",
          "lurk-timeout", "lurk-verify", NULL },
        { NULL },
    };
    const char *pname = NULL;
    OSSL_PARAM params[10];
    lurk_client_cnf cnf;
    lurk_detail d;
    char *file = NULL;
    char where[600];
    size_t n = 0;
    lurk_err err;

    for (; st.names[n] != NULL; n++) {
        params[n] = OSSL_PARAM_construct_utf8_ptr(st.names[n], (char **)&st.values[n], 0);
    }
    params[n++] = OSSL_PARAM_construct_utf8_ptr(OSSL_PROV_PARAM_CORE_PROV_NAME, (char **)&pname, 0);
    params[n] = OSSL_PARAM_construct_end();
    if (get_params != NULL && !get_params(prov->handle, params)) {
        return 1;   /* no configuration: keys cannot be used until configured */
    }
    memset(&cnf, 0, sizeof(cnf));
    memset(&d, 0, sizeof(d));
    file = CONF_get1_default_config_file();
    snprintf(where, sizeof(where), "the %s provider section of %s", pname != NULL ? pname : "lurk",
             file != NULL ? file : "openssl.cnf");
    err = lurk_client_cnf_check_file(file, pname != NULL ? pname : "lurk", &d);
    if (err == LURK_OK) {
        err = lurk_client_cnf_read(lurk_prov_setting, &st, where, &cnf, &d);
    }
    if (err == LURK_OK) {
        err = lurk_prov_check_files(&cnf, where, &d);
    }
    OPENSSL_free(file);
    if (err != LURK_OK) {
        /* OpenSSL 3.0 drops a provider whose init fails, and the error
         * queue with it, even with config_diagnostics = 1: nobody would
         * see why.  So lurk.so loads, refuses every key with this reason
         * (lurk_prov_config_ok), and says it once on standard error, which
         * nginx -t, haproxy -c, systemd's journal and the openssl CLI show. */
        prov->config_err = err;
        snprintf(prov->config_error, sizeof(prov->config_error), "%s",
                 d.msg[0] != '\0' ? d.msg : lurk_err_str(err));
        LURK_PROV_RAISE(prov, err, "%s", prov->config_error);
        fprintf(stderr, "lurk.so: %s; no lurk key will load\n", prov->config_error);
        lurk_client_cnf_clear(&cnf);
        return 1;
    }
    prov->connect_timeout_ms = cnf.connect_timeout_ms;
    prov->timeout_ms = cnf.timeout_ms;
    prov->verify = cnf.verify == LURK_CNF_VERIFY_ALL    ? LURK_PROV_VERIFY_ALL
                   : cnf.verify == LURK_CNF_VERIFY_NONE ? LURK_PROV_VERIFY_NONE
                                                        : LURK_PROV_VERIFY_RSA;
    prov->servers = cnf.servers;
    prov->ca_file = cnf.ca_file;
    prov->cert_file = cnf.cert_file;
    prov->key_file = cnf.key_file;
    return 1;
}

OPENSSL_EXPORT int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                                      const OSSL_DISPATCH **out, void **provctx);

__attribute__((visibility("default")))
int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    LURK_PROV_CTX *prov = NULL;
    OSSL_FUNC_core_get_params_fn *get_params = NULL;
    int ret = 0;

    prov = calloc(1, sizeof(*prov));
    if (prov == NULL) {
        goto end;
    }
    pthread_mutex_init(&prov->lock, NULL);
    prov->handle = handle;
    for (const OSSL_DISPATCH *f = in; f->function_id != 0; f++) {
        switch (f->function_id) {
        case OSSL_FUNC_CORE_GET_PARAMS:
            get_params = OSSL_FUNC_core_get_params(f);
            break;
        case OSSL_FUNC_CORE_NEW_ERROR:
            prov->core_new_error = OSSL_FUNC_core_new_error(f);
            break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            prov->core_set_error_debug = OSSL_FUNC_core_set_error_debug(f);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR:
            prov->core_vset_error = OSSL_FUNC_core_vset_error(f);
            break;
        default:
            break;
        }
    }
    if (prov->core_new_error == NULL || prov->core_set_error_debug == NULL
        || prov->core_vset_error == NULL) {
        prov->core_new_error = NULL;
    }

    for (int i = 1; i < LURK_ERR__COUNT; i++) {
        lurk_prov_reasons[i - 1].id = (unsigned int)i;
        lurk_prov_reasons[i - 1].ptr = (void *)lurk_err_str((lurk_err)i);
    }

    prov->libctx = OSSL_LIB_CTX_new_from_dispatch(handle, in);
    if (prov->libctx == NULL) {
        goto end;
    }
    if (!lurk_prov_read_config(prov, get_params)) {
        goto end;
    }
    ret = 1;

end:
    if (!ret) {
        lurk_prov_ctx_free(prov);
        return 0;
    }
    *out = lurk_prov_dispatch;
    *provctx = prov;
    return 1;
}
