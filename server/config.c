/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - the key server's config file (OpenSSL NCONF syntax, so
 * `$ENV::NAME` and the usual comments work) turned into a lurk_srv_conf.
 *
 * Every key of [keyserver] and of a key section is known here; anything else
 * is an error that names the file, the section, the key and its line, so a
 * typo never silently drops a limit.  Relative paths are resolved against
 * the config file's directory, once, at load.
 */
#include "srv_front.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/conf.h>
#include <openssl/err.h>

#define SECTION "keyserver"

/* Limits a config may choose within. */
#define MAX_THREADS 256
#define MAX_CONNECTIONS_CAP 1000000
#define MAX_BODY_MIN 1024
#define MAX_BODY_CAP (1024 * 1024)
#define MAX_TIMEOUT 86400
#define QUEUE_MAX_MS_CAP 60000

/* The [keyserver] settings, each described once: its kind, where it goes,
 * and for numbers the range (the message names it).  Documented for
 * operators in conf/lurk-keyserver.cnf. */
typedef enum {
    SET_INT,      /* an integer in lo..hi into an int */
    SET_SIZE,     /* an integer in lo..hi into a size_t */
    SET_THREADS,  /* SET_INT, 0 meaning one per CPU */
    SET_PATH,     /* a file name, relative to the config's directory */
    SET_STR,      /* a string as written */
    SET_LOG,      /* a file name, or "-" for standard error */
    SET_LISTEN,   /* ADDR:PORT, comma-separated */
    SET_KEYS,     /* the name of the keys section */
} set_kind;

typedef struct {
    const char *name;
    set_kind kind;
    size_t off;   /* offsetof(lurk_srv_conf, ...) */
    long lo;
    long hi;
} setting;

#define AT(field) offsetof(lurk_srv_conf, field)

static const setting settings[] = {
    { "listen", SET_LISTEN, 0, 0, 0 },
    { "unix_socket", SET_PATH, AT(unix_socket), 0, 0 },
    { "tls_cert", SET_PATH, AT(tls_cert), 0, 0 },
    { "tls_key", SET_PATH, AT(tls_key), 0, 0 },
    { "client_ca", SET_PATH, AT(client_ca), 0, 0 },
    { "threads", SET_THREADS, AT(threads), 0, MAX_THREADS },
    { "max_connections", SET_INT, AT(max_connections), 1, MAX_CONNECTIONS_CAP },
    { "max_handshakes", SET_INT, AT(max_handshakes), 0, MAX_CONNECTIONS_CAP },
    { "max_connections_per_client", SET_INT, AT(max_per_client), 0, MAX_CONNECTIONS_CAP },
    { "max_body", SET_SIZE, AT(max_body), MAX_BODY_MIN, MAX_BODY_CAP },
    { "header_timeout", SET_INT, AT(header_timeout), 1, MAX_TIMEOUT },
    { "handshake_timeout", SET_INT, AT(handshake_timeout), 1, MAX_TIMEOUT },
    { "idle_timeout", SET_INT, AT(idle_timeout), 1, MAX_TIMEOUT },
    { "queue_max_ms", SET_INT, AT(queue_max_ms), 1, QUEUE_MAX_MS_CAP },
    { "audit_log", SET_LOG, AT(audit_log), 0, 0 },
    { "key_dir", SET_PATH, AT(key_dir), 0, 0 },
    { "key_dir_passphrase_file", SET_PATH, AT(key_dir_passphrase_file), 0, 0 },
    { "keys", SET_KEYS, 0, 0, 0 },
};

static const setting *find_setting(const char *name)
{
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (strcmp(settings[i].name, name) == 0) {
            return &settings[i];
        }
    }
    return NULL;
}

static const char *const key_keys[] = {
    "file", "uri", "passphrase_file", "policy", "legacy_digests", "clients", NULL,
};

static int in_list(const char *name, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(name, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        *--end = '\0';
    }
    return s;
}

