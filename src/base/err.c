#include "base/err.h"

#include <stdio.h>
#include <uv.h>

const char *err_name(int code)
{
    switch (code) {
#define ERR_NAME(name, c, text)                                                                    \
    case c:                                                                                        \
        return "ERR_" #name;
        ERR_MAP(ERR_NAME)
#undef ERR_NAME
    default:
        break;
    }
    if (code < 0 && code > -10000)
        return uv_err_name(code);
    return code == 0 ? "OK" : "ERR_UNKNOWN";
}

const char *err_str(int code)
{
    switch (code) {
#define ERR_TEXT(name, c, text)                                                                    \
    case c:                                                                                        \
        return text;
        ERR_MAP(ERR_TEXT)
#undef ERR_TEXT
    default:
        break;
    }
    if (code < 0 && code > -10000)
        return uv_strerror(code);
    return code == 0 ? "success" : "unknown error";
}

int err_set(err_detail_t *d, int code, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL)
        return code;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
    return code;
}
