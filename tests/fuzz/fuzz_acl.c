/*
 * fuzz_acl — the compiled operation trie against a plain reference of Dapr's algorithm.
 *
 * The input chooses up to 8 operation names and a method, all over a six-byte alphabet (a, b,
 * slash, star, dot, A), so that wildcards, prefixes, duplicates and empty segments meet often. The
 * names are compiled through a real Configuration (YAML) for an HTTP and a gRPC app, and the method
 * is checked. The reference below follows pkg/config/acl_trie.go literally: it splits into a
 * segment array, compares "/"-prefixed strings, and matches globs with a dynamic-programming table,
 * where the ACL streams, compares bare segments and matches globs greedily. Invariants: both pick
 * the same rule (or none), for both protocols; no leak.
 *
 * Input layout: byte 0 → number of names (1..8); per name a length byte (0..11) and that many
 * bytes; the rest (up to 200 bytes) is the method. Every byte maps onto the alphabet.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "policy/acl.h"
#include "resources/resources.h"
#include "fuzz.h"

#define MAX_NAMES 8
#define MAX_NAME 12
#define MAX_METHOD 200
#define MAX_SEGS (MAX_METHOD + 2)
#define MAX_NODES (MAX_NAMES * (MAX_NAME + 2) + 1)

static const char alphabet[] = {'a', 'b', '/', '*', '.', 'A', '\0'};

/* ---- the reference: Dapr's trie, written out plainly ---------------------------------------- */

struct ref_node {
    char text[MAX_NAME + 3]; /* "/" + segment */
    int data;                /* rule index or -1 */
    int child[MAX_NODES];    /* in insertion order */
    int nchild;
};

static struct ref_node nodes[MAX_NODES];
static int nnodes;

static int ref_new(const char *text, size_t n)
{
    struct ref_node *nd = &nodes[nnodes];

    memcpy(nd->text, text, n);
    nd->text[n] = '\0';
    nd->data = -1;
    nd->nchild = 0;
    return nnodes++;
}

