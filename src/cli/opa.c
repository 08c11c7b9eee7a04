/*
 * opa.c — `outrigger opa eval|test|bench`: the Rego engine of the sidecar, offline.
 *
 * eval: `opa eval`'s flags and JSON output (result[].expressions[].value, result[].bindings,
 * errors). test: runs OPA-format YAML conformance cases (cases[] with modules, data, input or
 * input_term, query, want_result / want_defined / want_error_code / want_error, strict_error,
 * sort_bindings) and prints pass/fail/skip counts per directory; the exit code depends only on
 * the thresholds given. bench: times one decision in a loop.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/str.h"
#include "cli/cli.h"
#include "rego/rego.h"

#define OPA_MAX_FILE_BYTES (16u * 1024 * 1024)
#define OPA_MAX_FILES 256

static int read_file(const char *path, buf_t *b)
{
    char chunk[65536];
    FILE *f = fopen(path, "rb");
    size_t n;
    int rc = 0;
    if (f == NULL)
        return ERR_IO;
    buf_init(b, OPA_MAX_FILE_BYTES);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if ((rc = buf_append(b, chunk, n)) < 0)
            break;
    fclose(f);
    if (rc == 0 && b->ptr == NULL)
        rc = buf_append(b, "", 0);
    return rc;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* ---- shared: loading policies and data ---- */

typedef struct loaded {
    rego_module_src_t mods[OPA_MAX_FILES];
    char *texts[OPA_MAX_FILES];
    size_t nmods;
    json_t *data;
} loaded_t;

static void merge_into(json_t *dst, json_t *src)
{
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        json_t *old = json_object_get(dst, k);
        if (old != NULL && json_is_object(old) && json_is_object(v))
            merge_into(old, v);
        else
            json_object_set(dst, k, v);
    }
}

static int load_path(loaded_t *l, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "outrigger opa: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        int rc = 0;
        if (d == NULL)
            return -1;
        while (rc == 0 && (e = readdir(d)) != NULL) {
            char sub[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            if (ends_with(sub, ".rego") || ends_with(sub, ".json"))
                rc = load_path(l, sub);
        }
        closedir(d);
        return rc;
    }
    buf_t b;
    if (read_file(path, &b) < 0) {
        fprintf(stderr, "outrigger opa: cannot read %s\n", path);
        buf_free(&b);
        return -1;
    }
    if (ends_with(path, ".json")) {
        json_error_t jerr;
        json_t *j = json_loadb(b.ptr, b.len, JSON_DECODE_INT_AS_REAL, &jerr);
        buf_free(&b);
        if (j == NULL || !json_is_object(j)) {
            fprintf(stderr, "outrigger opa: %s: %s\n", path,
                    j == NULL ? jerr.text : "not an object");
            json_decref(j);
            return -1;
        }
        if (l->data == NULL)
            l->data = json_object();
        merge_into(l->data, j);
        json_decref(j);
        return 0;
    }
    if (l->nmods == OPA_MAX_FILES) {
        buf_free(&b);
        fprintf(stderr, "outrigger opa: too many policy files\n");
        return -1;
    }
    l->texts[l->nmods] = buf_take(&b);
    l->mods[l->nmods].name = path;
    l->mods[l->nmods].text = l->texts[l->nmods];
    l->mods[l->nmods].len = strlen(l->texts[l->nmods]);
    l->nmods++;
    return 0;
}

static void loaded_free(loaded_t *l)
{
    for (size_t i = 0; i < l->nmods; i++)
        mem_free(l->texts[i]);
    json_decref(l->data);
}

static void print_error_json(const char *code, const char *msg)
{
    json_t *o = json_pack("{s:[{s:s,s:s}]}", "errors", "code", code != NULL ? code : "rego_error",
                          "message", msg);
    char *s = json_dumps(o, JSON_INDENT(2));
    printf("%s\n", s);
    free(s); /* checksrc: allow free (jansson allocates with malloc) */
    json_decref(o);
}

/* ---- eval ---- */

