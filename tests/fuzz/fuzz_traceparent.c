/*
 * fuzz_traceparent — the W3C traceparent parser, the label sanitiser and the pathMatching matcher
 * on arbitrary bytes.
 *
 * Invariants checked beyond "no crash, no leak":
 * - a failed parse writes nothing;
 * - a parsed traceparent has non-zero ids, and formatting them gives back the input's first 52
 *   bytes (lower-case hex), so what we propagate is what we accepted;
 * - a sanitised label value is valid UTF-8 with no NUL inside and fits its buffer;
 * - pathMatching never matches a path with fewer segments than the pattern's literal part;
 * - all memory taken through base/alloc is given back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "observe/obs_int.h"
#include "fuzz.h"

static bool valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t need = p[i] < 0x80                    ? 1
                      : p[i] >= 0xc2 && p[i] <= 0xdf ? 2
                      : p[i] >= 0xe0 && p[i] <= 0xef ? 3
                      : p[i] >= 0xf0 && p[i] <= 0xf4 ? 4
                                                     : 0;
        if (need == 0 || i + need > n)
            return false;
        for (size_t k = 1; k < need; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += need;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t before = mem_used();
    const char *s = (const char *)data;
    uint8_t tid[16], sid[8], fl = 0xee;
    char label[OBS_LABEL_MAX];

    memset(tid, 0xee, sizeof(tid));
    memset(sid, 0xee, sizeof(sid));
    if (obs_traceparent_parse(s, size, tid, sid, &fl) == 0) {
        obs_trace_t t = {.sampled = (fl & 1) != 0};
        char out[56];
        uint8_t ztid[16] = {0}, zsid[8] = {0};
        CHECK(memcmp(tid, ztid, 16) != 0 && memcmp(sid, zsid, 8) != 0);
        memcpy(t.trace_id, tid, 16);
        memcpy(t.span_id, sid, 8);
        obs_traceparent_format(&t, out);
        CHECK(size >= 55 && memcmp(out + 2, s + 2, 51) == 0);
    } else {
        CHECK(fl == 0xee && tid[0] == 0xee && sid[7] == 0xee);
    }

    obs__label_copy(label, sizeof(label), s, size);
    CHECK(strlen(label) < sizeof(label));
    CHECK(valid_utf8((const unsigned char *)label, strlen(label)));

    /* First line = pattern, the rest = path. */
    {
        const char *nl = memchr(s, '\n', size);
        if (nl != NULL) {
            char pat[256];
            size_t pl = (size_t)(nl - s);
            if (pl < sizeof(pat) && memchr(s, '\0', pl) == NULL) {
                memcpy(pat, s, pl);
                pat[pl] = '\0';
                if (obs__pattern_match(pat, nl + 1, size - pl - 1) && strchr(pat, '{') == NULL)
                    CHECK(size - pl - 1 == pl && memcmp(pat, nl + 1, pl) == 0);
            }
        }
    }
    CHECK(mem_used() == before);
    return 0;
}
