/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c - the key server's log: standard error, one line per write(2) so
 * that threads never interleave within a line, never a secret.  Each line:
 * time (RFC 3339, UTC, ms), program, level, message.  Every
 * server file logs through here; nothing here depends on them.
 */
#include "srv_front.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

static lurk_srv_log_level log_max = LURK_LOG_INFO;

void lurk_srv_log_set_level(lurk_srv_log_level level)
{
    log_max = level;
}

void lurk_srv_log(lurk_srv_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = { "error: ", "warning: ", "info: ", "debug: " };
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (level > log_max) {
        return;
    }
    /* RFC 3339 UTC with milliseconds, the audit log's clock */
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03dZ " LURK_SRV_PROG ": %s",
                  (int)(ts.tv_nsec / 1000000), tags[level]);
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
