/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - lurk-keyserver: the command line, process setup and signals.
 *
 * Order matters here: the secure heap exists before any key is read, and
 * OpenSSL is initialised without reading openssl.cnf, because the server
 * must never load the lurk provider (an OPENSSL_CONF meant for clients
 * would otherwise pull it in).  All crypto runs in the server's own library
 * context, which has the default provider only.
 *
 * Signals are delivered through libevent on the main thread's base, so the
 * handlers run as ordinary callbacks: SIGHUP builds a new key store and TLS
 * context and swaps them in (keeping the old ones when anything fails),
 * SIGTERM/SIGINT drain and exit 0.
 */
#include "srv_front.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>

#ifndef LURK_VERSION
#define LURK_VERSION "0.1.0"
#endif

#define SECURE_HEAP_SIZE (1024 * 1024)
#define SECURE_HEAP_MIN 64
#define DRAIN_MS 5000

typedef struct {
    const char *config;
    const char *dev_dir;
    const char *listen;
    const char *port_file;
    int check;
    int list_keys;
} options;

typedef struct {
    const options *opt;
    OSSL_LIB_CTX *libctx;
    lurk_srv_conf *conf;
    LURK_SRV_AUDIT *audit;
    LURK_SRV_HTTP *http;
    struct event_base *base;
    int exit_code;
} server;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " LURK_SRV_PROG " --config FILE [--listen ADDR:PORT] [--port-file FILE]\n"
            "       " LURK_SRV_PROG " --dev DIR [--listen 127.0.0.1:PORT]\n"
            "       " LURK_SRV_PROG " --config FILE --check\n"
            "       " LURK_SRV_PROG " --config FILE --list-keys\n"
            "\n"
            "  -c, --config FILE     key-server config (OpenSSL config syntax)\n"
            "  -d, --dev DIR         make or reuse a development PKI, keys and configs in DIR\n"
            "                        and serve them (default listen " LURK_SRV_DEFAULT_LISTEN ")\n"
            "  -l, --listen ADDR:PORT  listen here instead (port 0: any free port)\n"
            "  -p, --port-file FILE  write the bound port to FILE once accepting\n"
            "      --check           load the config, keys and TLS files, report, exit\n"
            "      --list-keys       print NAME KEYID TYPE BITS POLICY per key, exit\n"
            "  -h, --help            this text\n"
            "  -V, --version         the version\n"
            "\n"
            "SIGHUP reloads the config's keys and TLS files and reopens the audit log;\n"
            "SIGTERM/SIGINT finish requests in flight and exit.\n");
}

static int parse_args(int argc, char **argv, options *opt)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "dev", required_argument, NULL, 'd' },
        { "listen", required_argument, NULL, 'l' },
        { "port-file", required_argument, NULL, 'p' },
        { "check", no_argument, NULL, 'C' },
        { "list-keys", no_argument, NULL, 'K' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    memset(opt, 0, sizeof(*opt));
    for (;;) {
        c = getopt_long(argc, argv, "c:d:l:p:hV", longopts, NULL);
        if (c == -1) {
            break;
        }
        switch (c) {
        case 'c':
            opt->config = optarg;
            break;
        case 'd':
            opt->dev_dir = optarg;
            break;
        case 'l':
            opt->listen = optarg;
            break;
        case 'p':
            opt->port_file = optarg;
            break;
        case 'C':
            opt->check = 1;
            break;
        case 'K':
            opt->list_keys = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf(LURK_SRV_PROG " %s (%s)\n", LURK_VERSION, OpenSSL_version(OPENSSL_VERSION));
            exit(0);
        default:
            usage(stderr);
            return 0;
        }
    }
    if (optind < argc) {
        fprintf(stderr, LURK_SRV_PROG ": unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 0;
    }
    if ((opt->config == NULL) == (opt->dev_dir == NULL)) {
        fprintf(stderr, LURK_SRV_PROG ": give exactly one of --config FILE or --dev DIR\n");
        usage(stderr);
        return 0;
    }
    if (opt->dev_dir != NULL && (opt->check || opt->list_keys)) {
        fprintf(stderr, LURK_SRV_PROG ": --check and --list-keys need --config\n");
        return 0;
    }
    return 1;
}

/* Written to a temporary name and renamed: a reader sees all or nothing. */
static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    char text[16];
    int fd = -1;
    int len;
    int ok = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        goto end;
    }
    len = snprintf(text, sizeof(text), "%d\n", port);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        goto end;
    }
    if (write(fd, text, (size_t)len) != len || close(fd) != 0) {
        fd = -1;
        unlink(tmp);
        goto end;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        goto end;
    }
    ok = 1;