/*
 * Line of `name = ...` inside [section] of the file, or 0.  NCONF keeps no
 * line numbers, so this rescans the text the way NCONF reads it closely
 * enough to point an operator at the right place.
 */
static int find_line(const char *path, const char *section, const char *name)
{
    FILE *f = NULL;
    char line[1024];
    char cur[256] = "default";
    int n = 0;
    int found = 0;

    f = fopen(path, "r");
    if (f == NULL) {
        goto end;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *s = trim(line);
        size_t k;

        n++;
        if (*s == '[') {
            char *close = strchr(s, ']');

            if (close != NULL) {
                *close = '\0';
                snprintf(cur, sizeof(cur), "%s", trim(s + 1));
            }
            continue;
        }
        k = strlen(name);
        if (strcmp(cur, section) == 0 && strncmp(s, name, k) == 0) {
            const char *rest = s + k;

            while (*rest == ' ' || *rest == '\t') {
                rest++;
            }
            if (*rest == '=') {
                found = n;
                break;
            }
        }
    }

end:
    if (f != NULL) {
        fclose(f);
    }
    return found;
}

/* "FILE, [section] key (line N)" for error messages. */
static void where(char *buf, size_t len, const char *path, const char *section,
                  const char *name)
{
    int line = find_line(path, section, name);

    if (line > 0) {
        snprintf(buf, len, "%s line %d, [%s] %s", path, line, section, name);
    } else {
        snprintf(buf, len, "%s, [%s] %s", path, section, name);
    }
}

static char *resolve(const char *dir, const char *value)
{
    char *out = NULL;
    size_t len;

    if (value[0] == '/') {
        return strdup(value);
    }
    len = strlen(dir) + 1 + strlen(value) + 1;
    out = malloc(len);
    if (out != NULL) {
        snprintf(out, len, "%s/%s", dir, value);
    }
    return out;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *trim(end) != '\0' || v < lo || v > hi) {
        return 0;
    }
    *out = v;
    return 1;
}

/* Splits a comma/space separated list into owned strings. */
static lurk_err split_list(const char *value, char **items, size_t max, size_t *n)
{
    char *copy = NULL;
    char *save = NULL;
    char *tok;
    lurk_err err = LURK_OK;

    *n = 0;
    copy = strdup(value);
    if (copy == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    for (tok = strtok_r(copy, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
        if (*n == max) {
            err = LURK_ERR_CONFIG;
            goto end;
        }
        items[*n] = strdup(tok);
        if (items[*n] == NULL) {
            err = LURK_ERR_NOMEM;
            goto end;
        }
        (*n)++;
    }

end:
    free(copy);
    return err;
}

/* "sha1", "sha224", both (comma/space separated), or "none": the legacy
 * digests a key may sign.  0 on anything else. */
static int parse_legacy_digests(const char *value, uint32_t *out)
{
    char *items[4];
    size_t n = 0;
    int ok = 1;

    *out = 0;
    if (split_list(value, items, 4, &n) != LURK_OK) {
        ok = 0; /* more than 4 items, or no memory; the ones made are freed below */
    }
    for (size_t i = 0; i < n; i++) {
        lurk_md md = lurk_md_from_name(items[i]);

        if (strcasecmp(items[i], "none") == 0 && n == 1) {
            /* nothing allowed: the default, written out */
        } else if (lurk_md_is_legacy(md)) {
            *out |= 1u << md;
        } else {
            ok = 0;
        }
        free(items[i]);
    }
    return ok && n > 0;
}

lurk_err lurk_srv_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    long p;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');

        if (close == NULL || close[1] != ':') {
            return LURK_ERR_CONFIG;
        }
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) {
            return LURK_ERR_CONFIG;
        }
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= hostlen || !parse_int(colon + 1, 0, 65535, &p)) {
        return LURK_ERR_CONFIG;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return LURK_OK;
}