/* isMatch: '*' matches any run, by the table Dapr allocates. */
static bool ref_glob(const char *t, const char *p)
{
    static bool m[MAX_METHOD + 4][MAX_NAME + 4];
    size_t tl = strlen(t), pl = strlen(p);

    memset(m, 0, sizeof(m));
    m[0][0] = true;
    for (size_t j = 1; j <= pl && p[j - 1] == '*'; j++)
        m[0][j] = true;
    for (size_t i = 1; i <= tl; i++) {
        for (size_t j = 1; j <= pl; j++) {
            if (p[j - 1] == '*')
                m[i][j] = m[i][j - 1] || m[i - 1][j];
            else if (t[i - 1] == p[j - 1])
                m[i][j] = m[i - 1][j - 1];
        }
    }
    return m[tl][pl];
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int ref_find(int node, const char *text, bool is_end)
{
    for (int k = 0; k < nodes[node].nchild; k++) {
        int c = nodes[node].child[k];
        if (strcmp(nodes[c].text, text) == 0)
            return c;
        if (strcmp(nodes[c].text, "/*") == 0) {
            if (is_end)
                return c;
            continue;
        }
        if (strcmp(nodes[c].text, "/**") == 0)
            return c;
        if (ref_glob(text, nodes[c].text))
            return c;
    }
    return -1;
}

/* Splits @p s on '/' into "/"-prefixed parts, skipping the part before the first '/'. */
static int ref_split(const char *s, char parts[][MAX_METHOD + 3])
{
    int n = 0;
    const char *p = strchr(s, '/');

    while (p != NULL) {
        const char *q = strchr(p + 1, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        memcpy(parts[n], p, len);
        parts[n][len] = '\0';
        n++;
        p = q;
    }
    return n;
}

static void ref_put(const char *name, int rule)
{
    static char parts[MAX_SEGS][MAX_METHOD + 3];
    int n = ref_split(name, parts), cur = 0;

    for (int i = 0; i < n; i++) {
        int found = -1;
        for (int k = 0; k < nodes[cur].nchild; k++) {
            if (strcmp(nodes[nodes[cur].child[k]].text, parts[i]) == 0)
                found = nodes[cur].child[k];
        }
        if (found < 0) {
            found = ref_new(parts[i], strlen(parts[i]));
            nodes[cur].child[nodes[cur].nchild++] = found;
            if (i == n - 1)
                nodes[found].data = rule;
            cur = found;
        } else if (i == n - 1) {
            if (nodes[found].data < 0)
                nodes[found].data = rule;
        } else {
            cur = found;
        }
    }
}

static int ref_search(const char *op)
{
    static char parts[MAX_SEGS][MAX_METHOD + 3];
    int n = ref_split(op, parts), cur = 0;

    for (int i = 0; i < n; i++) {
        bool is_end = i == n - 1;
        cur = ref_find(cur, parts[i], is_end);
        if (cur < 0)
            return -1;
        if (nodes[cur].data >= 0) {
            if (!is_end && ends_with(nodes[cur].text, "/*") && !ends_with(nodes[cur].text, "/**"))
                continue;
            return nodes[cur].data;
        } else if (is_end) {
            cur = ref_find(cur, "/*", is_end);
            if (cur >= 0 && nodes[cur].data >= 0)
                return nodes[cur].data;
            return -1;
        }
    }
    return -1;
}

/* ---- the harness ---------------------------------------------------------------------------- */

static void fold(char *s, bool http)
{
    for (; http && *s; s++) {
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
    }
}

static void run(char names[][MAX_NAME + 2], int n, const char *method, bool http)
{
    static char compiled[MAX_NAMES][MAX_NAME + 3], op[MAX_METHOD + 3];
    res_config_t *cfg = NULL;
    acl_t *acl = NULL;
    err_detail_t d = {{0}};
    spiffe_id_t *id = mem_alloc(sizeof(*id));
    acl_decision_t dec;
    buf_t y;
    int want, rc = 0;

    buf_init(&y, 64 * 1024);
    rc = buf_append_str(&y, "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec:\n"
                            "  accessControl:\n    defaultAction: deny\n    policies:\n"
                            "    - appId: a\n      namespace: n\n      trustDomain: t\n"
                            "      defaultAction: deny\n      operations:\n");
    nnodes = 0;
    ref_new("/", 1);
    for (int i = 0; i < n && rc == 0; i++) {
        rc = buf_printf(&y, "      - {name: '%s', httpVerb: ['*'], action: allow}\n", names[i]);
        snprintf(compiled[i], sizeof(compiled[i]), "%s%.*s", names[i][0] == '/' ? "" : "/",
                 MAX_NAME + 1, names[i]);
        fold(compiled[i], http);
        ref_put(compiled[i], i);
    }
    CHECK(rc == 0);
    CHECK(res_config_parse(NULL, "fuzz.yaml", buf_ptr(&y), y.len, 0, &cfg, &d) == 0);
    CHECK(acl_compile(cfg, http ? ACL_PROTO_HTTP : ACL_PROTO_GRPC, &acl, &d) == 0);
    CHECK(spiffe_id_from_parts("t", "n", "a", id) == 0);

    snprintf(op, sizeof(op), "%s%s", method[0] == '/' ? "" : "/", method);
    fold(op, http);
    want = ref_search(op);
    acl_check(acl, id, method, strlen(method), ACL_VERB_GET, &dec);
    if (want < 0) {
        CHECK(dec.operation == NULL && dec.reason == ACL_REASON_NO_RULE && !dec.allowed);
    } else {
        CHECK(dec.operation != NULL && strcmp(dec.operation, compiled[want]) == 0);
        CHECK(dec.allowed);
    }
    acl_unref(acl);
    res_config_free(cfg);
    buf_free(&y);
    mem_free(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char names[MAX_NAMES][MAX_NAME + 2], method[MAX_METHOD + 1];
    size_t before = mem_used(), i = 1, m = 0;
    int n;

    if (size == 0)
        return 0;
    n = data[0] % MAX_NAMES + 1;
    for (int k = 0; k < n; k++) {
        size_t len = i < size ? data[i++] % MAX_NAME : 0, j;
        for (j = 0; j < len && i < size; j++)
            names[k][j] = alphabet[data[i++] % (sizeof(alphabet) - 1)];
        names[k][j] = '\0';
    }
    while (i < size && m < MAX_METHOD)
        method[m++] = alphabet[data[i++] % (sizeof(alphabet) - 1)];
    method[m] = '\0';
    run(names, n, method, true);
    run(names, n, method, false);
    CHECK(mem_used() == before);
    return 0;
}