static void eval_usage(FILE *f)
{
    fprintf(f, "Usage: outrigger opa eval [-d FILE|DIR]... [-i FILE] [--format json|raw]\n"
               "                          [--strict-builtin-errors] [--v0-compatible] QUERY\n"
               "  -d, --data FILE   a .rego policy or .json data document (repeatable)\n"
               "  -i, --input FILE  the input document (JSON)\n"
               "  --v0-compatible   parse modules as Rego v0 unless they import rego.v1\n");
}

static int cmd_eval(int argc, char **argv)
{
    loaded_t l;
    const char *input_path = NULL, *query = NULL, *format = "json";
    bool strict = false, v0 = false;
    rego_policy_t *pol = NULL;
    rego_query_t *q = NULL;
    rego_eval_t *ev = NULL;
    err_detail_t d = {""};
    const char *code = NULL;
    int rc = 1;
    buf_t in;
    rego_compile_opts_t co = {.default_syntax = REGO_SYNTAX_V1};
    rego_eval_opts_t eo = {.strict_builtins = false};
    rego_result_t res = {0};
    json_t *out = NULL, *arr = NULL;
    char *txt = NULL;

    memset(&l, 0, sizeof(l));
    buf_init(&in, OPA_MAX_FILE_BYTES);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-d") == 0 || strcmp(a, "--data") == 0) && i + 1 < argc) {
            if (load_path(&l, argv[++i]) < 0)
                goto out;
        } else if ((strcmp(a, "-i") == 0 || strcmp(a, "--input") == 0) && i + 1 < argc) {
            input_path = argv[++i];
        } else if ((strcmp(a, "-f") == 0 || strcmp(a, "--format") == 0) && i + 1 < argc) {
            format = argv[++i];
        } else if (strncmp(a, "--format=", 9) == 0) {
            format = a + 9;
        } else if (strcmp(a, "--strict-builtin-errors") == 0) {
            strict = true;
        } else if (strcmp(a, "--v0-compatible") == 0) {
            v0 = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            eval_usage(stdout);
            rc = 0;
            goto out;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "outrigger opa eval: unknown flag %s\n", a);
            eval_usage(stderr);
            rc = CLI_EXIT_USAGE;
            goto out;
        } else if (query == NULL) {
            query = a;
        } else {
            eval_usage(stderr);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if (query == NULL) {
        eval_usage(stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    co.default_syntax = v0 ? REGO_SYNTAX_V0 : REGO_SYNTAX_V1;
    if (rego_policy_new(l.mods, l.nmods, l.data, &co, &pol, &d, &code) < 0) {
        print_error_json(code, d.msg);
        goto out;
    }
    if (rego_query_new(pol, query, &q, &d, &code) < 0) {
        print_error_json(code, d.msg);
        goto out;
    }
    eo.strict_builtins = strict;
    ev = rego_eval_new(&eo);
    if (input_path != NULL) {
        buf_free(&in);
        if (read_file(input_path, &in) < 0 ||
            rego_eval_set_input_text(ev, in.ptr, in.len, &d) < 0) {
            print_error_json("invalid_input", d.msg[0] ? d.msg : "cannot read input");
            goto out;
        }
    }
    if (rego_eval_query(ev, q, &res, &d, &code) < 0) {
        print_error_json(code, d.msg);
        goto out;
    }
    if (strcmp(format, "raw") == 0) {
        for (size_t s = 0; s < res.count; s++) {
            size_t ne = rego_query_expr_count(q);
            json_t *v = rego_val_to_json(res.exprs[s][ne - 1]);
            char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            printf("%s\n", t);
            free(t); /* checksrc: allow free (jansson allocates with malloc) */
            json_decref(v);
        }
        rc = 0;
        goto out;
    }
    out = json_object();
    arr = json_array();
    for (size_t s = 0; s < res.count; s++) {
        json_t *r = json_object(), *exprs = json_array(), *b = json_object();
        for (size_t e = 0; e < rego_query_expr_count(q); e++) {
            json_t *x = json_object();
            json_object_set_new(x, "value", rego_val_to_json(res.exprs[s][e]));
            if (rego_query_expr_count(q) == 1)
                json_object_set_new(x, "text", json_string(query));
            json_array_append_new(exprs, x);
        }
        json_object_set_new(r, "expressions", exprs);
        for (size_t v = 0; v < rego_query_var_count(q); v++)
            if (res.bindings[s][v] != NULL)
                json_object_set_new(b, rego_query_var_name(q, v),
                                    rego_val_to_json(res.bindings[s][v]));
        if (json_object_size(b) > 0)
            json_object_set_new(r, "bindings", b);
        else
            json_decref(b);
        json_array_append_new(arr, r);
    }
    if (res.count > 0)
        json_object_set_new(out, "result", arr);
    else
        json_decref(arr);
    txt = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("%s\n", txt);
    rc = 0;
out:
    free(txt); /* checksrc: allow free (jansson allocates with malloc) */
    json_decref(out);
    buf_free(&in);
    rego_eval_free(ev);
    rego_query_free(q);
    rego_policy_unref(pol);
    loaded_free(&l);
    return rc;
}

/* ---- YAML to JSON (YAML 1.2 core schema for plain scalars) ---- */

static json_t *yaml_scalar(yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(s, len);
    if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return json_null();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return json_true();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return json_false();
    if (strcmp(s, ".inf") == 0 || strcmp(s, "-.inf") == 0 || strcmp(s, ".nan") == 0)
        return json_stringn(s, len);
    {
        const char *p = s;
        bool num = true, dig = false;
        if (*p == '-' || *p == '+')
            p++;
        for (; *p; p++) {
            if (*p >= '0' && *p <= '9')
                dig = true;
            else if (*p != '.' && *p != 'e' && *p != 'E' && *p != '-' && *p != '+')
                num = false;
        }
        if (num && dig) {
            char *end = NULL;
            double d = strtod(s, &end);
            if (end == s + len)
                return json_real(d);
        }
    }
    return json_stringn(s, len);
}

static json_t *yaml_to_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (n == NULL || depth > 100)
        return json_null();
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return yaml_scalar(n);
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++)
            json_array_append_new(a,
                                  yaml_to_json(doc, yaml_document_get_node(doc, *it), depth + 1));
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (k == NULL || k->type != YAML_SCALAR_NODE)
                continue;
            json_object_setn_new(
                o, (const char *)k->data.scalar.value, k->data.scalar.length,
                yaml_to_json(doc, yaml_document_get_node(doc, p->value), depth + 1));
        }
        return o;
    }
    default:
        return json_null();
    }
}