static void conf_key_clear(lurk_srv_conf_key *k)
{
    free(k->name);
    free(k->section);
    free(k->file);
    free(k->uri);
    free(k->passphrase_file);
    for (size_t i = 0; i < k->n_clients; i++) {
        free(k->clients[i]);
    }
    free(k->clients);
}

void lurk_srv_conf_free(lurk_srv_conf *conf)
{
    if (conf == NULL) {
        return;
    }
    free(conf->path);
    free(conf->dir);
    for (size_t i = 0; i < conf->n_listen; i++) {
        free(conf->listen[i]);
    }
    free(conf->unix_socket);
    free(conf->tls_cert);
    free(conf->tls_key);
    free(conf->client_ca);
    free(conf->audit_log);
    free(conf->key_dir);
    free(conf->key_dir_passphrase_file);
    for (size_t i = 0; i < conf->n_keys; i++) {
        conf_key_clear(&conf->keys[i]);
    }
    free(conf->keys);
    free(conf);
}

lurk_err lurk_srv_conf_set_listen(lurk_srv_conf *conf, const char *addr)
{
    char host[256];
    int port;
    char *copy = NULL;

    if (lurk_srv_split_addr(addr, host, sizeof(host), &port) != LURK_OK) {
        return LURK_ERR_CONFIG;
    }
    copy = strdup(addr);
    if (copy == NULL) {
        return LURK_ERR_NOMEM;
    }
    for (size_t i = 0; i < conf->n_listen; i++) {
        free(conf->listen[i]);
        conf->listen[i] = NULL;
    }
    conf->listen[0] = copy;
    conf->n_listen = 1;
    return LURK_OK;
}

