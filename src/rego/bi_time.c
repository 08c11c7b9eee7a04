/*
 * bi_time.c — time builtins over int64 nanoseconds since the epoch, in UTC or a fixed offset.
 *
 * Gaps (documented in docs/rego.md): no time zone database, so a named zone other than "UTC",
 * "" or "Local" (taken as UTC) is a builtin error; numbers are doubles, so nanosecond values
 * beyond 2^53 lose their last digits; time.parse_ns knows the common Go layout elements.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "rego/rego_int.h"

#define A (&ev->arena)
#define NS_MIN (-9223372036854775808.0)
#define NS_MAX (9223372036854775807.0)

static const char *const weekdays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                       "Thursday", "Friday", "Saturday"};
static const char *const months[] = {"January",   "February", "March",    "April",
                                     "May",       "June",     "July",     "August",
                                     "September", "October",  "November", "December"};

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), for any year. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

typedef struct tparts {
    int64_t year;
    int month, day, hour, min, sec, wday, yday;
    int64_t nsec;
} tparts_t;

static void split_ns(double ns, int64_t offset_s, tparts_t *t)
{
    int64_t total = (int64_t)floor(ns / 1e9) + offset_s;
    double frac = ns - floor(ns / 1e9) * 1e9;
    int64_t days = total >= 0 ? total / 86400 : -((-total + 86399) / 86400);
    int64_t secs = total - days * 86400;
    civil_from_days(days, &t->year, &t->month, &t->day);
    t->hour = (int)(secs / 3600);
    t->min = (int)(secs / 60 % 60);
    t->sec = (int)(secs % 60);
    t->nsec = (int64_t)frac;
    t->wday = (int)(((days % 7) + 11) % 7);
    t->yday = (int)(days - days_from_civil(t->year, 1, 1)) + 1;
}

/* The ns and zone offset of an argument `ns` or `[ns, "tz"]`. */
static bool ns_arg(rego_eval_t *ev, const char *fn, rv_t *a, double *ns, int64_t *off)
{
    *off = 0;
    if (a->kind == REGO_NUMBER) {
        *ns = a->num;
        if (*ns < NS_MIN || *ns > NS_MAX) {
            rego__bi_err(ev, "%s: timestamp too big", fn);
            return false;
        }
        return true;
    }
    if (a->kind == REGO_ARRAY && a->len == 2 && a->a[0]->kind == REGO_NUMBER &&
        a->a[1]->kind == REGO_STRING) {
        const rv_t *tz = a->a[1];
        *ns = a->a[0]->num;
        if (tz->len == 0 || strcmp(tz->str, "UTC") == 0 || strcmp(tz->str, "Local") == 0)
            return true;
        rego__bi_err(ev, "%s: unknown time zone %s", fn, tz->str);
        return false;
    }
    rego__type_err(ev, fn, 1, "one of {number, array}", a);
}

static rv_t *bi_now_ns(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)args;
    (void)n;
    return rego__num(A, (double)ev->now_ns);
}

static int digits(const char **p, const char *e, int min, int max, int64_t *out)
{
    int64_t v = 0;
    int k = 0;
    while (*p < e && k < max && **p >= '0' && **p <= '9') {
        v = v * 10 + (**p - '0');
        (*p)++;
        k++;
    }
    if (k < min)
        return -1;
    *out = v;
    return k;
}