static json_t *load_yaml(const char *path)
{
    buf_t b;
    yaml_parser_t parser;
    yaml_document_t doc;
    json_t *j = NULL;
    if (read_file(path, &b) < 0) {
        buf_free(&b);
        return NULL;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)b.ptr, b.len);
    if (yaml_parser_load(&parser, &doc)) {
        j = yaml_to_json(&doc, yaml_document_get_root_node(&doc), 0);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    buf_free(&b);
    return j;
}

/* ---- test ---- */

/* JSON equality where 1 and 1.0 are equal; arrays compared as multisets when @p unordered. */
static bool jeq(json_t *a, json_t *b, bool unordered);

static int jcmp_text(const void *x, const void *y)
{
    char *sa = json_dumps(*(json_t *const *)x, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
    char *sb = json_dumps(*(json_t *const *)y, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
    int r = strcmp(sa != NULL ? sa : "", sb != NULL ? sb : "");
    free(sa); /* checksrc: allow free (jansson allocates with malloc) */
    free(sb); /* checksrc: allow free (jansson allocates with malloc) */
    return r;
}

static bool jeq(json_t *a, json_t *b, bool unordered)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return x == y || fabs(x - y) <= 1e-9 * fmax(fabs(x), fabs(y));
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_array(a)) {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return false;
        if (unordered) {
            json_t **xa = mem_alloc((n + 1) * sizeof(*xa)), **xb = mem_alloc((n + 1) * sizeof(*xb));
            bool ok = true;
            for (size_t i = 0; i < n; i++) {
                xa[i] = json_array_get(a, i);
                xb[i] = json_array_get(b, i);
            }
            qsort(xa, n, sizeof(*xa), jcmp_text);
            qsort(xb, n, sizeof(*xb), jcmp_text);
            for (size_t i = 0; i < n && ok; i++)
                ok = jeq(xa[i], xb[i], false);
            mem_free(xa);
            mem_free(xb);
            return ok;
        }
        for (size_t i = 0; i < n; i++)
            if (!jeq(json_array_get(a, i), json_array_get(b, i), false))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach(a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (w == NULL || !jeq(v, w, unordered))
                return false;
        }
        return true;
    }
    return json_equal(a, b);
}

