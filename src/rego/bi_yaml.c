/*
 * bi_yaml.c — json.marshal_with_options and yaml.marshal/unmarshal/is_valid (libyaml).
 *
 * yaml.marshal writes JSON, which is valid YAML (flow style); Go's OPA writes block style, so
 * the text differs while yaml.unmarshal of either gives the same value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/buf.h"
#include "rego/rego_int.h"

#define A (&ev->arena)

static int pretty(rego_eval_t *ev, const rv_t *v, buf_t *b, const rv_t *prefix, const rv_t *indent,
                  int level)
{
    int rc = 0;
    if ((v->kind != REGO_ARRAY && v->kind != REGO_SET && v->kind != REGO_OBJECT) || v->len == 0) {
        if (v->kind == REGO_SET && v->len == 0)
            return buf_append(b, "[]", 2);
        return rego__to_json_text(v, b);
    }
    rc = buf_append(b, v->kind == REGO_OBJECT ? "{\n" : "[\n", 2);
    for (uint32_t i = 0; rc == 0 && i < v->len; i++) {
        rc = buf_append(b, prefix->str, prefix->len);
        for (int l = 0; rc == 0 && l <= level; l++)
            rc = buf_append(b, indent->str, indent->len);
        if (rc == 0 && v->kind == REGO_OBJECT) {
            if (v->a[i]->kind == REGO_STRING) {
                rc = rego__to_json_text(v->a[i], b);
            } else {
                buf_t *kb;
                kb = rego__buf(ev, b->max);
                rc = rego__to_json_text(v->a[i], kb);
                if (rc == 0 && (rc = buf_append(b, "\"", 1)) == 0 &&
                    (rc = buf_append_json_str(b, buf_ptr(kb), kb->len)) == 0)
                    rc = buf_append(b, "\"", 1);
                rego__buf_done(ev, kb);
            }
            if (rc == 0)
                rc = buf_append(b, ": ", 2);
            if (rc == 0)
                rc = pretty(ev, v->v[i], b, prefix, indent, level + 1);
        } else if (rc == 0) {
            rc = pretty(ev, v->a[i], b, prefix, indent, level + 1);
        }
        if (rc == 0 && i + 1 < v->len)
            rc = buf_append(b, ",", 1);
        if (rc == 0)
            rc = buf_append(b, "\n", 1);
    }
    if (rc == 0)
        rc = buf_append(b, prefix->str, prefix->len);
    for (int l = 0; rc == 0 && l < level; l++)
        rc = buf_append(b, indent->str, indent->len);
    if (rc == 0)
        rc = buf_append(b, v->kind == REGO_OBJECT ? "}" : "]", 1);
    return rc;
}

static rv_t *bi_marshal_with_options(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    static rv_t tab = {.kind = REGO_STRING, .str = "\t", .len = 1};
    rv_t *o = args[1], *prefix = &rego__empty_str, *indent = &tab;
    int want_pretty = -1;
    bool custom = false;
    buf_t *b;
    int rc;
    (void)n;
    if (o->kind != REGO_OBJECT)
        return rego__type_err(ev, "json.marshal_with_options", 2, "object", o);
    for (uint32_t i = 0; i < o->len; i++) {
        const rv_t *k = o->a[i], *v = o->v[i];
        if (k->kind == REGO_STRING && strcmp(k->str, "pretty") == 0 && v->kind == REGO_BOOL) {
            want_pretty = v->b;
        } else if (k->kind == REGO_STRING && strcmp(k->str, "indent") == 0 &&
                   v->kind == REGO_STRING) {
            indent = o->v[i];
            custom = true;
        } else if (k->kind == REGO_STRING && strcmp(k->str, "prefix") == 0 &&
                   v->kind == REGO_STRING) {
            prefix = o->v[i];
            custom = true;
        } else {
            if (!ev->strict)
                return NULL;
            rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                       "json.marshal_with_options: object contained unknown key \"%s\"",
                       k->kind == REGO_STRING ? k->str : "?");
        }
    }
    if (want_pretty == -1)
        want_pretty = custom;
    b = rego__buf(ev, 64u << 20);
    if (want_pretty) {
        rc = buf_append(b, prefix->str, prefix->len);
        if (rc == 0)
            rc = pretty(ev, args[0], b, prefix, indent, 0);
    } else {
        rc = rego__to_json_text(args[0], b);
    }
    if (rc < 0) {
        rego__buf_done(ev, b);
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "json.marshal_with_options: too large");
    }
    rv_t *r = rego__str(A, buf_ptr(b), b->len);
    rego__buf_done(ev, b);
    return r;
}

/* YAML 1.2 core schema for plain scalars (what OPA's YAML library mostly accepts). */
static rv_t *yaml_scalar(rego_eval_t *ev, yaml_node_t *nd)
{
    const char *s = (const char *)nd->data.scalar.value;
    size_t len = nd->data.scalar.length;
    if (nd->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return rego__str(A, s, len);
    if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return &rego__null;
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return &rego__true;
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return &rego__false;
    rv_t *num = rego__json_parse(A, s, len);
    if (num != NULL && num->kind == REGO_NUMBER)
        return num;
    return rego__str(A, s, len);
}

static rv_t *yaml_node(rego_eval_t *ev, yaml_document_t *doc, yaml_node_t *nd, int depth)
{
    if (nd == NULL || depth > REGO_MAX_NESTING)
        return NULL;
    rego__step(ev);
    switch (nd->type) {
    case YAML_SCALAR_NODE:
        return yaml_scalar(ev, nd);
    case YAML_SEQUENCE_NODE: {
        rv_t *a = rego__arr(A, 4);
        for (yaml_node_item_t *it = nd->data.sequence.items.start; it < nd->data.sequence.items.top;
             it++) {
            rv_t *v = yaml_node(ev, doc, yaml_document_get_node(doc, *it), depth + 1);
            if (v == NULL)
                return NULL;
            rego__arr_push(A, a, v);
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        rv_t *o = rego__obj(A, 4);
        for (yaml_node_pair_t *p = nd->data.mapping.pairs.start; p < nd->data.mapping.pairs.top;
             p++) {
            rv_t *k = yaml_node(ev, doc, yaml_document_get_node(doc, p->key), depth + 1);
            rv_t *v = yaml_node(ev, doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (k == NULL || v == NULL)
                return NULL;
            rego__obj_set(A, o, k, v);
        }
        return o;
    }
    default:
        return NULL;
    }
}

/* Parses YAML text; NULL with @p err set on failure. Aliases are refused (billion laughs). */
static rv_t *yaml_parse(rego_eval_t *ev, const rv_t *s, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    rv_t *v = NULL;
    err[0] = '\0';
    if (memmem(s->str, s->len, "*", 1) != NULL && memmem(s->str, s->len, "&", 1) != NULL) {
        /* Anchors and aliases could expand exponentially; OPA's inputs do not need them. */
        for (uint32_t i = 0; i + 1 < s->len; i++)
            if (s->str[i] == '*' && ((s->str[i + 1] >= 'a' && s->str[i + 1] <= 'z') ||
                                     (s->str[i + 1] >= 'A' && s->str[i + 1] <= 'Z'))) {
                snprintf(err, errlen, "yaml: aliases are not supported");
                return NULL;
            }
    }
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "yaml: out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)s->str, s->len);
    if (!yaml_parser_load(&parser, &doc)) {
        /* Go's YAML library reports the line of the context when there is one. */
        yaml_mark_t mark = parser.context != NULL ? parser.context_mark : parser.problem_mark;
        snprintf(err, errlen, "yaml: line %lu: %s", (unsigned long)mark.line + 1,
                 parser.problem != NULL ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    v = root != NULL ? yaml_node(ev, &doc, root, 0) : &rego__null;
    if (v == NULL)
        snprintf(err, errlen, "yaml: unsupported document");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return v;
}

static rv_t *bi_yaml_unmarshal(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    char err[200];
    (void)n;
    if (args[0]->kind != REGO_STRING)
        return rego__type_err(ev, "yaml.unmarshal", 1, "string", args[0]);
    rv_t *v = yaml_parse(ev, args[0], err, sizeof(err));
    if (v == NULL)
        return rego__bi_err(ev, "yaml.unmarshal: %s", err);
    return v;
}

static rv_t *bi_yaml_is_valid(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    char err[200];
    (void)n;
    if (args[0]->kind != REGO_STRING)
        return &rego__false;
    return yaml_parse(ev, args[0], err, sizeof(err)) != NULL ? &rego__true : &rego__false;
}

static rv_t *bi_yaml_marshal(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return rego__marshal(ev, args[0], "yaml.marshal"); /* JSON is YAML */
}

const rego__builtin_t rego__bi_yaml[] = {
    {"json.marshal_with_options", 2, bi_marshal_with_options, false},
    {"yaml.unmarshal", 1, bi_yaml_unmarshal, false},
    {"yaml.is_valid", 1, bi_yaml_is_valid, false},
    {"yaml.marshal", 1, bi_yaml_marshal, false},
    {NULL, 0, NULL, false},
};
