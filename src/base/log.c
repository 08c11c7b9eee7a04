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

void log_msg(log_level_t level, const char *scope, const char *fmt, ...)
{
    char msg[2048], ts[64];
    struct timespec now;
    struct tm tm;
    va_list ap;
    buf_t line;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(now.tv_nsec / 1000000) % 1000);
    buf_init(&line, sizeof(msg) * 7);
    if (cfg.json) {
        int rc =
            buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"app_id\":\"", ts, names[level]);
        rc = rc ? rc : buf_append_json_str(&line, cfg.app_id, strlen(cfg.app_id));
        rc = rc ? rc : buf_printf(&line, "\",\"scope\":\"%s\",\"message\":\"", scope);
        rc = rc ? rc : buf_append_json_str(&line, msg, strlen(msg));
        rc = rc ? rc : buf_append_str(&line, "\"}\n");
        (void)rc;
    } else {
        /* logfmt: the message is quoted with JSON string escaping, so quotes and newlines in
         * it (paths, app ids, peer text) cannot break a line apart. */
        int rc = buf_printf(&line, "time=%s level=%s app_id=%s scope=%s msg=\"", ts, names[level],
                            cfg.app_id, scope);
        rc = rc ? rc : buf_append_json_str(&line, msg, strlen(msg));
        rc = rc ? rc : buf_append_str(&line, "\"\n");
        (void)rc;
    }
    if (line.len > 0) {
        ssize_t w = write(STDERR_FILENO, line.ptr, line.len);
        (void)w;
    }
    buf_free(&line);
}
