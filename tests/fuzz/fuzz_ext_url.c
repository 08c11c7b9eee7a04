/*
 * fuzz_ext_url — the parser of full-URL invoke targets and HTTPEndpoint base URLs
 * (invoke__ext_parse_url) on arbitrary bytes.
 *
 * Invariants checked beyond "no crash": on success the host is non-empty and free of controls,
 * spaces, '@', '/', '?' and '#'; the port is 1..65535; the authority starts with the host (or
 * "[" + host) and is a prefix of what followed the scheme; the path lies inside the input and
 * starts with '/' when not empty and does not end with '/'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "invoke/invoke_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = mem_strndup((const char *)data, size); /* stops at an embedded NUL */
    invoke_ext_target_t t = {0};
    err_detail_t d = {{0}};
    size_t n = strlen(url), skip;

    if (invoke__ext_parse_url(url, &t, &d) == 0) {
        skip = t.tls_on ? 8 : 7;
        CHECK(t.host[0] != '\0');
        for (const char *p = t.host; *p; p++)
            CHECK((unsigned char)*p > 0x20 && *p != 0x7f && strchr("@/?#", *p) == NULL);
        CHECK(t.port >= 1 && t.port <= 65535);
        CHECK(strncmp(url + skip, t.authority, strlen(t.authority)) == 0);
        CHECK(strncmp(t.authority, t.host, strlen(t.host)) == 0 ||
              (t.authority[0] == '[' && strncmp(t.authority + 1, t.host, strlen(t.host)) == 0));
        CHECK(t.path >= url && t.path + t.path_len <= url + n);
        CHECK(t.path_len == 0 || (t.path[0] == '/' && t.path[t.path_len - 1] != '/'));
    } else {
        CHECK(d.msg[0] != '\0');
    }
    mem_free(url);
    return 0;
}
