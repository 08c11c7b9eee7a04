#include "base/dur.h"

#include <string.h>

#include "base/err.h"

#define NS_PER_MS 1000000ull

struct unit {
    const char *name; /* suffix as written */
    uint64_t ns;      /* nanoseconds in one unit */
};

/* Longest names first where one is a prefix of another ("ms" before "m"). */
static const struct unit units[] = {
    {"ns", 1ull},
    {"us", 1000ull},
    {"\xc2\xb5s", 1000ull}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000ull}, /* U+03BC Greek small letter mu */
    {"ms", NS_PER_MS},
    {"s", 1000ull * NS_PER_MS},
    {"m", 60ull * 1000ull * NS_PER_MS},
    {"h", 3600ull * 1000ull * NS_PER_MS},
};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Matches the unit at [p, end): the longest unit name that is followed by a digit, '.' or the end
 * (Go reads the unit as every byte up to the next digit or '.'). */
static const struct unit *match_unit(const char *p, const char *end, size_t *len)
{
    size_t n = 0, i;

    while (p + n < end && p[n] != '.' && !is_digit(p[n]))
        n++;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strlen(units[i].name) == n && memcmp(units[i].name, p, n) == 0) {
            *len = n;
            return &units[i];
        }
    }
    return NULL;
}

/* Returns the duration in nanoseconds through @p out_ns, or ERR_PARSE / ERR_TOO_LARGE. Mirrors
 * Go's time.ParseDuration: integer parts are exact, fractions go through a double like Go does. */
static int parse_ns(const char *p, size_t n, uint64_t *out_ns)
{
    const char *end = p + n;
    uint64_t total = 0;

    if (n > 0 && *p == '+')
        p++;
    if (p == end)
        return ERR_PARSE;
    if (end - p == 1 && *p == '0') {
        *out_ns = 0;
        return 0;
    }
    while (p < end) {
        uint64_t v = 0, frac = 0, scale = 1, add;
        const struct unit *u;
        int digits = 0;
        size_t ulen = 0;

        while (p < end && is_digit(*p)) {
            unsigned d = (unsigned)(*p - '0');
            if (v > (UINT64_MAX - d) / 10)
                return ERR_TOO_LARGE;
            v = v * 10 + d;
            p++;
            digits++;
        }
        if (p < end && *p == '.') {
            p++;
            while (p < end && is_digit(*p)) {
                /* Digits past 10^18 cannot change a millisecond result; drop them. */
                if (scale <= UINT64_MAX / 10 / 10) {
                    frac = frac * 10 + (unsigned)(*p - '0');
                    scale *= 10;
                }
                p++;
                digits++;
            }
        }
        if (digits == 0)
            return ERR_PARSE;
        u = match_unit(p, end, &ulen);
        if (u == NULL)
            return ERR_PARSE;
        p += ulen;
        if (v > UINT64_MAX / u->ns)
            return ERR_TOO_LARGE;
        add = v * u->ns;
        if (frac > 0) {
            /* frac < scale, so this part is below one unit and fits easily. */
            uint64_t part = (uint64_t)((double)frac * ((double)u->ns / (double)scale));
            if (part > UINT64_MAX - add)
                return ERR_TOO_LARGE;
            add += part;
        }
        if (add > UINT64_MAX - total)
            return ERR_TOO_LARGE;
        total += add;
    }
    *out_ns = total;
    return 0;
}

int dur_parse_ms(const char *p, size_t n, uint64_t max_ms, uint64_t *out_ms)
{
    uint64_t ns = 0, ms;
    int rc;

    if (p == NULL || out_ms == NULL)
        return ERR_INVAL;
    rc = parse_ns(p, n, &ns);
    if (rc < 0)
        return rc;
    ms = ns / NS_PER_MS;
    if (ms > max_ms)
        return ERR_TOO_LARGE;
    *out_ms = ms;
    return 0;
}