typedef struct tally {
    unsigned pass, fail, skip;
} tally_t;

typedef struct test_opts {
    bool verbose;
    const char *run; /* substring filter on notes */
} test_opts_t;

/* Runs one case; returns 1 pass, 0 fail, -1 skip. @p why receives the reason for a failure. */
static int run_case(json_t *c, char *why, size_t whylen)
{
    json_t *mods = json_object_get(c, "modules");
    json_t *data = json_object_get(c, "data");
    json_t *input = json_object_get(c, "input");
    json_t *input_term = json_object_get(c, "input_term");
    const char *query = json_string_value(json_object_get(c, "query"));
    json_t *want = json_object_get(c, "want_result");
    json_t *want_defined = json_object_get(c, "want_defined");
    const char *want_code = json_string_value(json_object_get(c, "want_error_code"));
    const char *want_err = json_string_value(json_object_get(c, "want_error"));
    bool strict = json_is_true(json_object_get(c, "strict_error"));
    bool sort = json_is_true(json_object_get(c, "sort_bindings"));
    rego_module_src_t ms[64];
    size_t nm = 0;
    rego_policy_t *pol = NULL;
    rego_query_t *q = NULL;
    rego_eval_t *ev = NULL;
    err_detail_t d = {""};
    const char *code = NULL;
    int result = 0, rc;
    json_t *got = NULL;

    why[0] = '\0';
    if (query == NULL || json_object_get(c, "env") != NULL) {
        snprintf(why, whylen, "uses env (opa.runtime)");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(mods) && nm < 64; i++) {
        const char *t = json_string_value(json_array_get(mods, i));
        if (t == NULL)
            continue;
        ms[nm].name = "module.rego";
        ms[nm].text = t;
        ms[nm].len = strlen(t);
        nm++;
    }
    rego_compile_opts_t co = {.default_syntax = REGO_SYNTAX_V1};
    rc = rego_policy_new(ms, nm, json_is_object(data) ? data : NULL, &co, &pol, &d, &code);
    if (rc == 0)
        rc = rego_query_new(pol, query, &q, &d, &code);
    if (rc == 0) {
        rego_eval_opts_t eo = {.strict_builtins = strict, .now_ns = 0};
        ev = rego_eval_new(&eo);
        if (input_term != NULL)
            rc = rego_eval_set_input_term(ev, json_string_value(input_term), &d);
        else if (input != NULL)
            rc = rego_eval_set_input_json(ev, input, &d);
    }
    rego_result_t res;
    if (rc == 0)
        rc = rego_eval_query(ev, q, &res, &d, &code);
    if (want_code != NULL || want_err != NULL) {
        if (rc == 0) {
            snprintf(why, whylen, "want error %s, got %zu result(s)", want_code ? want_code : "",
                     res.count);
        } else if (want_code != NULL && (code == NULL || strcmp(code, want_code) != 0)) {
            snprintf(why, whylen, "want %s, got %s", want_code, d.msg);
        } else if (want_err != NULL && strstr(d.msg, want_err) == NULL) {
            snprintf(why, whylen, "want error containing \"%s\", got %s", want_err, d.msg);
        } else {
            result = 1;
        }
        goto out;
    }
    if (rc < 0) {
        snprintf(why, whylen, "%s", d.msg);
        goto out;
    }
    if (want_defined != NULL) {
        result = json_is_true(want_defined) == (res.count > 0);
        if (!result)
            snprintf(why, whylen, "want defined=%s", json_is_true(want_defined) ? "true" : "false");
        goto out;
    }
    got = json_array();
    for (size_t s = 0; s < res.count; s++) {
        json_t *b = json_object();
        for (size_t v = 0; v < rego_query_var_count(q); v++)
            if (res.bindings[s][v] != NULL)
                json_object_set_new(b, rego_query_var_name(q, v),
                                    rego_val_to_json(res.bindings[s][v]));
        bool dup = false;
        for (size_t i = 0; i < json_array_size(got) && !dup; i++)
            dup = jeq(json_array_get(got, i), b, sort);
        if (dup)
            json_decref(b);
        else
            json_array_append_new(got, b);
    }
    if (want == NULL) {
        result = 1;
        goto out;
    }
    result = json_array_size(got) == json_array_size(want);
    for (size_t i = 0; result && i < json_array_size(want); i++) {
        bool found = false;
        for (size_t j = 0; j < json_array_size(got) && !found; j++)
            found = jeq(json_array_get(want, i), json_array_get(got, j), sort);
        result = found;
    }
    if (!result) {
        char *g = json_dumps(got, JSON_COMPACT);
        char *w = json_dumps(want, JSON_COMPACT);
        snprintf(why, whylen, "want %.300s got %.300s", w, g);
        free(g); /* checksrc: allow free (jansson allocates with malloc) */
        free(w); /* checksrc: allow free (jansson allocates with malloc) */
    }
out:
    json_decref(got);
    rego_eval_free(ev);
    rego_query_free(q);
    rego_policy_unref(pol);
    return result;
}