/* One key section ([key_site_rsa]) into k. */
static lurk_err load_key(CONF *cnf, const lurk_srv_conf *conf, const char *name,
                         const char *section, lurk_srv_conf_key *k, char *why, size_t whylen)
{
    STACK_OF(CONF_VALUE) *sk = NULL;
    char at[512];
    lurk_err err = LURK_ERR_CONFIG;

    k->policy = LURK_POLICY_TLS_SERVER;
    k->name = strdup(name);
    k->section = strdup(section);
    if (k->name == NULL || k->section == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    sk = NCONF_get_section(cnf, section);
    if (sk == NULL) {
        where(at, sizeof(at), conf->path, "keys", name);
        lurk_why(why, whylen, "%s: key '%s' names section [%s], which does not exist", at, name,
                 section);
        goto end;
    }
    for (int i = 0; i < sk_CONF_VALUE_num(sk); i++) {
        const CONF_VALUE *v = sk_CONF_VALUE_value(sk, i);

        where(at, sizeof(at), conf->path, section, v->name);
        if (!in_list(v->name, key_keys)) {
            lurk_why(why, whylen, "%s: unknown key '%s' (known: file, uri, passphrase_file, "
                     "policy, legacy_digests, clients)", at, v->name);
            goto end;
        }
        if (strcmp(v->name, "file") == 0) {
            k->file = resolve(conf->dir, v->value);
        } else if (strcmp(v->name, "uri") == 0) {
            k->uri = strdup(v->value);
        } else if (strcmp(v->name, "passphrase_file") == 0) {
            k->passphrase_file = resolve(conf->dir, v->value);
        } else if (strcmp(v->name, "policy") == 0) {
            if (lurk_policy_from_name(v->value, &k->policy) != LURK_OK) {
                lurk_why(why, whylen, "%s: unknown policy '%s' (tls-server, sign, decrypt or "
                         "agree)", at, v->value);
                goto end;
            }
        } else if (strcmp(v->name, "legacy_digests") == 0) {
            if (!parse_legacy_digests(v->value, &k->legacy_digests)) {
                lurk_why(why, whylen, "%s: '%s' is not a list of sha1, sha224 (or none)", at,
                         v->value);
                goto end;
            }
        } else {
            char *items[LURK_SRV_MAX_CLIENTS_PER_KEY];
            size_t n = 0;
            lurk_err e;

            e = split_list(v->value, items, LURK_SRV_MAX_CLIENTS_PER_KEY, &n);
            k->clients = calloc(n > 0 ? n : 1, sizeof(*k->clients));
            for (size_t j = 0; j < n; j++) {
                if (k->clients != NULL) {
                    k->clients[j] = items[j];
                } else {
                    free(items[j]);
                }
            }
            k->n_clients = k->clients != NULL ? n : 0;
            if (e == LURK_ERR_CONFIG) {
                lurk_why(why, whylen, "%s: more than %d clients", at,
                         LURK_SRV_MAX_CLIENTS_PER_KEY);
                goto end;
            }
            if (e != LURK_OK || k->clients == NULL) {
                err = LURK_ERR_NOMEM;
                goto end;
            }
            if (n == 0) {
                lurk_why(why, whylen, "%s: empty client list (leave the key out to allow any "
                         "client)", at);
                goto end;
            }
        }
    }
    if ((k->file == NULL) == (k->uri == NULL)) {
        lurk_why(why, whylen, "%s, [%s]: key '%s' needs exactly one of 'file' or 'uri'",
                 conf->path, section, name);
        goto end;
    }
    err = LURK_OK;

end:
    if (err == LURK_ERR_NOMEM) {
        lurk_why(why, whylen, "out of memory reading %s", conf->path);
    }
    return err;
}

static lurk_err load_keys(CONF *cnf, lurk_srv_conf *conf, const char *section, char *why,
                          size_t whylen)
{
    STACK_OF(CONF_VALUE) *sk = NCONF_get_section(cnf, section);
    lurk_err err = LURK_OK;
    int n;

    if (sk == NULL) {
        char at[512];

        where(at, sizeof(at), conf->path, SECTION, "keys");
        lurk_why(why, whylen, "%s: section [%s] does not exist", at, section);
        return LURK_ERR_CONFIG;
    }
    n = sk_CONF_VALUE_num(sk);
    conf->keys = calloc(n > 0 ? (size_t)n : 1, sizeof(*conf->keys));
    if (conf->keys == NULL) {
        lurk_why(why, whylen, "out of memory reading %s", conf->path);
        return LURK_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        const CONF_VALUE *v = sk_CONF_VALUE_value(sk, i);

        conf->n_keys++;
        err = load_key(cnf, conf, v->name, v->value, &conf->keys[i], why, whylen);
        if (err != LURK_OK) {
            break;
        }
    }
    return err;
}

/* The directory holding path, absolute. */
static char *conf_dir(const char *path)
{
    char *copy = strdup(path);
    char *slash;
    char *dir = NULL;

    if (copy == NULL) {
        return NULL;
    }
    slash = strrchr(copy, '/');
    if (slash == NULL) {
        dir = realpath(".", NULL);
    } else if (slash == copy) {
        dir = strdup("/");
    } else {
        *slash = '\0';
        dir = realpath(copy, NULL);
    }
    free(copy);
    return dir;
}

static long ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1) {
        n = 1;
    }
    return n > MAX_THREADS ? MAX_THREADS : n;
}

