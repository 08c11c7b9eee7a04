/*
 * fuzz_spiffe — the SPIFFE ID parser on arbitrary bytes, and the ACL's use of it.
 *
 * Invariants checked beyond "no crash, no leak":
 * - a failed parse writes nothing;
 * - a parsed ID copies the input exactly; its trust domain, namespace and app id obey the
 *   character rules, are non-empty and bounded; formatting them again gives a prefix of the input
 *   that ends at the input's end or at a '/', and parsing that prefix gives the same parts;
 * - acl_check_peer denies exactly the inputs the parser rejects, with ACL_REASON_BAD_IDENTITY;
 * - all memory taken through base/alloc is given back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "identity/spiffe.h"
#include "policy/acl.h"
#include "fuzz.h"

static bool all_in(const char *s, bool upper_ok)
{
    size_t n = strlen(s);

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                  c == '_' || (upper_ok && c >= 'A' && c <= 'Z');
        if (!ok)
            return false;
    }
    return true;
}

static bool dot_segment(const char *s)
{
    return strcmp(s, ".") == 0 || strcmp(s, "..") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static spiffe_id_t id, again;
    static char formatted[SPIFFE_ID_MAX + 1];
    const char *s = (const char *)data;
    acl_decision_t dec;
    size_t before = mem_used(), flen;
    int rc;

    memset(&id, 0xa5, sizeof(id));
    rc = spiffe_id_parse(s, size, &id);
    CHECK(rc == 0 || rc == ERR_IDENTITY_BAD_SPIFFE_ID);
    acl_check_peer(NULL, s, size, "m", 1, ACL_VERB_GET, NULL, &dec);
    if (rc < 0) {
        CHECK((unsigned char)id.uri[0] == 0xa5 && (unsigned char)id.app_id[0] == 0xa5);
        CHECK(!dec.allowed && dec.reason == ACL_REASON_BAD_IDENTITY);
        CHECK(mem_used() == before);
        return 0;
    }
    CHECK(dec.allowed && dec.reason == ACL_REASON_NO_ACL);
    CHECK(id.uri_len == size && size <= SPIFFE_ID_MAX && memcmp(id.uri, s, size) == 0);
    CHECK(id.uri[size] == '\0');
    CHECK(all_in(id.trust_domain, false) && strlen(id.trust_domain) <= SPIFFE_TRUST_DOMAIN_MAX);
    CHECK(all_in(id.ns, true) && !dot_segment(id.ns) && strlen(id.ns) <= SPIFFE_NAME_MAX);
    CHECK(all_in(id.app_id, true) && !dot_segment(id.app_id) &&
          strlen(id.app_id) <= SPIFFE_NAME_MAX);
    CHECK(spiffe_id_format(id.trust_domain, id.ns, id.app_id, formatted, sizeof(formatted)) == 0);
    flen = strlen(formatted);
    CHECK(flen <= size && memcmp(formatted, s, flen) == 0);
    CHECK(flen == size || s[flen] == '/');
    CHECK(spiffe_id_from_parts(id.trust_domain, id.ns, id.app_id, &again) == 0);
    CHECK(strcmp(again.trust_domain, id.trust_domain) == 0 && strcmp(again.ns, id.ns) == 0 &&
          strcmp(again.app_id, id.app_id) == 0 && strcmp(again.uri, formatted) == 0);
    CHECK(mem_used() == before);
    return 0;
}