static void run_file(const char *path, tally_t *t, const test_opts_t *o)
{
    json_t *doc = load_yaml(path);
    json_t *cases = json_object_get(doc, "cases");
    char why[800];
    if (cases == NULL) {
        fprintf(stderr, "%s: no cases (unreadable YAML?)\n", path);
        t->fail++;
        json_decref(doc);
        return;
    }
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        const char *note = json_string_value(json_object_get(c, "note"));
        if (o->run != NULL && (note == NULL || strstr(note, o->run) == NULL))
            continue;
        int r = run_case(c, why, sizeof(why));
        if (r > 0)
            t->pass++;
        else if (r < 0)
            t->skip++;
        else
            t->fail++;
        if (o->verbose && r <= 0)
            printf("  %s %s (%s): %s\n", r < 0 ? "SKIP" : "FAIL", note != NULL ? note : "?", path,
                   why);
    }
    json_decref(doc);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the entries of @p dir (sorted, owned strings). */
static size_t list_dir(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    size_t n = 0, cap = 0;
    if (d == NULL) {
        *out = NULL;
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = mem_realloc(v, cap * sizeof(*v));
        }
        v[n++] = mem_strdup(e->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    *out = v;
    return n;
}

typedef struct dir_result {
    char name[256];
    tally_t t;
} dir_result_t;

/* Runs a directory of YAML files (and its subdirectories, each reported on its own line). */
static void run_dir(const char *dir, dir_result_t **res, size_t *nres, const test_opts_t *o)
{
    char **names;
    size_t n = list_dir(dir, &names);
    tally_t here = {0, 0, 0};
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        char sub[4096];
        struct stat st;
        snprintf(sub, sizeof(sub), "%s/%s", dir, names[i]);
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            run_dir(sub, res, nres, o);
        else if (ends_with(sub, ".yaml") || ends_with(sub, ".yml")) {
            run_file(sub, &here, o);
            any = true;
        }
        mem_free(names[i]);
    }
    mem_free(names);
    if (any) {
        *res = mem_realloc(*res, (*nres + 1) * sizeof(**res));
        const char *base = strrchr(dir, '/');
        snprintf((*res)[*nres].name, sizeof((*res)[*nres].name), "%s", base ? base + 1 : dir);
        (*res)[*nres].t = here;
        (*nres)++;
    }
}

static void test_usage(FILE *f)
{
    fprintf(f, "Usage: outrigger opa test [-v] [--run TEXT] [--min-pass-ratio R]\n"
               "                          [--expect FILE] [--write-expect FILE] DIR|FILE...\n"
               "  Runs OPA-format YAML test cases and prints pass/fail/skip per directory.\n"
               "  --min-pass-ratio R  exit 1 when passed/(passed+failed) over all is below R\n"
               "  --expect FILE       exit 1 when a directory passes fewer cases than FILE lists\n"
               "                      (lines: \"<dir> <passed>\")\n"
               "  --write-expect FILE record this run's counts in that format\n");
}

