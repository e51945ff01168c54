/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_config.c - the key server's config loader (lurk_srv_conf_load,
 * server/config.c) on arbitrary text.  The loader reads a path (NCONF, and
 * again to name the line of an error), so each input is written to a file
 * in a private temporary directory first.  Never crashes; a refusal says
 * why; an accepted config has what the daemon relies on (a listener or a
 * unix socket, TLS files for TCP, keys, limits in range).
 *
 * Inputs with NCONF's `.include` (or `.pragma includedir`) are skipped: they
 * make OpenSSL read other files (/dev/zero, /proc, ...), which is NCONF's
 * business, not the loader's, and would stall the fuzzer.
 */
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "fuzz.h"
#include "srv_front.h"

static char fuzz_dir[] = "/tmp/lurk-fuzz-config-XXXXXX";
static char fuzz_path[sizeof(fuzz_dir) + 32];

static void fuzz_cleanup(void)
{
    unlink(fuzz_path);
    rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    FUZZ_CHECK(mkdtemp(fuzz_dir) != NULL);
    snprintf(fuzz_path, sizeof(fuzz_path), "%s/keyserver.cnf", fuzz_dir);
    atexit(fuzz_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lurk_srv_conf *conf = NULL;
    char why[1024];
    FILE *f;
    lurk_err err;

    if (memmem(data, size, ".inc", 4) != NULL || memmem(data, size, "includedir", 10) != NULL) {
        return 0;
    }
    f = fopen(fuzz_path, "w");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);

    why[0] = '\0';
    err = lurk_srv_conf_load(fuzz_path, &conf, why, sizeof(why));
    if (err != LURK_OK) {
        FUZZ_CHECK(conf == NULL);
        FUZZ_CHECK(why[0] != '\0');
    } else {
        FUZZ_CHECK(conf != NULL);
        FUZZ_CHECK(conf->n_listen > 0 || conf->unix_socket != NULL);
        FUZZ_CHECK(conf->n_listen <= LURK_SRV_MAX_LISTEN);
        for (size_t i = 0; i < conf->n_listen; i++) {
            FUZZ_CHECK(conf->listen[i] != NULL);
        }
        FUZZ_CHECK(conf->n_listen == 0
                   || (conf->tls_cert != NULL && conf->tls_key != NULL && conf->client_ca != NULL));
        FUZZ_CHECK(conf->n_keys > 0 || conf->key_dir != NULL);
        for (size_t i = 0; i < conf->n_keys; i++) {
            FUZZ_CHECK((conf->keys[i].file == NULL) != (conf->keys[i].uri == NULL));
        }
        FUZZ_CHECK(conf->threads >= 1 && conf->threads <= 256);
        FUZZ_CHECK(conf->max_body >= 1024 && conf->max_body <= 1024 * 1024);
        FUZZ_CHECK(conf->max_connections >= 1 && conf->max_handshakes >= 0
                   && conf->max_per_client >= 0);
        FUZZ_CHECK(conf->header_timeout >= 1 && conf->handshake_timeout >= 1
                   && conf->idle_timeout >= 1 && conf->queue_max_ms >= 1);
        FUZZ_CHECK(conf->audit_log != NULL && conf->dir != NULL && conf->dir[0] == '/');
        lurk_srv_conf_free(conf);
    }
    ERR_clear_error();
    return 0;
}