/* Parses RFC 3339 with optional fractional seconds; returns false when malformed. */
static bool parse_rfc3339(const char *s, size_t n, double *out, bool *range_err)
{
    const char *p = s, *e = s + n;
    int64_t y, mo, d, h, mi, se, frac = 0, oh = 0, om = 0;
    int fd = 0, sign = 0;
    *range_err = false;
    if (digits(&p, e, 4, 4, &y) < 0 || p >= e || *p++ != '-' || digits(&p, e, 2, 2, &mo) < 0 ||
        p >= e || *p++ != '-' || digits(&p, e, 2, 2, &d) < 0 || p >= e || (*p != 'T' && *p != 't'))
        return false;
    p++;
    if (digits(&p, e, 2, 2, &h) < 0 || p >= e || *p++ != ':' || digits(&p, e, 2, 2, &mi) < 0 ||
        p >= e || *p++ != ':' || digits(&p, e, 2, 2, &se) < 0)
        return false;
    if (p < e && *p == '.') {
        p++;
        fd = digits(&p, e, 1, 9, &frac);
        if (fd < 0)
            return false;
        for (int i = fd; i < 9; i++)
            frac *= 10;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < e && (*p == '+' || *p == '-')) {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (digits(&p, e, 2, 2, &oh) < 0 || p >= e || *p++ != ':' || digits(&p, e, 2, 2, &om) < 0)
            return false;
    } else {
        return false;
    }
    if (p != e || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return false;
    int64_t secs =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60);
    /* int64 nanoseconds cover 1677-09-21T00:12:43.145224192Z .. 2262-04-11T23:47:16.854775807Z */
    if (secs < -9223372037LL || secs > 9223372036LL ||
        (secs == -9223372037LL && frac < 145224192) || (secs == 9223372036LL && frac > 854775807)) {
        *range_err = true;
        return false;
    }
    *out = (double)secs * 1e9 + (double)frac;
    return true;
}

static rv_t *bi_parse_rfc3339_ns(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double ns;
    bool range;
    (void)n;
    if (args[0]->kind != REGO_STRING)
        rego__type_err(ev, "time.parse_rfc3339_ns", 1, "string", args[0]);
    if (!parse_rfc3339(args[0]->str, args[0]->len, &ns, &range))
        return rego__bi_err(ev,
                            range ? "time.parse_rfc3339_ns: time outside of valid range"
                                  : "time.parse_rfc3339_ns: parsing time \"%s\" failed",
                            args[0]->str);
    return rego__num(A, ns);
}

