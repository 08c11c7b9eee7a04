#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"

/* The logger is the one piece of process-wide state: it is set once at start-up, before any thread
 * exists, and only read afterwards. */
static struct {
    log_level_t level;
    bool json;
    char app_id[128];
} cfg = {LOG_INFO, false, ""};

static const char *names[] = {"debug", "info", "warn", "error", "fatal"};

void log_init(log_level_t level, bool as_json, const char *app_id)
{
    cfg.level = level;
    cfg.json = as_json;
    snprintf(cfg.app_id, sizeof(cfg.app_id), "%s", app_id ? app_id : "");
}

int log_level_parse(const char *s, log_level_t *out)
{
    for (int i = 0; i <= LOG_FATAL; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return ERR_INVAL;
}

bool log_enabled(log_level_t level)
{
    return level >= cfg.level;
}

/* "YYYY-MM-DDThh:mm:ss.mmmZ" without printf (audit and API lines are written per request). */
static void format_time(char out[64])
{
    struct timespec now;
    struct tm tm;
    int f[7];
    char *w = out;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (long)(now.tv_nsec / 1000000) % 1000);
        return;
    }
    f[0] = tm.tm_year + 1900;
    f[1] = tm.tm_mon + 1;
    f[2] = tm.tm_mday;
    f[3] = tm.tm_hour;
    f[4] = tm.tm_min;
    f[5] = tm.tm_sec;
    f[6] = (int)(now.tv_nsec / 1000000 % 1000);
    *w++ = (char)('0' + f[0] / 1000);
    *w++ = (char)('0' + f[0] / 100 % 10);
    for (int i = 0; i < 6; i++) {
        *w++ = (char)('0' + f[i] / 10 % 10);
        *w++ = (char)('0' + f[i] % 10);
        *w++ = "--T::."[i];
    }
    *w++ = (char)('0' + f[6] / 100);
    *w++ = (char)('0' + f[6] / 10 % 10);
    *w++ = (char)('0' + f[6] % 10);
    *w++ = 'Z';
    *w = '\0';
}

/* Writes one line: the fixed fields, the message, then @p kv (JSON fields, or key="value"). */
static void write_line(log_level_t level, const char *scope, const char *msg, const log_kv_t *kv,
                       size_t n)
{
    char ts[64];
    buf_t line;
    int rc;

    format_time(ts);
    buf_init(&line, LOG_LINE_MAX);
    rc = buf_reserve(&line, 512); /* one allocation for most lines */
    if (cfg.json) {
        rc = rc ? rc : buf_append_str(&line, "{\"time\":\"");
        rc = rc ? rc : buf_append_str(&line, ts);
        rc = rc ? rc : buf_append_str(&line, "\",\"level\":\"");
        rc = rc ? rc : buf_append_str(&line, names[level]);
        rc = rc ? rc : buf_append_str(&line, "\",\"app_id\":\"");
        rc = rc ? rc : buf_append_json_str(&line, cfg.app_id, strlen(cfg.app_id));
        rc = rc ? rc : buf_append_str(&line, "\",\"scope\":\"");
        rc = rc ? rc : buf_append_str(&line, scope);
        rc = rc ? rc : buf_append_str(&line, "\",\"message\":\"");
        rc = rc ? rc : buf_append_json_str(&line, msg, strlen(msg));
        rc = rc ? rc : buf_append_str(&line, "\"");
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = buf_append_str(&line, ",\"");
            rc = rc ? rc : buf_append_json_str(&line, kv[i].key, strlen(kv[i].key));
            rc = rc ? rc : buf_append_str(&line, kv[i].raw_json ? "\":" : "\":\"");
            if (kv[i].raw_json)
                rc = rc ? rc : buf_append_str(&line, kv[i].value);
            else
                rc = rc ? rc : buf_append_json_str(&line, kv[i].value, strlen(kv[i].value));
            rc = rc ? rc : buf_append_str(&line, kv[i].raw_json ? "" : "\"");
        }
        rc = rc ? rc : buf_append_str(&line, "}\n");
    } else {
        /* logfmt: the message is quoted with JSON string escaping, so quotes and newlines in
         * it (paths, app ids, peer text) cannot break a line apart. */
        rc = rc ? rc : buf_append_str(&line, "time=");
        rc = rc ? rc : buf_append_str(&line, ts);
        rc = rc ? rc : buf_append_str(&line, " level=");
        rc = rc ? rc : buf_append_str(&line, names[level]);
        rc = rc ? rc : buf_append_str(&line, " app_id=");
        rc = rc ? rc : buf_append_str(&line, cfg.app_id);
        rc = rc ? rc : buf_append_str(&line, " scope=");
        rc = rc ? rc : buf_append_str(&line, scope);
        rc = rc ? rc : buf_append_str(&line, " msg=\"");
        rc = rc ? rc : buf_append_json_str(&line, msg, strlen(msg));
        rc = rc ? rc : buf_append_str(&line, "\"");
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = buf_append_str(&line, " ");
            rc = rc ? rc : buf_append_str(&line, kv[i].key);
            rc = rc ? rc : buf_append_str(&line, "=\"");
            rc = rc ? rc : buf_append_json_str(&line, kv[i].value, strlen(kv[i].value));
            rc = rc ? rc : buf_append_str(&line, "\"");
        }
        rc = rc ? rc : buf_append_str(&line, "\n");
    }
    /* A line past LOG_LINE_MAX was dropped by the buffer: say so rather than lose it silently. */
    if (rc < 0 && line.len == 0)
        rc = buf_printf(&line, "time=%s level=%s scope=%s msg=\"log line too long\"\n", ts,
                        names[level], scope);
    if (line.len > 0) {
        ssize_t w = write(STDERR_FILENO, line.ptr, line.len);
        (void)w;
    }
    buf_free(&line);
}

void log_msg(log_level_t level, const char *scope, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    write_line(level, scope, msg, NULL, 0);
}

void log_kv(log_level_t level, const char *scope, const log_kv_t *kv, size_t n, const char *msg)
{
    if (log_enabled(level))
        write_line(level, scope, msg, kv, n);
}