lurk_err lurk_srv_conf_load(const char *path, lurk_srv_conf **out, char *why, size_t whylen)
{
    CONF *cnf = NULL;
    STACK_OF(CONF_VALUE) *sk = NULL;
    lurk_srv_conf *conf = NULL;
    long eline = 0;
    char at[512];
    char reason[256];
    lurk_err err = LURK_ERR_CONFIG;

    *out = NULL;
    conf = calloc(1, sizeof(*conf));
    if (conf == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    conf->threads = (int)ncpus();
    conf->max_connections = 1024;
    conf->max_body = 65536;
    conf->header_timeout = 5;
    conf->handshake_timeout = 3;
    conf->idle_timeout = 60;
    conf->queue_max_ms = 100;
    conf->path = strdup(path);
    conf->dir = conf_dir(path);
    conf->audit_log = strdup("-");
    if (conf->path == NULL || conf->audit_log == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    if (conf->dir == NULL) {
        lurk_why(why, whylen, "%s: cannot resolve its directory: %s", path, strerror(errno));
        goto end;
    }

    cnf = NCONF_new(NULL);
    if (cnf == NULL) {
        err = LURK_ERR_NOMEM;
        goto end;
    }
    if (NCONF_load(cnf, path, &eline) <= 0) {
        lurk_srv_ossl_reason(reason, sizeof(reason));
        if (eline > 0) {
            lurk_why(why, whylen, "%s line %ld: syntax error (%s)", path, eline, reason);
        } else if (access(path, R_OK) != 0) {
            lurk_why(why, whylen, "%s: cannot read: %s", path, strerror(errno));
        } else {
            lurk_why(why, whylen, "%s: cannot load (%s)", path, reason);
        }
        goto end;
    }
    sk = NCONF_get_section(cnf, SECTION);
    if (sk == NULL) {
        lurk_why(why, whylen, "%s: no [%s] section", path, SECTION);
        goto end;
    }
    for (int i = 0; i < sk_CONF_VALUE_num(sk); i++) {
        const CONF_VALUE *v = sk_CONF_VALUE_value(sk, i);
        const char *name = v->name;
        const setting *st;
        char **slot = NULL;
        long num;

        where(at, sizeof(at), path, SECTION, name);
        st = find_setting(name);
        if (st == NULL) {
            lurk_why(why, whylen, "%s: unknown key '%s'", at, name);
            goto end;
        }
        switch (st->kind) {
        case SET_LISTEN:
            for (size_t j = 0; j < conf->n_listen; j++) {
                free(conf->listen[j]);
                conf->listen[j] = NULL;
            }
            err = split_list(v->value, conf->listen, LURK_SRV_MAX_LISTEN, &conf->n_listen);
            if (err == LURK_ERR_NOMEM) {
                goto end;
            }
            if (err != LURK_OK || conf->n_listen == 0) {
                err = LURK_ERR_CONFIG;
                lurk_why(why, whylen, "%s: expected one to %d ADDR:PORT, comma-separated", at,
                         LURK_SRV_MAX_LISTEN);
                goto end;
            }
            err = LURK_ERR_CONFIG;
            for (size_t j = 0; j < conf->n_listen; j++) {
                char host[256];
                int port;

                if (lurk_srv_split_addr(conf->listen[j], host, sizeof(host), &port) != LURK_OK) {
                    lurk_why(why, whylen, "%s: '%s' is not ADDR:PORT (IPv6: [ADDR]:PORT)", at,
                             conf->listen[j]);
                    goto end;
                }
            }
            break;
        case SET_INT:
        case SET_SIZE:
        case SET_THREADS:
            if (!parse_int(v->value, st->lo, st->hi, &num)) {
                lurk_why(why, whylen, "%s: '%s' is not an integer in %ld..%ld", at, v->value,
                         st->lo, st->hi);
                goto end;
            }
            if (st->kind == SET_SIZE) {
                *(size_t *)((char *)conf + st->off) = (size_t)num;
            } else {
                *(int *)((char *)conf + st->off) =
                    st->kind == SET_THREADS && num == 0 ? (int)ncpus() : (int)num;
            }
            break;
        case SET_KEYS:
            err = load_keys(cnf, conf, v->value, why, whylen);
            if (err != LURK_OK) {
                goto end;
            }
            err = LURK_ERR_CONFIG;
            break;
        case SET_PATH:
        case SET_STR:
        case SET_LOG:
            if (v->value[0] == '\0') {
                lurk_why(why, whylen, "%s: empty value", at);
                goto end;
            }
            slot = (char **)((char *)conf + st->off);
            free(*slot);
            *slot = st->kind == SET_STR || (st->kind == SET_LOG && strcmp(v->value, "-") == 0)
                        ? strdup(v->value)
                        : resolve(conf->dir, v->value);
            if (*slot == NULL) {
                err = LURK_ERR_NOMEM;
                goto end;
            }
            break;
        }
    }

    if (conf->n_listen == 0 && conf->unix_socket == NULL) {
        conf->listen[0] = strdup(LURK_SRV_DEFAULT_LISTEN);
        if (conf->listen[0] == NULL) {
            err = LURK_ERR_NOMEM;
            goto end;
        }
        conf->n_listen = 1;
    }
    if (conf->n_listen > 0) {
        const char *missing = conf->tls_cert == NULL   ? "tls_cert"
                              : conf->tls_key == NULL  ? "tls_key"
                              : conf->client_ca == NULL ? "client_ca"
                                                        : NULL;

        if (missing != NULL) {
            lurk_why(why, whylen, "%s, [%s]: '%s' is required for TCP listeners (mutual TLS is "
                     "mandatory)", path, SECTION, missing);
            goto end;
        }
    }
    if (conf->key_dir_passphrase_file != NULL && conf->key_dir == NULL) {
        lurk_why(why, whylen, "%s, [%s]: key_dir_passphrase_file without key_dir", path, SECTION);
        goto end;
    }
    if (conf->key_dir == NULL && conf->n_keys == 0) {
        lurk_why(why, whylen, "%s, [%s]: no keys: set key_dir and/or keys", path, SECTION);
        goto end;
    }
    err = LURK_OK;
    *out = conf;
    conf = NULL;

end:
    if (err == LURK_ERR_NOMEM) {
        lurk_why(why, whylen, "out of memory reading %s", path);
    }
    NCONF_free(cnf);
    lurk_srv_conf_free(conf);
    return err;
}

lurk_err lurk_srv_conf_keystore(const lurk_srv_conf *conf, OSSL_LIB_CTX *libctx,
                                LURK_SRV_KEYSTORE **out, char *why, size_t whylen)
{
    LURK_SRV_KEYSTORE *ks = NULL;
    char inner[512];
    lurk_err err;

    *out = NULL;
    err = lurk_srv_keystore_new(libctx, NULL, &ks);
    if (err != LURK_OK) {
        lurk_why(why, whylen, "cannot create the key store: %s", lurk_err_str(err));
        goto end;
    }
    for (size_t i = 0; i < conf->n_keys; i++) {
        const lurk_srv_conf_key *k = &conf->keys[i];
        lurk_srv_key_conf kc = {
            .name = k->name,
            .file = k->file,
            .uri = k->uri,
            .passphrase_file = k->passphrase_file,
            .policy = k->policy,
            .legacy_digests = k->legacy_digests,
            .clients = (const char *const *)k->clients,
            .n_clients = k->n_clients,
        };

        inner[0] = '\0';
        err = lurk_srv_keystore_add(ks, &kc, inner, sizeof(inner));
        if (err != LURK_OK) {
            /* the key store's sentence names the key already */
            if (inner[0] != '\0') {
                lurk_why(why, whylen, "%s, [%s]: %s", conf->path, k->section, inner);
            } else {
                lurk_why(why, whylen, "%s, [%s]: key '%s': %s", conf->path, k->section, k->name,
                         lurk_err_str(err));
            }
            goto end;
        }
    }
    if (conf->key_dir != NULL) {
        inner[0] = '\0';
        err = lurk_srv_keystore_add_dir(ks, conf->key_dir, conf->key_dir_passphrase_file, inner,
                                        sizeof(inner));
        if (err != LURK_OK) {
            lurk_why(why, whylen, "%s, [%s] key_dir %s: %s", conf->path, SECTION, conf->key_dir,
                     inner[0] != '\0' ? inner : lurk_err_str(err));
            goto end;
        }
    }
    *out = ks;
    ks = NULL;
    err = LURK_OK;

end:
    lurk_srv_keystore_free(ks);
    return err;
}