/* Go layouts: the reference time Mon Jan 2 15:04:05 MST 2006 written in the wanted form. */
static bool parse_layout(const rv_t *layout, const rv_t *value, double *out, bool *range_err)
{
    const char *l = layout->str, *le = l + layout->len, *v = value->str, *ve = v + value->len;
    int64_t y = 1, mo = 1, d = 1, h = 0, mi = 0, se = 0, frac = 0, off = 0, tmp;
    bool pm = false, has_pm = false;
    *range_err = false;
    if (strcmp(layout->str, "2006-01-02T15:04:05Z07:00") == 0 ||
        strcmp(layout->str, "2006-01-02T15:04:05.999999999Z07:00") == 0)
        return parse_rfc3339(value->str, value->len, out, range_err);
    while (l < le) {
#define LIT(s) (le - l >= (long)strlen(s) && memcmp(l, s, strlen(s)) == 0)
        if (LIT("2006")) {
            if (digits(&v, ve, 4, 4, &y) < 0)
                return false;
            l += 4;
        } else if (LIT("January") || LIT("Jan")) {
            size_t ln = LIT("January") ? 7 : 3;
            bool ok = false;
            for (int i = 0; i < 12 && !ok; i++) {
                size_t ml = ln == 3 ? 3 : strlen(months[i]);
                if ((size_t)(ve - v) >= ml && strncasecmp(v, months[i], ml) == 0) {
                    mo = i + 1;
                    v += ml;
                    ok = true;
                }
            }
            if (!ok)
                return false;
            l += ln;
        } else if (LIT("Monday") || LIT("Mon")) {
            size_t ln = LIT("Monday") ? 6 : 3;
            bool ok = false;
            for (int i = 0; i < 7 && !ok; i++) {
                size_t ml = ln == 3 ? 3 : strlen(weekdays[i]);
                if ((size_t)(ve - v) >= ml && strncasecmp(v, weekdays[i], ml) == 0) {
                    v += ml;
                    ok = true;
                }
            }
            if (!ok)
                return false;
            l += ln;
        } else if (LIT("01") || LIT("02") || LIT("15") || LIT("04") || LIT("05") || LIT("03")) {
            char c = l[1];
            if (digits(&v, ve, 2, 2, &tmp) < 0)
                return false;
            if (l[0] == '0' && c == '1')
                mo = tmp;
            else if (l[0] == '0' && c == '2')
                d = tmp;
            else if (l[0] == '1')
                h = tmp;
            else if (c == '4')
                mi = tmp;
            else if (c == '5')
                se = tmp;
            else
                h = tmp;
            l += 2;
        } else if (LIT("_2")) {
            if (v < ve && *v == ' ')
                v++;
            if (digits(&v, ve, 1, 2, &d) < 0)
                return false;
            l += 2;
        } else if (*l == '1' || *l == '2' || *l == '3' || *l == '4' || *l == '5') {
            char c = *l;
            if (digits(&v, ve, 1, 2, &tmp) < 0)
                return false;
            if (c == '1')
                mo = tmp;
            else if (c == '2')
                d = tmp;
            else if (c == '3')
                h = tmp;
            else if (c == '4')
                mi = tmp;
            else
                se = tmp;
            l++;
        } else if (LIT("PM") || LIT("pm")) {
            has_pm = true;
            if (ve - v < 2)
                return false;
            pm = (v[0] == 'P' || v[0] == 'p');
            v += 2;
            l += 2;
        } else if (LIT("Z07:00") || LIT("-07:00") || LIT("Z0700") || LIT("-0700")) {
            bool z = *l == 'Z', colon = l[3] == ':' || l[4] == ':';
            l += colon ? 6 : 5;
            if (z && v < ve && *v == 'Z') {
                v++;
                continue;
            }
            if (v >= ve || (*v != '+' && *v != '-'))
                return false;
            int sign = *v == '-' ? -1 : 1;
            int64_t oh, om;
            v++;
            if (digits(&v, ve, 2, 2, &oh) < 0)
                return false;
            if (colon && (v >= ve || *v++ != ':'))
                return false;
            if (digits(&v, ve, 2, 2, &om) < 0)
                return false;
            off = sign * (oh * 3600 + om * 60);
        } else if (LIT("MST")) {
            while (v < ve && *v >= 'A' && *v <= 'Z')
                v++;
            l += 3;
        } else if (*l == '.' && l + 1 < le && (l[1] == '0' || l[1] == '9')) {
            l++;
            while (l < le && (*l == '0' || *l == '9'))
                l++;
            if (v < ve && *v == '.') {
                v++;
                int fd = digits(&v, ve, 1, 9, &frac);
                for (int i = fd; i < 9; i++)
                    frac *= 10;
            }
        } else {
            if (v >= ve || *v != *l)
                return false;
            v++;
            l++;
        }
#undef LIT
    }
    if (v != ve)
        return false;
    if (has_pm && pm && h < 12)
        h += 12;
    if (has_pm && !pm && h == 12)
        h = 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59)
        return false;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    if (secs < -9223372037LL || secs > 9223372036LL) {
        *range_err = true;
        return false;
    }
    *out = (double)secs * 1e9 + (double)frac;
    return true;
}

static rv_t *bi_parse_ns(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double ns;
    bool range;
    (void)n;
    if (args[0]->kind != REGO_STRING)
        rego__type_err(ev, "time.parse_ns", 1, "string", args[0]);
    if (args[1]->kind != REGO_STRING)
        rego__type_err(ev, "time.parse_ns", 2, "string", args[1]);
    if (!parse_layout(args[0], args[1], &ns, &range))
        return rego__bi_err(ev,
                            range ? "time.parse_ns: time outside of valid range"
                                  : "time.parse_ns: parsing time \"%s\" failed",
                            args[1]->str);
    return rego__num(A, ns);
}

