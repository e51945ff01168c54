/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c - the key server's log: standard error, one line per write(2) so
 * that threads never interleave within a line, never a secret.  Every
 * server file logs through here; nothing here depends on them.
 */
#include "srv_front.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

static lurk_srv_log_level log_max = LURK_LOG_INFO;

void lurk_srv_log_set_level(lurk_srv_log_level level)
{
    log_max = level;
}

void lurk_srv_log(lurk_srv_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = { "error: ", "warning: ", "", "debug: " };
    char line[1024];
    va_list ap;
    int n;

    if (level > log_max) {
        return;
    }
    n = snprintf(line, sizeof(line), LURK_SRV_PROG ": %s", tags[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* one write per line so that threads never interleave within a line */
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nothing sensible to do */
    }
}

const char *lurk_srv_ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    buf[0] = '\0';
    if (e != 0) {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

void lurk_srv_log_ossl(lurk_srv_log_level level, const char *what)
{
    char reason[256];

    lurk_srv_ossl_reason(reason, sizeof(reason));
    lurk_srv_log(level, "%s%s%s", what, reason[0] != '\0' ? ": " : "", reason);
}