static int cmd_test(int argc, char **argv)
{
    test_opts_t o = {false, NULL};
    double min_ratio = -1;
    const char *expect = NULL, *write_expect = NULL;
    dir_result_t *res = NULL;
    size_t nres = 0;
    int rc = 0, npaths = 0;
    tally_t total = {0, 0, 0};

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-v") == 0) {
            o.verbose = true;
        } else if (strcmp(a, "--run") == 0 && i + 1 < argc) {
            o.run = argv[++i];
        } else if (strcmp(a, "--min-pass-ratio") == 0 && i + 1 < argc) {
            char *end = NULL;
            min_ratio = strtod(argv[++i], &end);
            if (end == argv[i] || *end != '\0' || min_ratio < 0 || min_ratio > 1) {
                fprintf(stderr, "outrigger opa test: --min-pass-ratio wants a number in [0,1]\n");
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--expect") == 0 && i + 1 < argc) {
            expect = argv[++i];
        } else if (strcmp(a, "--write-expect") == 0 && i + 1 < argc) {
            write_expect = argv[++i];
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            test_usage(stdout);
            return 0;
        } else if (a[0] == '-') {
            test_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        struct stat st;
        if (a[0] == '-') {
            if (strcmp(a, "--run") == 0 || strcmp(a, "--min-pass-ratio") == 0 ||
                strcmp(a, "--expect") == 0 || strcmp(a, "--write-expect") == 0)
                i++;
            continue;
        }
        npaths++;
        if (stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
            run_dir(a, &res, &nres, &o);
        } else {
            tally_t t = {0, 0, 0};
            run_file(a, &t, &o);
            res = mem_realloc(res, (nres + 1) * sizeof(*res));
            snprintf(res[nres].name, sizeof(res[nres].name), "%s", a);
            res[nres].t = t;
            nres++;
        }
    }
    if (npaths == 0) {
        test_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    for (size_t i = 0; i < nres; i++) {
        tally_t *t = &res[i].t;
        printf("%-28s pass %4u  fail %4u  skip %3u\n", res[i].name, t->pass, t->fail, t->skip);
        total.pass += t->pass;
        total.fail += t->fail;
        total.skip += t->skip;
    }
    printf("%-28s pass %4u  fail %4u  skip %3u\n", "TOTAL", total.pass, total.fail, total.skip);
    if (min_ratio >= 0 && total.pass + total.fail > 0 &&
        (double)total.pass / (double)(total.pass + total.fail) < min_ratio) {
        fprintf(stderr, "outrigger opa test: pass ratio %.3f below %.3f\n",
                (double)total.pass / (double)(total.pass + total.fail), min_ratio);
        rc = 1;
    }
    if (expect != NULL) {
        FILE *f = fopen(expect, "r");
        char line[512];
        if (f == NULL) {
            fprintf(stderr, "outrigger opa test: cannot read %s\n", expect);
            rc = 1;
        }
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            char name[256];
            uint64_t want;
            char *sp = strchr(line, ' ');
            if (line[0] == '#' || sp == NULL)
                continue;
            size_t nl = (size_t)(sp - line);
            if (nl >= sizeof(name))
                continue;
            memcpy(name, line, nl);
            name[nl] = '\0';
            char *num = sp + 1;
            size_t numl = strcspn(num, " \n");
            if (str_u64(num, numl, 1000000, &want) < 0)
                continue;
            bool seen = false;
            for (size_t i = 0; i < nres; i++) {
                if (strcmp(res[i].name, name) != 0)
                    continue;
                seen = true;
                if (res[i].t.pass < want) {
                    fprintf(stderr, "outrigger opa test: %s regressed: %u passed, expected %llu\n",
                            name, res[i].t.pass, (unsigned long long)want);
                    rc = 1;
                }
            }
            if (!seen) {
                fprintf(stderr, "outrigger opa test: %s: no results\n", name);
                rc = 1;
            }
        }
        if (f != NULL)
            fclose(f);
    }
    if (write_expect != NULL) {
        FILE *f = fopen(write_expect, "w");
        if (f != NULL) {
            fprintf(f, "# outrigger opa test --expect: minimum passed cases per directory\n");
            for (size_t i = 0; i < nres; i++)
                fprintf(f, "%s %u\n", res[i].name, res[i].t.pass);
            fclose(f);
        }
    }
    mem_free(res);
    return rc;
}

/* ---- bench ---- */

