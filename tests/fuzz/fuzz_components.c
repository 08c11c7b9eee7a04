/*
 * fuzz_components — the Component / HTTPEndpoint loader on arbitrary bytes (one file, several
 * documents), for app "agent" in namespace "default".
 *
 * Invariants checked beyond "no crash, no leak":
 * - a failure always says why, starting with the file name;
 * - every loaded Component has a name, type, version "v1" or as given, the sidecar's namespace,
 *   a line ≥ 1, is found again by name, and its metadata answers for its own keys;
 * - every HTTPEndpoint has an http(s) base URL without a trailing '/', and is found by name;
 * - all memory taken through base/alloc is given back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "resources/component.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t before = mem_used();
    res_components_t *cs = NULL;
    err_detail_t d = {{0}};

    if (res_components_parse("fuzz.yaml", (const char *)data, size, "agent", "default", &cs, &d) <
        0) {
        CHECK(strncmp(d.msg, "fuzz.yaml", 9) == 0);
        CHECK(mem_used() == before);
        return 0;
    }
    for (size_t i = 0; i < res_components_count(cs); i++) {
        const res_component_t *c = res_components_at(cs, i);
        CHECK(c->name[0] != '\0' && c->type[0] != '\0' && c->version[0] != '\0');
        CHECK(strcmp(c->ns, "default") == 0 && c->line >= 1);
        CHECK(res_components_find(cs, c->name) == c);
        for (size_t j = 0; j < c->nmeta; j++)
            CHECK(res_component_meta(c, c->meta[j].name) != NULL);
    }
    for (size_t i = 0; i < res_components_endpoint_count(cs); i++) {
        const res_endpoint_t *e = res_components_endpoint_at(cs, i);
        size_t n = strlen(e->base_url);
        CHECK(strncmp(e->base_url, "http://", 7) == 0 || strncmp(e->base_url, "https://", 8) == 0);
        CHECK(n > 0 && e->base_url[n - 1] != '/');
        CHECK(res_components_endpoint(cs, e->name) == e);
    }
    res_components_free(cs);
    CHECK(mem_used() == before);
    return 0;
}
