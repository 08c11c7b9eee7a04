/*
 * W3C Trace Context (traceparent) parsing and formatting, the sampler and the per-worker span
 * rings. Nothing here allocates or locks.
 */
#include <string.h>

#include "observe/obs_int.h"

/* Lower-case hex digit values + 1; 0 for every other byte (W3C: upper-case hex is invalid). */
static const uint8_t hex_table[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

static int hexval(char c)
{
    return (int)hex_table[(unsigned char)c] - 1;
}

static bool hex_bytes(const char *p, uint8_t *out, size_t n)
{
    uint8_t any = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t hi = hex_table[(unsigned char)p[2 * i]],
                lo = hex_table[(unsigned char)p[2 * i + 1]];
        bad |= (uint8_t)(hi == 0) | (uint8_t)(lo == 0);
        out[i] = (uint8_t)(((unsigned)hi - 1u) << 4 | ((unsigned)lo - 1u));
        any |= out[i];
    }
    return !bad && any != 0; /* all-zero ids are invalid */
}

int obs_traceparent_parse(const char *v, size_t n, uint8_t trace_id[16], uint8_t span_id[8],
                          uint8_t *flags)
{
    uint8_t ver, fl, tid[16], sid[8];

    /* "vv-" + 32 + "-" + 16 + "-" + 2 = 55 bytes. */
    if (v == NULL || n < 55)
        return ERR_PARSE;
    if (hexval(v[0]) < 0 || hexval(v[1]) < 0)
        return ERR_PARSE;
    ver = (uint8_t)(hexval(v[0]) << 4 | hexval(v[1]));
    if (ver == 0xff || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return ERR_PARSE;
    /* Version 00 is exactly 55 bytes; a later version may append "-..." fields. */
    if ((ver == 0 && n != 55) || (ver != 0 && n > 55 && v[55] != '-'))
        return ERR_PARSE;
    if (!hex_bytes(v + 3, tid, 16) || !hex_bytes(v + 36, sid, 8))
        return ERR_PARSE;
    if (hexval(v[53]) < 0 || hexval(v[54]) < 0)
        return ERR_PARSE;
    fl = (uint8_t)(hexval(v[53]) << 4 | hexval(v[54]));
    memcpy(trace_id, tid, 16);
    memcpy(span_id, sid, 8);
    *flags = fl;
    return 0;
}

static void hex_out(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
}

void obs_traceparent_format(const obs_trace_t *t, char out[56])
{
    memcpy(out, "00-", 3);
    hex_out(out + 3, t->trace_id, 16);
    out[35] = '-';
    hex_out(out + 36, t->span_id, 8);
    out[52] = '-';
    out[53] = '0';
    out[54] = t->sampled ? '1' : '0';
    out[55] = '\0';
}

bool obs_ratio_sampled(const uint8_t trace_id[16], double rate)
{
    uint64_t x = 0;
    if (rate >= 1.0)
        return true;
    if (rate <= 0.0)
        return false;
    /* OpenTelemetry's TraceIDRatioBased: the low 8 bytes, shifted right once, below rate * 2^63. */
    for (int i = 8; i < 16; i++)
        x = x << 8 | trace_id[i];
    return (x >> 1) < (uint64_t)(rate * 9223372036854775808.0);
}

/* xorshift64*: ids need to be unique, not secret; each worker has its own state. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static void fill_random(uint64_t *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = next_rand(s);
        for (size_t k = 0; k < 8 && i + k < n; k++)
            out[i + k] = (uint8_t)(r >> (8 * k));
    }
}

void obs__trace_begin(obs_t *o, obs_trace_t *t, int worker, const net_head_t *in)
{
    const net_header_t *tp = in ? net_head_get(in, "traceparent") : NULL;
    uint64_t *rng = o->rng[worker % OBS_MAX_WORKERS];
    uint8_t flags = 0;

    memset(t, 0, sizeof(*t));
    if (tp != NULL && net_head_count(in, "traceparent") == 1 &&
        obs_traceparent_parse(tp->value, tp->value_len, t->trace_id, t->parent_id, &flags) == 0) {
        t->has_parent = true;
        t->sampled = (flags & 1) != 0; /* ParentBased: the caller decided */
    } else {
        memset(t->parent_id, 0, sizeof(t->parent_id));
        do
            fill_random(rng, t->trace_id, 16);
        while (t->trace_id[0] == 0 && t->trace_id[15] == 0);
        t->sampled = obs_ratio_sampled(t->trace_id, o->rate);
    }
    do
        fill_random(rng, t->span_id, 8);
    while (t->span_id[0] == 0 && t->span_id[7] == 0);
}

obs_span_t *obs__span_reserve(obs_t *o, int worker)
{
    obs_ring_t *r = &o->rings[worker % OBS_MAX_WORKERS];
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    static const char *const dropped[] = {"dropped"};

    if (r->cap == 0 || head - tail >= r->cap) {
        obs__count(o, worker, OBS_F_SPANS, dropped, 1); /* never block the request for telemetry */
        return NULL;
    }
    return &r->slots[head % r->cap];
}

void obs__span_commit(obs_t *o, int worker)
{
    obs_ring_t *r = &o->rings[worker % OBS_MAX_WORKERS];
    atomic_store_explicit(&r->head, atomic_load_explicit(&r->head, memory_order_relaxed) + 1,
                          memory_order_release);
}

void obs__span_push(obs_t *o, int worker, const obs_span_t *s)
{
    obs_span_t *slot = obs__span_reserve(o, worker);
    if (slot != NULL) {
        *slot = *s;
        obs__span_commit(o, worker);
    }
}

size_t obs__ring_pop(obs_ring_t *r, obs_span_t *out, size_t max)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t n = 0;

    while (tail + n < head && n < max) {
        out[n] = r->slots[(tail + n) % r->cap];
        n++;
    }
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    return n;
}