static rv_t *bi_parse_duration_ns(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    if (args[0]->kind != REGO_STRING)
        rego__type_err(ev, "time.parse_duration_ns", 1, "string", args[0]);
    const char *p = args[0]->str, *e = p + args[0]->len;
    double total = 0;
    int sign = 1;
    if (p < e && (*p == '-' || *p == '+')) {
        sign = *p == '-' ? -1 : 1;
        p++;
    }
    if (p == e)
        return rego__bi_err(ev, "time: invalid duration \"%s\"", args[0]->str);
    if (e - p == 1 && *p == '0')
        return rego__num(A, 0);
    while (p < e) {
        const char *start = p;
        while (p < e && ((*p >= '0' && *p <= '9') || *p == '.'))
            p++;
        if (p == start)
            return rego__bi_err(ev, "time: invalid duration \"%s\"", args[0]->str);
        char num[64];
        size_t nl = (size_t)(p - start) < sizeof(num) - 1 ? (size_t)(p - start) : sizeof(num) - 1;
        memcpy(num, start, nl);
        num[nl] = '\0';
        double v = strtod(num, NULL);
        const char *u = p;
        while (p < e && !((*p >= '0' && *p <= '9') || *p == '.'))
            p++;
        size_t ul = (size_t)(p - u);
        double mult;
        if (ul == 2 && memcmp(u, "ns", 2) == 0)
            mult = 1;
        else if ((ul == 2 && memcmp(u, "us", 2) == 0) ||
                 (ul == 3 && memcmp(u, "\xc2\xb5s", 3) == 0) ||
                 (ul == 3 && memcmp(u, "\xce\xbcs", 3) == 0))
            mult = 1e3;
        else if (ul == 2 && memcmp(u, "ms", 2) == 0)
            mult = 1e6;
        else if (ul == 1 && *u == 's')
            mult = 1e9;
        else if (ul == 1 && *u == 'm')
            mult = 60e9;
        else if (ul == 1 && *u == 'h')
            mult = 3600e9;
        else
            return rego__bi_err(ev, "time: unknown unit in duration \"%s\"", args[0]->str);
        total += v * mult;
    }
    return rego__num(A, sign * total);
}

static rv_t *bi_date(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double ns;
    int64_t off;
    tparts_t t;
    (void)n;
    if (!ns_arg(ev, "time.date", args[0], &ns, &off))
        return NULL;
    split_ns(ns, off, &t);
    rv_t *r = rego__arr(A, 3);
    rego__arr_push(A, r, rego__num(A, (double)t.year));
    rego__arr_push(A, r, rego__num(A, t.month));
    rego__arr_push(A, r, rego__num(A, t.day));
    return r;
}

static rv_t *bi_clock(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double ns;
    int64_t off;
    tparts_t t;
    (void)n;
    if (!ns_arg(ev, "time.clock", args[0], &ns, &off))
        return NULL;
    split_ns(ns, off, &t);
    rv_t *r = rego__arr(A, 3);
    rego__arr_push(A, r, rego__num(A, t.hour));
    rego__arr_push(A, r, rego__num(A, t.min));
    rego__arr_push(A, r, rego__num(A, t.sec));
    return r;
}

static rv_t *bi_weekday(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double ns;
    int64_t off;
    tparts_t t;
    (void)n;
    if (!ns_arg(ev, "time.weekday", args[0], &ns, &off))
        return NULL;
    split_ns(ns, off, &t);
    return rego__str_own(A, weekdays[t.wday], strlen(weekdays[t.wday]));
}