end:
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static int list_keys(const LURK_SRV_KEYSTORE *ks)
{
    size_t n = lurk_srv_keystore_count(ks);

    for (size_t i = 0; i < n; i++) {
        const LURK_SRV_KEY *k = lurk_srv_keystore_get(ks, i);

        printf("%s %s %s %d %s\n", lurk_srv_key_name(k), lurk_srv_key_id_text(k),
               lurk_key_type_name(lurk_srv_key_type(k)), lurk_srv_key_bits(k),
               lurk_policy_name(lurk_srv_key_policy(k)));
    }
    return fflush(stdout) == 0;
}

/* --check: everything a start would load, without binding. */
static int check_config(server *s, LURK_SRV_KEYSTORE *ks)
{
    SSL_CTX *tls = NULL;
    char why[1024];
    int ok = 0;

    if (s->conf->n_listen > 0) {
        if (lurk_srv_tls_ctx_new(s->conf, s->libctx, &tls, why, sizeof(why)) != LURK_OK) {
            lurk_srv_log(LURK_LOG_ERROR, "%s", why);
            goto end;
        }
    }
    printf("%s: OK: %zu key(s), %zu listen address(es)%s%s\n", s->conf->path,
           lurk_srv_keystore_count(ks), s->conf->n_listen,
           s->conf->unix_socket != NULL ? ", unix socket " : "",
           s->conf->unix_socket != NULL ? s->conf->unix_socket : "");
    ok = list_keys(ks);

end:
    SSL_CTX_free(tls);
    return ok;
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    server *s = arg;
    lurk_srv_conf *conf = NULL;
    LURK_SRV_KEYSTORE *ks = NULL;
    SSL_CTX *tls = NULL;
    char why[1024];
    lurk_err err;

    lurk_srv_log(LURK_LOG_INFO, "SIGHUP: reloading %s", s->conf->path);
    if (lurk_srv_audit_reopen(s->audit) != LURK_OK) {
        lurk_srv_log(LURK_LOG_ERROR, "cannot reopen the audit log %s: keeping the old one",
                     s->conf->audit_log);
    }
    err = lurk_srv_conf_load(s->conf->path, &conf, why, sizeof(why));
    if (err == LURK_OK && s->opt->listen != NULL) {
        err = lurk_srv_conf_set_listen(conf, s->opt->listen);
        if (err != LURK_OK) {
            snprintf(why, sizeof(why), "--listen %s: expected ADDR:PORT", s->opt->listen);
        }
    }
    if (err == LURK_OK) {
        err = lurk_srv_conf_keystore(conf, s->libctx, &ks, why, sizeof(why));
    }
    if (err == LURK_OK && conf->n_listen > 0) {
        err = lurk_srv_tls_ctx_new(conf, s->libctx, &tls, why, sizeof(why));
    }
    if (err != LURK_OK) {
        lurk_srv_log(LURK_LOG_ERROR, "reload failed, still serving the previous keys: %s", why);
        goto end;
    }
    if (conf->n_listen != s->conf->n_listen || conf->threads != s->conf->threads
        || (conf->unix_socket == NULL) != (s->conf->unix_socket == NULL)
        || (conf->unix_socket != NULL && strcmp(conf->unix_socket, s->conf->unix_socket) != 0)) {
        lurk_srv_log(LURK_LOG_WARN, "listen, threads and unix_socket changes need a restart");
    } else {
        for (size_t i = 0; i < conf->n_listen; i++) {
            if (strcmp(conf->listen[i], s->conf->listen[i]) != 0) {
                lurk_srv_log(LURK_LOG_WARN, "listen changes need a restart");
                break;
            }
        }
    }
    if (strcmp(conf->audit_log, s->conf->audit_log) != 0) {
        lurk_srv_log(LURK_LOG_WARN, "audit_log changes need a restart");
    }
    lurk_srv_http_reload(s->http, conf, ks, tls);
    tls = NULL;
    lurk_srv_log(LURK_LOG_INFO, "reloaded: %zu key(s)", lurk_srv_keystore_count(ks));
    lurk_srv_conf_free(s->conf);
    s->conf = conf;
    conf = NULL;

end:
    SSL_CTX_free(tls);
    lurk_srv_keystore_free(ks);
    lurk_srv_conf_free(conf);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    server *s = arg;

    lurk_srv_log(LURK_LOG_INFO, "%s: finishing requests in flight",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
    event_base_loopbreak(s->base);
}

static int serve(server *s, LURK_SRV_KEYSTORE *ks)
{
    struct event *ev_hup = NULL;
    struct event *ev_term = NULL;
    struct event *ev_int = NULL;
    char why[1024];
    int ok = 0;

    s->base = event_base_new();
    if (s->base == NULL) {
        lurk_srv_log(LURK_LOG_ERROR, "cannot create the main event loop");
        goto end;
    }
    ev_hup = evsignal_new(s->base, SIGHUP, on_hup, s);
    ev_term = evsignal_new(s->base, SIGTERM, on_term, s);
    ev_int = evsignal_new(s->base, SIGINT, on_term, s);
    if (ev_hup == NULL || ev_term == NULL || ev_int == NULL || evsignal_add(ev_hup, NULL) != 0
        || evsignal_add(ev_term, NULL) != 0 || evsignal_add(ev_int, NULL) != 0) {
        lurk_srv_log(LURK_LOG_ERROR, "cannot install signal handlers");
        goto end;
    }
    if (lurk_srv_audit_open(s->conf->audit_log, &s->audit, why, sizeof(why)) != LURK_OK) {
        lurk_srv_log(LURK_LOG_ERROR, "audit log %s: %s", s->conf->audit_log, why);
        goto end;
    }
    if (lurk_srv_http_new(s->conf, s->libctx, ks, s->audit, &s->http, why, sizeof(why))
        != LURK_OK) {
        lurk_srv_log(LURK_LOG_ERROR, "%s", why);
        goto end;
    }
    if (s->opt->dev_dir != NULL) {
        if (lurk_srv_dev_publish(s->opt->dev_dir, lurk_srv_http_addr(s->http), s->libctx, why,
                                 sizeof(why))
            != LURK_OK) {
            lurk_srv_log(LURK_LOG_ERROR, "--dev %s: %s", s->opt->dev_dir, why);
            goto end;
        }
    }
    if (lurk_srv_http_start(s->http, why, sizeof(why)) != LURK_OK) {
        lurk_srv_log(LURK_LOG_ERROR, "%s", why);
        goto end;
    }
    if (s->opt->port_file != NULL && !write_port_file(s->opt->port_file, lurk_srv_http_port(s->http))) {
        lurk_srv_log(LURK_LOG_ERROR, "cannot write the port file %s: %s", s->opt->port_file,
                     strerror(errno));
        lurk_srv_http_stop(s->http, 0);
        goto end;
    }
    for (size_t i = 0; i < s->conf->n_listen; i++) {
        lurk_srv_log(LURK_LOG_INFO, "listening on %s",
                     i == 0 ? lurk_srv_http_addr(s->http) : s->conf->listen[i]);
    }
    if (s->conf->unix_socket != NULL) {
        lurk_srv_log(LURK_LOG_INFO, "listening on unix:%s", s->conf->unix_socket);
    }
    if (event_base_dispatch(s->base) < 0) {
        lurk_srv_log(LURK_LOG_ERROR, "main event loop failed");
    }
    lurk_srv_http_stop(s->http, DRAIN_MS);
    lurk_srv_log(LURK_LOG_INFO, "stopped");
    ok = 1;

end:
    if (ev_hup != NULL) {
        event_free(ev_hup);
    }
    if (ev_term != NULL) {
        event_free(ev_term);
    }
    if (ev_int != NULL) {
        event_free(ev_int);
    }
    lurk_srv_http_free(s->http);
    s->http = NULL;
    lurk_srv_audit_close(s->audit);
    s->audit = NULL;
    if (s->base != NULL) {
        event_base_free(s->base);
        s->base = NULL;
    }
    return ok;
}

int main(int argc, char **argv)
{
    options opt;
    server s;
    OSSL_PROVIDER *deflt = NULL;
    LURK_SRV_KEYSTORE *ks = NULL;
    char *dev_conf = NULL;
    const char *config;
    char why[1024];
    int rc = 1;

    memset(&s, 0, sizeof(s));
    s.opt = &opt;
    if (!parse_args(argc, argv, &opt)) {
        return 2;
    }
    if (getenv("LURK_KEYSERVER_DEBUG") != NULL) {
        lurk_srv_log_set_level(LURK_LOG_DEBUG);
    }
    signal(SIGPIPE, SIG_IGN);

    /* Before anything can read a key. */
    if (CRYPTO_secure_malloc_init(SECURE_HEAP_SIZE, SECURE_HEAP_MIN) == 0) {
        lurk_srv_log(LURK_LOG_WARN, "no secure heap: keys live in the ordinary heap");
    }
    /* Never read openssl.cnf: it may activate the lurk provider. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    s.libctx = OSSL_LIB_CTX_new();
    if (s.libctx == NULL) {
        lurk_srv_log_ossl(LURK_LOG_ERROR, "cannot create a library context");
        goto end;
    }
    deflt = OSSL_PROVIDER_load(s.libctx, "default");
    if (deflt == NULL) {
        lurk_srv_log_ossl(LURK_LOG_ERROR, "cannot load OpenSSL's default provider");
        goto end;
    }

    config = opt.config;
    if (opt.dev_dir != NULL) {
        if (lurk_srv_dev_prepare(opt.dev_dir,
                                 opt.listen != NULL ? opt.listen : LURK_SRV_DEFAULT_LISTEN,
                                 s.libctx, &dev_conf, why, sizeof(why))
            != LURK_OK) {
            lurk_srv_log(LURK_LOG_ERROR, "--dev %s: %s", opt.dev_dir, why);
            goto end;
        }
        config = dev_conf;
    }
    if (lurk_srv_conf_load(config, &s.conf, why, sizeof(why)) != LURK_OK) {
        lurk_srv_log(LURK_LOG_ERROR, "%s", why);
        goto end;
    }
    if (opt.listen != NULL && lurk_srv_conf_set_listen(s.conf, opt.listen) != LURK_OK) {
        lurk_srv_log(LURK_LOG_ERROR, "--listen %s: expected ADDR:PORT (IPv6: [ADDR]:PORT)",
                     opt.listen);
        goto end;
    }
    if (lurk_srv_conf_keystore(s.conf, s.libctx, &ks, why, sizeof(why)) != LURK_OK) {
        lurk_srv_log(LURK_LOG_ERROR, "%s", why);
        goto end;
    }
    if (opt.list_keys) {
        rc = list_keys(ks) ? 0 : 1;
        goto end;
    }
    if (opt.check) {
        rc = check_config(&s, ks) ? 0 : 1;
        goto end;
    }
    rc = serve(&s, ks) ? 0 : 1;

end:
    lurk_srv_keystore_free(ks);
    lurk_srv_conf_free(s.conf);
    free(dev_conf);
    OSSL_PROVIDER_unload(deflt);
    OSSL_LIB_CTX_free(s.libctx);
    return rc;
}
