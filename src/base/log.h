/*
 * log — leveled log lines on stderr, plain or one JSON object per line.
 *
 * Job: the single way Outrigger writes diagnostics.
 * Ownership: log_init copies what it needs; nothing to free.
 * Threading: log_msg is thread-safe (each line is one write(2)); log_init must run before threads.
 * Errors: none; a line that cannot be written is dropped.
 * Secrets: never pass secret values; there is no redaction here.
 */
#ifndef OUTRIGGER_BASE_LOG_H
#define OUTRIGGER_BASE_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL } log_level_t;

#define LOG_LINE_MAX (64 * 1024) /* bytes of one line; a longer one is replaced by a notice */

/* One extra field of a structured line. */
typedef struct log_kv {
    const char *key;   /* field name: [a-z_.] */
    const char *value; /* text (escaped on output), or JSON text when raw_json */
    bool raw_json;     /* value is a JSON value (number, object) written as is in JSON lines */
} log_kv_t;

/** Sets the threshold, output form and the app id stamped on each line (copied). */
void log_init(log_level_t level, bool as_json, const char *app_id);
/** Parses "debug"/"info"/"warn"/"error"/"fatal"; returns 0 or ERR_INVAL. */
int log_level_parse(const char *s, log_level_t *out);
/** True when lines at @p level are written. */
bool log_enabled(log_level_t level);
/** Writes one line: @p scope names the module ("invoke", "net"). */
void log_msg(log_level_t level, const char *scope, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Writes one line with message @p msg and @p n extra fields: JSON members after "message" with
 * --log-as-json, key="value" pairs after msg= otherwise. A raw_json value must be valid JSON.
 */
void log_kv(log_level_t level, const char *scope, const log_kv_t *kv, size_t n, const char *msg);

#define log_debug(scope, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, scope, __VA_ARGS__);                                                \
    } while (0)
#define log_info(scope, ...) log_msg(LOG_INFO, scope, __VA_ARGS__)
#define log_warn(scope, ...) log_msg(LOG_WARN, scope, __VA_ARGS__)
#define log_error(scope, ...) log_msg(LOG_ERROR, scope, __VA_ARGS__)

#endif