static int days_in(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

static rv_t *bi_add_date(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    tparts_t t;
    (void)n;
    for (int i = 0; i < 4; i++)
        if (args[i]->kind != REGO_NUMBER)
            rego__type_err(ev, "time.add_date", i + 1, "number", args[i]);
    split_ns(args[0]->num, 0, &t);
    /* Go's AddDate: add to the fields, then normalise (Oct 31 + 1 month = Dec 1). */
    int64_t y = t.year + (int64_t)args[1]->num;
    int64_t m = t.month + (int64_t)args[2]->num;
    int64_t d = t.day + (int64_t)args[3]->num;
    y += (m - 1 >= 0 ? (m - 1) / 12 : -((12 - m) / 12));
    m = ((m - 1) % 12 + 12) % 12 + 1;
    int64_t days = days_from_civil(y, m, 1) + d - 1;
    double secs = (double)days * 86400 + t.hour * 3600 + t.min * 60 + t.sec;
    double ns = secs * 1e9 + (double)t.nsec;
    if (secs < -9223372037.0 || secs > 9223372036.0 || ns < NS_MIN || ns > NS_MAX)
        return rego__bi_err(ev, "time.add_date: time outside of valid range");
    return rego__num(A, ns);
}

static rv_t *bi_diff(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double a, b;
    int64_t oa, ob;
    tparts_t x, y;
    (void)n;
    if (!ns_arg(ev, "time.diff", args[0], &a, &oa) || !ns_arg(ev, "time.diff", args[1], &b, &ob))
        return NULL;
    if (a > b) {
        double t = a;
        a = b;
        b = t;
    }
    split_ns(a, oa, &x);
    split_ns(b, ob, &y);
    int64_t year = y.year - x.year;
    int64_t month = y.month - x.month, day = y.day - x.day, hour = y.hour - x.hour,
            min = y.min - x.min, sec = y.sec - x.sec;
    if (sec < 0) {
        sec += 60;
        min--;
    }
    if (min < 0) {
        min += 60;
        hour--;
    }
    if (hour < 0) {
        hour += 24;
        day--;
    }
    if (day < 0) {
        /* days in the month before y's month */
        int pm = y.month == 1 ? 12 : y.month - 1;
        int64_t py = y.month == 1 ? y.year - 1 : y.year;
        day += days_in(py, pm);
        month--;
    }
    if (month < 0) {
        month += 12;
        year--;
    }
    rv_t *r = rego__arr(A, 6);
    int64_t vals[6] = {year, month, day, hour, min, sec};
    for (int i = 0; i < 6; i++)
        rego__arr_push(A, r, rego__num(A, (double)vals[i]));
    return r;
}

static rv_t *bi_format(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double ns;
    int64_t off = 0;
    tparts_t t;
    char out[96];
    (void)n;
    rv_t *a = args[0];
    if (a->kind == REGO_ARRAY && a->len == 3) {
        rv_t two = *a;
        two.len = 2;
        if (!ns_arg(ev, "time.format", &two, &ns, &off))
            return NULL;
        if (a->a[2]->kind != REGO_STRING || strcmp(a->a[2]->str, "2006-01-02T15:04:05Z07:00") != 0)
            return rego__bi_err(ev, "time.format: only the RFC 3339 layout is supported");
    } else if (!ns_arg(ev, "time.format", a, &ns, &off)) {
        return NULL;
    }
    split_ns(ns, off, &t);
    int len = snprintf(out, sizeof(out), "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)t.year,
                       t.month, t.day, t.hour, t.min, t.sec);
    if (t.nsec > 0 && !(a->kind == REGO_ARRAY && a->len == 3)) {
        char frac[24];
        snprintf(frac, sizeof(frac), ".%09lld", (long long)t.nsec);
        size_t fl = strlen(frac);
        while (fl > 1 && frac[fl - 1] == '0')
            frac[--fl] = '\0';
        len += snprintf(out + len, sizeof(out) - (size_t)len, "%s", frac);
    }
    snprintf(out + len, sizeof(out) - (size_t)len, "Z");
    return rego__str(A, out, strlen(out));
}

const rego__builtin_t rego__bi_time[] = {
    {"time.now_ns", 0, bi_now_ns},
    {"time.parse_rfc3339_ns", 1, bi_parse_rfc3339_ns},
    {"time.parse_ns", 2, bi_parse_ns},
    {"time.parse_duration_ns", 1, bi_parse_duration_ns},
    {"time.date", 1, bi_date},
    {"time.clock", 1, bi_clock},
    {"time.weekday", 1, bi_weekday},
    {"time.add_date", 4, bi_add_date},
    {"time.diff", 2, bi_diff},
    {"time.format", 1, bi_format},
    {NULL, 0, NULL},
};