static int cmd_bench(int argc, char **argv)
{
    loaded_t l;
    const char *input_path = NULL, *query = NULL;
    uint64_t count = 200000;
    bool v0 = false;
    rego_policy_t *pol = NULL;
    rego_query_t *q = NULL;
    rego_eval_t *ev = NULL;
    err_detail_t d = {""};
    const char *code = NULL;
    json_t *input = NULL, *vj = NULL;
    int rc = 1;
    rego_compile_opts_t co = {.default_syntax = REGO_SYNTAX_V1};
    struct timespec t0, t1;
    rego_val_t *v = NULL;
    char *vs = NULL;
    double ns;

    memset(&l, 0, sizeof(l));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-d") == 0 || strcmp(a, "--data") == 0) && i + 1 < argc) {
            if (load_path(&l, argv[++i]) < 0)
                goto out;
        } else if ((strcmp(a, "-i") == 0 || strcmp(a, "--input") == 0) && i + 1 < argc) {
            input_path = argv[++i];
        } else if (strcmp(a, "--count") == 0 && i + 1 < argc) {
            if (str_u64(argv[i + 1], strlen(argv[i + 1]), 1000000000, &count) < 0 || count == 0) {
                fprintf(stderr, "outrigger opa bench: bad --count\n");
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            i++;
        } else if (strcmp(a, "--v0-compatible") == 0) {
            v0 = true;
        } else if (a[0] != '-' && query == NULL) {
            query = a;
        } else {
            fprintf(stderr, "Usage: outrigger opa bench -d POLICY [-i INPUT] [--count N] "
                            "[--v0-compatible] QUERY\n");
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if (query == NULL) {
        fprintf(stderr, "Usage: outrigger opa bench -d POLICY [-i INPUT] [--count N] "
                        "[--v0-compatible] QUERY\n");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    co.default_syntax = v0 ? REGO_SYNTAX_V0 : REGO_SYNTAX_V1;
    if (rego_policy_new(l.mods, l.nmods, l.data, &co, &pol, &d, &code) < 0 ||
        rego_query_new(pol, query, &q, &d, &code) < 0) {
        fprintf(stderr, "outrigger opa bench: %s\n", d.msg);
        goto out;
    }
    if (input_path != NULL) {
        json_error_t jerr;
        input = json_load_file(input_path, JSON_DECODE_ANY, &jerr);
        if (input == NULL) {
            fprintf(stderr, "outrigger opa bench: %s: %s\n", input_path, jerr.text);
            goto out;
        }
    }
    ev = rego_eval_new(NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < count; i++) {
        rego_eval_reset(ev);
        if (rego_eval_set_input_json(ev, input, &d) < 0 || rego_eval_value(ev, q, &v, &d) < 0) {
            fprintf(stderr, "outrigger opa bench: %s\n", d.msg);
            goto out;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    vj = v != NULL ? rego_val_to_json(v) : NULL;
    vs = vj != NULL ? json_dumps(vj, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    printf("decisions %llu  result %s  %.0f ns/decision (input conversion included)\n",
           (unsigned long long)count, vs != NULL ? vs : "undefined", ns / (double)count);
    rc = 0;
out:
    free(vs); /* checksrc: allow free (jansson allocates with malloc) */
    json_decref(vj);
    json_decref(input);
    rego_eval_free(ev);
    rego_query_free(q);
    rego_policy_unref(pol);
    loaded_free(&l);
    return rc;
}

int cli_cmd_opa(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0) {
        FILE *f = argc < 1 ? stderr : stdout;
        fprintf(f, "Usage: outrigger opa eval|test|bench [flags]\n"
                   "  eval   evaluate a query against policies, data and input (like opa eval)\n"
                   "  test   run OPA-format YAML conformance cases\n"
                   "  bench  time one decision\n");
        return argc < 1 ? CLI_EXIT_USAGE : 0;
    }
    if (strcmp(argv[0], "eval") == 0)
        return cmd_eval(argc - 1, argv + 1);
    if (strcmp(argv[0], "test") == 0)
        return cmd_test(argc - 1, argv + 1);
    if (strcmp(argv[0], "bench") == 0)
        return cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "outrigger opa: unknown subcommand \"%s\"\n", argv[0]);
    return CLI_EXIT_USAGE;
}
