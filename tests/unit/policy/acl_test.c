/*
 * Access control, table-driven: every behaviour of spec dapr.md §2.4-2.5 (Dapr's own test cases
 * from pkg/acl and pkg/config/acl_trie.go, restated as YAML), the documented choices where
 * Dapr's docs and code disagree, validation errors with file:line, and path tricks pushed through
 * the callee's real normalisation before the check.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "invoke/invoke_int.h"
#include "policy/policy.h"
#include "test.h"

#define H ACL_PROTO_HTTP
#define G ACL_PROTO_GRPC
#define NOV ACL_VERB_NONE
#define GET ACL_VERB_GET
#define PUT ACL_VERB_PUT
#define POST ACL_VERB_POST
#define DEL ACL_VERB_DELETE
#define ALLOW true
#define DENY false

/* Dapr's initializeAccessControlList (pkg/acl/acl_test.go), as a Configuration file. */
static const char dapr_cfg[] = "apiVersion: dapr.io/v1alpha1\n"
                               "kind: Configuration\n"
                               "metadata:\n"
                               "  name: acl\n"
                               "spec:\n"
                               "  accessControl:\n"
                               "    defaultAction: deny\n"
                               "    trustDomain: abcd\n"
                               "    policies:\n"
                               "    - appId: app1\n"
                               "      defaultAction: allow\n"
                               "      trustDomain: public\n"
                               "      namespace: ns1\n"
                               "      operations:\n"
                               "      - {name: /op1, httpVerb: [POST, GET], action: allow}\n"
                               "      - {name: /op2, httpVerb: ['*'], action: deny}\n"
                               "    - appId: app2\n"
                               "      defaultAction: deny\n"
                               "      trustDomain: domain1\n"
                               "      namespace: ns2\n"
                               "      operations:\n"
                               "      - {name: /op3/a/*, httpVerb: [PUT, GET], action: allow}\n"
                               "      - {name: /op4, httpVerb: [POST], action: allow}\n"
                               "    - appId: app3\n"
                               "      trustDomain: domain1\n"
                               "      namespace: ns1\n"
                               "      operations:\n"
                               "      - {name: /op5, httpVerb: [POST], action: allow}\n"
                               "    - appId: app4\n"
                               "      defaultAction: deny\n"
                               "      trustDomain: domain1\n"
                               "      namespace: ns2\n"
                               "      operations:\n"
                               "      - {name: /op6, action: allow}\n"
                               "      - {name: /op7/a/b/*, action: allow}\n"
                               "      - {name: /op7/a/b/c/f, action: allow}\n"
                               "      - {name: /op7/a/b*, action: allow}\n"
                               "      - {name: /op7/c/**, action: allow}\n"
                               "    - appId: app1\n"
                               "      defaultAction: allow\n"
                               "      trustDomain: public\n"
                               "      namespace: ns4\n"
                               "      operations:\n"
                               "      - {name: /op6, httpVerb: ['*'], action: allow}\n";

/* The trie rules of §2.5, one app per behaviour (HTTP, every verb listed through "*"). */
static const char trie_cfg[] =
    "apiVersion: dapr.io/v1alpha1\n"
    "kind: Configuration\n"
    "spec:\n"
    "  accessControl:\n"
    "    defaultAction: deny\n"
    "    policies:\n"
    "    - appId: t\n"
    "      namespace: default\n"
    "      trustDomain: public\n"
    "      defaultAction: deny\n"
    "      operations:\n"
    "      - {name: op8, httpVerb: ['*'], action: allow}\n"  /* '/' added */
    "      - {name: /dup, httpVerb: ['*'], action: allow}\n" /* first of two wins */
    "      - {name: /dup, httpVerb: ['*'], action: deny}\n"
    "      - {name: /ord1/*, httpVerb: ['*'], action: deny}\n"   /* wildcard first ... */
    "      - {name: /ord1/a, httpVerb: ['*'], action: allow}\n"  /* ... then exact */
    "      - {name: /ord2/a, httpVerb: ['*'], action: allow}\n"  /* exact first ... */
    "      - {name: /ord2/*, httpVerb: ['*'], action: deny}\n"   /* ... then wildcard */
    "      - {name: /mid/*/c, httpVerb: ['*'], action: allow}\n" /* mid-path star */
    "      - {name: /dd/**, httpVerb: ['*'], action: allow}\n"   /* double star */
    "      - {name: /st/*, httpVerb: ['*'], action: allow}\n"    /* single star */
    "      - {name: /st/*/x, httpVerb: ['*'], action: allow}\n"  /* under a star */
    "      - {name: /gl/op*, httpVerb: ['*'], action: allow}\n"  /* globs */
    "      - {name: /gl/*C, httpVerb: ['*'], action: allow}\n"
    "      - {name: /gl/a*d, httpVerb: ['*'], action: allow}\n"
    "      - {name: /gl/AB*.a, httpVerb: ['*'], action: allow}\n"
    "      - {name: /pre, httpVerb: ['*'], action: allow}\n"  /* prefix */
    "      - {name: /pre/x, httpVerb: ['*'], action: deny}\n" /* shadowed by /pre */
    "      - {name: /op7/a/b/*, httpVerb: ['*'], action: allow}\n"
    "      - {name: /op7/c/**, httpVerb: ['*'], action: allow}\n"
    "      - {name: /op7/a/b*, httpVerb: ['*'], action: allow}\n"
    "      - {name: /Admin/**, httpVerb: ['*'], action: allow}\n"   /* lower-cased */
    "      - {name: /verbs, httpVerb: [GET, PUT], action: allow}\n" /* listed verbs only */
    "      - {name: /star, httpVerb: ['*'], action: allow}\n"
    "      - {name: /lower, httpVerb: [get], action: allow}\n" /* never matches a GET */
    "      - {name: /noverb, action: allow}\n"                 /* never applies to HTTP */
    "      - {name: /empty, httpVerb: ['*'], action: ''}\n"    /* empty action = deny */
    "      - {name: /absent, httpVerb: ['*']}\n"               /* missing action = deny */
    "      - {name: /Deny, httpVerb: ['*'], action: DENY}\n"   /* case-insensitive words */
    "    - appId: a\n"
    "      namespace: default\n"
    "      trustDomain: public\n"
    "      defaultAction: allow\n"
    "      operations:\n"
    "      - {name: /empty, httpVerb: ['*'], action: ''}\n"
    "      - {name: /noverb, action: deny}\n"
    "    - appId: nodefault\n" /* no app default: rules fall back to the global one */
    "      namespace: default\n"
    "      trustDomain: public\n"
    "      operations:\n"
    "      - {name: /x, httpVerb: [POST], action: allow}\n";

typedef struct acl_case {
    int line;           /* __LINE__ of the case, for failures */
    const char *td;     /* caller trust domain; NULL = no identity */
    const char *ns;     /* caller namespace */
    const char *app;    /* caller app id */
    const char *method; /* as the ACL sees it */
    int verb;           /* acl_verb_t */
    bool allowed;       /* expected verdict */
    acl_level_t level;  /* expected level */
    acl_reason_t why;   /* expected reason */
} acl_case_t;

#define C(...)                                                                                     \
    {                                                                                              \
        __LINE__, __VA_ARGS__                                                                      \
    }
#define LG ACL_LEVEL_GLOBAL
#define LA ACL_LEVEL_APP

/* Compiles @p text; returns NULL (and prints why) on failure. */
static acl_t *compile(const char *text, acl_proto_t proto)
{
    res_config_t *cfg = NULL;
    err_detail_t d = {{0}};
    acl_t *acl = NULL;

    if (res_config_parse(NULL, "acl.yaml", text, strlen(text), 0, &cfg, &d) < 0) {
        fprintf(stderr, "  parse: %s\n", d.msg);
        return NULL;
    }
    if (acl_compile(cfg, proto, &acl, &d) < 0)
        fprintf(stderr, "  compile: %s\n", d.msg);
    res_config_free(cfg);
    return acl;
}

/* Compiling @p text must fail with ERR_RES_INVALID and a detail containing @p want. */
static int compile_fails(const char *text, const char *want, char *got, size_t got_len)
{
    res_config_t *cfg = NULL;
    err_detail_t d = {{0}};
    acl_t *acl = NULL;
    int rc = res_config_parse(NULL, "acl.yaml", text, strlen(text), 0, &cfg, &d);

    if (rc == 0)
        rc = acl_compile(cfg, H, &acl, &d);
    snprintf(got, got_len, "rc=%s msg=%s", err_name(rc), d.msg);
    res_config_free(cfg);
    acl_unref(acl);
    return rc == ERR_RES_INVALID && acl == NULL && strstr(d.msg, want) != NULL;
}

#define ASSERT_COMPILE_FAILS(text, want)                                                           \
    do {                                                                                           \
        char got_[400];                                                                            \
        if (!compile_fails((text), (want), got_, sizeof(got_)))                                    \
            TEST_FAIL_("expected ERR_RES_INVALID with \"%s\", got %s", (want), got_);              \
    } while (0)

/* Runs @p n cases against @p acl; reports every mismatch, returns how many failed. */
static int run_cases(const acl_t *acl, const acl_case_t *cases, size_t n)
{
    int bad = 0;

    for (size_t i = 0; i < n; i++) {
        const acl_case_t *c = &cases[i];
        static spiffe_id_t id;
        acl_decision_t dec;
        bool got;
        if (c->td != NULL && spiffe_id_from_parts(c->td, c->ns, c->app, &id) < 0) {
            fprintf(stderr, "  line %d: bad test identity\n", c->line);
            bad++;
            continue;
        }
        got = acl_check(acl, c->td ? &id : NULL, c->method, strlen(c->method), c->verb, &dec);
        if (got != c->allowed || dec.allowed != got || dec.level != c->level ||
            dec.reason != c->why) {
            fprintf(stderr,
                    "  line %d: %s %s: got %s level=%s reason=%s rule=%s verb=%s, want %s "
                    "level=%s reason=%s\n",
                    c->line, acl_verb_name(c->verb), c->method, got ? "allow" : "deny",
                    acl_level_name(dec.level), acl_reason_name(dec.reason),
                    dec.operation ? dec.operation : "-", dec.verb ? dec.verb : "-",
                    c->allowed ? "allow" : "deny", acl_level_name(c->level),
                    acl_reason_name(c->why));
            bad++;
        }
    }
    return bad;
}

#define RUN(acl, cases)                                                                            \
    do {                                                                                           \
        int bad_ = run_cases((acl), (cases), sizeof(cases) / sizeof((cases)[0]));                  \
        if (bad_)                                                                                  \
            TEST_FAIL_("%d case(s) failed", bad_);                                                 \
    } while (0)

/* ---- Dapr's TestIsOperationAllowedByAccessControlPolicy, HTTP app --------------------------- */

TEST(dapr_cases_http)
{
    static const acl_case_t cases[] = {
        /* no matching app: global default (deny) */
        C("public", "ns1", "appX", "op1", POST, DENY, LG, ACL_REASON_NO_POLICY),
        /* trust domain does not match: global default */
        C("private", "ns1", "app1", "op1", POST, DENY, LG, ACL_REASON_TRUST_DOMAIN),
        /* namespace does not match: no policy under app1||abcd */
        C("public", "abcd", "app1", "op1", POST, DENY, LG, ACL_REASON_NO_POLICY),
        /* no identity: global default */
        C(NULL, NULL, NULL, "op1", POST, DENY, LG, ACL_REASON_NO_IDENTITY),
        /* operation not in the policy: app default (allow) */
        C("public", "ns1", "app1", "opX", POST, ALLOW, LA, ACL_REASON_NO_RULE),
        /* HTTP is case-insensitive: Op2 hits /op2 (deny for "*") */
        C("public", "ns1", "app1", "Op2", POST, DENY, LA, ACL_REASON_VERB_WILDCARD),
        /* verb not listed: app default (deny) */
        C("domain1", "ns2", "app2", "op4", PUT, DENY, LA, ACL_REASON_VERB_UNLISTED),
        /* no app default and verb not listed: global default (deny), level stays global */
        C("domain1", "ns1", "app3", "op5", PUT, DENY, LG, ACL_REASON_VERB_UNLISTED),
        C("domain1", "ns1", "app3", "op5", POST, ALLOW, LG, ACL_REASON_VERB),
        /* verb matches "*" */
        C("public", "ns1", "app1", "op2", PUT, DENY, LA, ACL_REASON_VERB_WILDCARD),
        /* verb matches a listed verb */
        C("domain1", "ns2", "app2", "op4", POST, ALLOW, LA, ACL_REASON_VERB),
        C("public", "ns1", "app1", "op1", GET, ALLOW, LA, ACL_REASON_VERB),
        /* leading '/' on the method */
        C("domain1", "ns2", "app2", "/op4", POST, ALLOW, LA, ACL_REASON_VERB),
        /* no verb: the policy's defaultAction */
        C("domain1", "ns2", "app2", "op4", NOV, DENY, LA, ACL_REASON_NO_VERB),
        C("public", "ns1", "app1", "op1", NOV, ALLOW, LA, ACL_REASON_NO_VERB),
        /* /op3/a/\* also matches /op3/a and /op3/a/b, not /op3/b/b */
        C("domain1", "ns2", "app2", "/op3/a", PUT, ALLOW, LA, ACL_REASON_VERB),
        C("domain1", "ns2", "app2", "/op3/b/b", PUT, DENY, LA, ACL_REASON_NO_RULE),
        C("domain1", "ns2", "app2", "/op3/a/b", PUT, ALLOW, LA, ACL_REASON_VERB),
        C("domain1", "ns2", "app2", "/op3/a/b/c", PUT, DENY, LA, ACL_REASON_NO_RULE),
        /* same app id in another namespace is a separate policy */
        C("public", "ns4", "app1", "op6", DEL, ALLOW, LA, ACL_REASON_VERB_WILDCARD),
        C("public", "ns1", "app1", "op6", DEL, ALLOW, LA, ACL_REASON_NO_RULE),
        /* operations without httpVerb never decide an HTTP call */
        C("domain1", "ns2", "app4", "op6", GET, DENY, LA, ACL_REASON_VERB_UNLISTED),
    };
    acl_t *acl = compile(dapr_cfg, H);
    acl_decision_t dec;

    ASSERT(acl != NULL);
    ASSERT(acl_enabled(acl));
    ASSERT_STREQ(acl_trust_domain(acl), "abcd");
    ASSERT_EQ(acl_policy_count(acl), 5);
    RUN(acl, cases);
    /* The decision names the policy and the rule. */
    {
        static spiffe_id_t id;
        ASSERT_EQ(spiffe_id_from_parts("domain1", "ns2", "app2", &id), 0);
        ASSERT(acl_check(acl, &id, "op3/a/zz", 8, GET, &dec));
        ASSERT_STREQ(dec.policy_app_id, "app2");
        ASSERT_STREQ(dec.policy_namespace, "ns2");
        ASSERT_STREQ(dec.operation, "/op3/a/*");
        ASSERT_STREQ(dec.verb, "GET");
        ASSERT_STREQ(acl_level_name(dec.level), "app");
    }
    acl_unref(acl);
}

/* ---- Dapr's cases for gRPC apps: case-sensitive, verbs ignored ------------------------------ */

TEST(dapr_cases_grpc)
{
    static const acl_case_t cases[] = {
        /* case-sensitive: /OP4 does not hit /op4 */
        C("domain1", "ns2", "app2", "/OP4", NOV, DENY, LA, ACL_REASON_NO_RULE),
        C("domain1", "ns2", "app2", "op4", NOV, ALLOW, LA, ACL_REASON_RULE),
        /* verbs do not matter for gRPC */
        C("domain1", "ns2", "app2", "op4", PUT, ALLOW, LA, ACL_REASON_RULE),
        C("domain1", "ns2", "app4", "op6", NOV, ALLOW, LA, ACL_REASON_RULE),
        /* /op7/a/b/\* matches op7/a/b/c, not op7/a/b/c/d; /op7/a/b/c/f exactly */
        C("domain1", "ns2", "app4", "op7/a/b/c", NOV, ALLOW, LA, ACL_REASON_RULE),
        C("domain1", "ns2", "app4", "op7/a/b/c/d", NOV, DENY, LA, ACL_REASON_NO_RULE),
        C("domain1", "ns2", "app4", "op7/a/b/c/f", NOV, ALLOW, LA, ACL_REASON_RULE),
        /* /op7/a/b* matches op7/a/bc */
        C("domain1", "ns2", "app4", "op7/a/bc", NOV, ALLOW, LA, ACL_REASON_RULE),
        /* /op7/c/\** matches op7/c/d/e */
        C("domain1", "ns2", "app4", "op7/c/d/e", NOV, ALLOW, LA, ACL_REASON_RULE),
    };
    acl_t *acl = compile(dapr_cfg, G);

    ASSERT(acl != NULL);
    RUN(acl, cases);
    acl_unref(acl);
}

/* ---- §2.5: the operation trie, line by line ------------------------------------------------- */

TEST(trie_rules)
{
#define T(method, verb, allowed, why) C("public", "default", "t", method, verb, allowed, LA, why)
#define A(method, verb, allowed, why) C("public", "default", "a", method, verb, allowed, LA, why)
    static const acl_case_t cases[] = {
        /* each name is prefixed with '/' if missing */
        T("op8", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("/op8", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        /* a duplicate insert keeps the first */
        T("dup", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        /* children are scanned in insertion order, first hit wins */
        T("ord1/a", GET, DENY, ACL_REASON_VERB_WILDCARD),
        T("ord2/a", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("ord2/b", GET, DENY, ACL_REASON_VERB_WILDCARD),
        /* "/\*" only on the last request segment: a mid-path star never matches */
        T("mid/b/c", GET, DENY, ACL_REASON_NO_RULE),
        T("mid/b", GET, DENY, ACL_REASON_NO_RULE),
        /* "/\**" matches here and everything below, and the parent */
        T("dd/a", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("dd/a/b/c", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("dd", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("ddx", GET, DENY, ACL_REASON_NO_RULE),
        /* "/\*" matches one last segment, and the parent */
        T("st/a", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("st", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("st/a/b", GET, DENY, ACL_REASON_NO_RULE),
        /* a literal "*" request segment walks through the star node (Dapr's continue) */
        T("st/*/x", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("st/q/x", GET, DENY, ACL_REASON_NO_RULE),
        /* in-segment globs: /op*, /\*C (lower-cased to /\*c for HTTP), /a*d, /AB*.a */
        T("gl/opx", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("gl/op", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("gl/ABC", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("gl/abcd", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("gl/ABC.a", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("gl/xyz", GET, DENY, ACL_REASON_NO_RULE),
        /* a glob that matches mid-path is a prefix match too */
        T("gl/opx/more", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        /* prefix match: /pre covers /pre/x/y, and shadows the later /pre/x */
        T("pre/x/y", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("pre/x", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("prefix", GET, DENY, ACL_REASON_NO_RULE),
        /* the spec's consequence lines */
        T("op7/a/b/c", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("op7/a/b/c/d", GET, DENY, ACL_REASON_NO_RULE),
        T("op7/c/d/e", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("op7/a/bc", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        /* HTTP lower-cases both the name and the method */
        T("admin/x", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("ADMIN/X", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("AdMiN", GET, ALLOW, ACL_REASON_VERB_WILDCARD),
        /* verbs: listed ones, others fall back to the default; "*" covers all */
        T("verbs", GET, ALLOW, ACL_REASON_VERB),
        T("verbs", PUT, ALLOW, ACL_REASON_VERB),
        T("verbs", POST, DENY, ACL_REASON_VERB_UNLISTED),
        T("star", DEL, ALLOW, ACL_REASON_VERB_WILDCARD),
        T("star", NOV, DENY, ACL_REASON_NO_VERB),
        /* verbs are compared as written: "get" never matches GET */
        T("lower", GET, DENY, ACL_REASON_VERB_UNLISTED),
        /* an operation without httpVerb never decides an HTTP call */
        T("noverb", GET, DENY, ACL_REASON_VERB_UNLISTED),
        A("noverb", GET, ALLOW, ACL_REASON_VERB_UNLISTED),
        /* empty or missing action is deny, even under an allowing app default */
        T("empty", GET, DENY, ACL_REASON_VERB_WILDCARD),
        T("absent", GET, DENY, ACL_REASON_VERB_WILDCARD),
        A("empty", GET, DENY, ACL_REASON_VERB_WILDCARD),
        A("other", GET, ALLOW, ACL_REASON_NO_RULE),
        /* action words are case-insensitive */
        T("deny", GET, DENY, ACL_REASON_VERB_WILDCARD),
        /* empty method is "/", which no rule here names */
        T("", GET, DENY, ACL_REASON_NO_RULE),
        /* without an app default the global one stays in force, level global */
        C("public", "default", "nodefault", "x", POST, ALLOW, LG, ACL_REASON_VERB),
        C("public", "default", "nodefault", "x", GET, DENY, LG, ACL_REASON_VERB_UNLISTED),
        C("public", "default", "nodefault", "y", GET, DENY, LG, ACL_REASON_NO_RULE),
        C("public", "default", "nodefault", "x", NOV, DENY, LG, ACL_REASON_NO_VERB),
    };
#undef T
#undef A
    acl_t *acl = compile(trie_cfg, H);
    acl_decision_t dec;
    static spiffe_id_t id;

    ASSERT(acl != NULL);
    RUN(acl, cases);
    ASSERT_EQ(spiffe_id_from_parts("public", "default", "t", &id), 0);
    ASSERT(acl_check(acl, &id, "Admin/Users", 11, GET, &dec));
    ASSERT_STREQ(dec.operation, "/admin/**");
    ASSERT_STREQ(dec.verb, "*");
    acl_unref(acl);
}

TEST(empty_method_matches_root_rule)
{
    static const char cfg[] = "apiVersion: dapr.io/v1alpha1\n"
                              "kind: Configuration\n"
                              "spec:\n"
                              "  accessControl:\n"
                              "    defaultAction: deny\n"
                              "    policies:\n"
                              "    - {appId: r, namespace: n, trustDomain: td, operations: [{name: "
                              "/, httpVerb: [GET], action: allow}]}\n";
    static const acl_case_t cases[] = {
        C("td", "n", "r", "", GET, ALLOW, LG, ACL_REASON_VERB),
        C("td", "n", "r", "/", GET, ALLOW, LG, ACL_REASON_VERB),
        C("td", "n", "r", "x", GET, DENY, LG, ACL_REASON_NO_RULE),
    };
    acl_t *acl = compile(cfg, H);

    ASSERT(acl != NULL);
    RUN(acl, cases);
    acl_unref(acl);
}

/* ---- defaults: no ACL, omitted global defaultAction ----------------------------------------- */

static bool no_identity_allowed(const char *spec, acl_decision_t *dec)
{
    char text[1024];
    acl_t *acl;
    bool ok;

    snprintf(text, sizeof(text), "apiVersion: dapr.io/v1alpha1\nkind: Configuration\n%s", spec);
    acl = compile(text, H);
    if (acl == NULL)
        return false;
    ok = acl_check(acl, NULL, "op", 2, GET, dec);
    acl_unref(acl);
    return ok;
}

TEST(defaults)
{
    acl_decision_t dec;

    /* No accessControl, or an empty one: no ACL, everything allowed, no metric level. */
    ASSERT(no_identity_allowed("spec: {}\n", &dec));
    ASSERT_EQ(dec.reason, ACL_REASON_NO_ACL);
    ASSERT_EQ(dec.level, ACL_LEVEL_NONE);
    ASSERT(no_identity_allowed("metadata: {name: x}\n", &dec));
    ASSERT(no_identity_allowed("spec: {accessControl: {}}\n", &dec));
    ASSERT_EQ(dec.reason, ACL_REASON_NO_ACL);
    ASSERT(no_identity_allowed("spec: {accessControl: ~}\n", &dec));
    ASSERT(no_identity_allowed("spec: {accessControl: {policies: []}}\n", &dec));
    ASSERT_EQ(dec.reason, ACL_REASON_NO_ACL);
    ASSERT(acl_check(NULL, NULL, "x", 1, GET, &dec));
    ASSERT_EQ(dec.reason, ACL_REASON_NO_ACL);

    /* Explicit global actions, case-insensitive. */
    ASSERT(no_identity_allowed("spec: {accessControl: {defaultAction: allow}}\n", &dec));
    ASSERT_EQ(dec.level, ACL_LEVEL_GLOBAL);
    ASSERT(no_identity_allowed("spec: {accessControl: {defaultAction: Allow}}\n", &dec));
    ASSERT(!no_identity_allowed("spec: {accessControl: {defaultAction: deny}}\n", &dec));
    ASSERT_EQ(dec.reason, ACL_REASON_NO_IDENTITY);

    /* Omitted global defaultAction in a section that says something: deny (our choice). */
    ASSERT(!no_identity_allowed("spec: {accessControl: {trustDomain: public}}\n", &dec));
    ASSERT_EQ(dec.level, ACL_LEVEL_GLOBAL);
    ASSERT(!no_identity_allowed("spec: {accessControl: {policies: [{appId: a, namespace: n, "
                                "trustDomain: t}]}}\n",
                                &dec));
    ASSERT(
        !no_identity_allowed("spec: {accessControl: {defaultAction: '', trustDomain: x}}\n", &dec));
}

TEST(trust_domain_default_is_public)
{
    acl_t *acl = compile("apiVersion: dapr.io/v1alpha1\nkind: Configuration\n"
                         "spec: {accessControl: {defaultAction: allow}}\n",
                         H);

    ASSERT(acl != NULL);
    ASSERT_STREQ(acl_trust_domain(acl), "public");
    acl_unref(acl);
    ASSERT_STREQ(acl_trust_domain(NULL), "public");
}

TEST(duplicate_policy_last_wins)
{
    static const char cfg[] =
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\n"
        "spec:\n"
        "  accessControl:\n"
        "    defaultAction: deny\n"
        "    policies:\n"
        "    - {appId: a, namespace: n, trustDomain: td, defaultAction: deny}\n"
        "    - {appId: a, namespace: n, trustDomain: td, defaultAction: allow}\n"
        "    - {appId: a, namespace: m, trustDomain: td, defaultAction: deny}\n";
    static const acl_case_t cases[] = {
        C("td", "n", "a", "x", GET, ALLOW, LA, ACL_REASON_NO_RULE),
        C("td", "m", "a", "x", GET, DENY, LA, ACL_REASON_NO_RULE),
        C("td", "o", "a", "x", GET, DENY, LG, ACL_REASON_NO_POLICY),
    };
    acl_t *acl = compile(cfg, H);

    ASSERT(acl != NULL);
    ASSERT_EQ(acl_policy_count(acl), 2);
    RUN(acl, cases);
    acl_unref(acl);
}

/* ---- identity: trust domains, namespaces, malformed SPIFFE IDs ------------------------------ */

TEST(identity_mismatches_and_malformed_ids)
{
    static const char cfg[] = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\n"
                              "spec:\n"
                              "  accessControl:\n"
                              "    defaultAction: allow\n"
                              "    policies:\n"
                              "    - appId: analyst-agent\n"
                              "      namespace: default\n"
                              "      trustDomain: public\n"
                              "      defaultAction: deny\n"
                              "      operations:\n"
                              "      - {name: /mcp, httpVerb: [POST], action: allow}\n";
    static const struct {
        const char *uri; /* NULL: no identity */
        bool allowed;
        acl_reason_t why;
    } peers[] = {
        {"spiffe://public/ns/default/analyst-agent", true, ACL_REASON_VERB},
        /* the same app id in another trust domain or namespace is not this policy */
        {"spiffe://other/ns/default/analyst-agent", true, ACL_REASON_TRUST_DOMAIN},
        {"spiffe://public/ns/prod/analyst-agent", true, ACL_REASON_NO_POLICY},
        /* extra segments are ignored, as in Dapr */
        {"spiffe://public/ns/default/analyst-agent/x", true, ACL_REASON_VERB},
        {NULL, true, ACL_REASON_NO_IDENTITY},
        /* malformed IDs are denied even though the global default allows */
        {"spiffe://public/default/analyst-agent", false, ACL_REASON_BAD_IDENTITY},
        {"spiffe://public/ns/default", false, ACL_REASON_BAD_IDENTITY},
        {"spiffe://Public/ns/default/analyst-agent", false, ACL_REASON_BAD_IDENTITY},
        {"spiffe://public/ns/default/analyst%2Dagent", false, ACL_REASON_BAD_IDENTITY},
        {"spiffe://public/ns/default/../analyst-agent", false, ACL_REASON_BAD_IDENTITY},
        {"spiffe://public/ns/default/analyst-agent?x", false, ACL_REASON_BAD_IDENTITY},
        {"", false, ACL_REASON_BAD_IDENTITY},
    };
    acl_t *acl = compile(cfg, H);
    static spiffe_id_t parsed;

    ASSERT(acl != NULL);
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        acl_decision_t dec;
        bool got = acl_check_peer(acl, peers[i].uri, peers[i].uri ? strlen(peers[i].uri) : 0, "mcp",
                                  3, POST, &parsed, &dec);
        if (got != peers[i].allowed || dec.reason != peers[i].why)
            TEST_FAIL_("%s: got %d/%s", peers[i].uri ? peers[i].uri : "(none)", got,
                       acl_reason_name(dec.reason));
    }
    /* The app's own default denies what the rule does not allow. */
    ASSERT(!acl_check_peer(acl, peers[0].uri, strlen(peers[0].uri), "mcp", 3, GET, NULL, NULL));
    /* Malformed identities are denied even without any ACL. */
    ASSERT(!acl_check_peer(NULL, "spiffe://x", 10, "mcp", 3, POST, NULL, NULL));
    acl_unref(acl);
}

/* ---- validation: missing fields and bad values name file, line and field -------------------- */

#define CFG_HEAD                                                                                   \
    "apiVersion: dapr.io/v1alpha1\n"                                                               \
    "kind: Configuration\n"                                                                        \
    "spec:\n"                                                                                      \
    "  accessControl:\n"                                                                           \
    "    defaultAction: deny\n"                                                                    \
    "    policies:\n"

TEST(validation_errors)
{
    /* Dapr refuses a policy without appId, namespace or trustDomain. */
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: ok\n"
                                  "      namespace: n\n"
                                  "      trustDomain: t\n"
                                  "    - namespace: n\n"
                                  "      trustDomain: t\n",
                         "acl.yaml:10: spec.accessControl.policies[1]: appId: missing");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: a\n"
                                  "      trustDomain: t\n",
                         "acl.yaml:7: spec.accessControl.policies[0]: namespace: missing for "
                         "app \"a\"");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: a\n"
                                  "      namespace: n\n",
                         "acl.yaml:7: spec.accessControl.policies[0]: trustDomain: missing for "
                         "app \"a\"");
    /* An empty value is missing too (Dapr checks for ""). */
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: a\n"
                                  "      namespace: ''\n"
                                  "      trustDomain: t\n",
                         "acl.yaml:8: spec.accessControl.policies[0]: namespace: missing");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: ~\n"
                                  "      namespace: n\n"
                                  "      trustDomain: t\n",
                         "acl.yaml:7: spec.accessControl.policies[0]: appId: missing");
    /* Action words. */
    ASSERT_COMPILE_FAILS("apiVersion: dapr.io/v1alpha1\nkind: Configuration\n"
                         "spec:\n  accessControl:\n    defaultAction: alow\n",
                         "acl.yaml:5: spec.accessControl: defaultAction: expected \"allow\" or "
                         "\"deny\", found \"alow\"");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: a\n"
                                  "      namespace: n\n"
                                  "      trustDomain: t\n"
                                  "      defaultAction: maybe\n",
                         "acl.yaml:10: spec.accessControl.policies[0]: defaultAction: expected");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: a\n"
                                  "      namespace: n\n"
                                  "      trustDomain: t\n"
                                  "      operations:\n"
                                  "      - name: /x\n"
                                  "        action: permit\n",
                         "acl.yaml:12: spec.accessControl.policies[0].operations[0]: action: "
                         "expected \"allow\" or \"deny\", found \"permit\"");
    /* Shapes. */
    ASSERT_COMPILE_FAILS("apiVersion: dapr.io/v1alpha1\nkind: Configuration\n"
                         "spec:\n  accessControl: [1]\n",
                         "acl.yaml:4: spec.accessControl: expected a mapping, found a sequence");
    ASSERT_COMPILE_FAILS(CFG_HEAD "      x: y\n",
                         "spec.accessControl: policies: expected a sequence, found a mapping");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - just-a-string\n",
                         "acl.yaml:7: spec.accessControl.policies[0]: expected a mapping");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: [a]\n",
                         "acl.yaml:7: spec.accessControl.policies[0]: appId: expected a string");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: a\n"
                                  "      namespace: n\n"
                                  "      trustDomain: t\n"
                                  "      operations:\n"
                                  "      - httpVerb: [GET]\n"
                                  "        action: allow\n",
                         "acl.yaml:11: spec.accessControl.policies[0].operations[0]: name: "
                         "missing");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: a\n"
                                  "      namespace: n\n"
                                  "      trustDomain: t\n"
                                  "      operations:\n"
                                  "      - name: /x\n"
                                  "        httpVerb: GET\n",
                         "acl.yaml:12: spec.accessControl.policies[0].operations[0]: httpVerb: "
                         "expected a sequence, found a string");
    ASSERT_COMPILE_FAILS(CFG_HEAD "    - appId: a\n"
                                  "      namespace: n\n"
                                  "      trustDomain: t\n"
                                  "      operations:\n"
                                  "      - name: /x\n"
                                  "        httpVerb: [[GET]]\n",
                         "operations[0]: httpVerb[0]: expected a string, found a sequence");
}

TEST(validation_limits)
{
    static char text[8192];
    char name[ACL_MAX_OPERATION_BYTES + 2];
    acl_t *acl;
    size_t n;

    /* Exactly the longest name is fine; one more byte is not. */
    name[0] = '/';
    memset(name + 1, 'a', ACL_MAX_OPERATION_BYTES - 1);
    name[ACL_MAX_OPERATION_BYTES] = '\0';
    snprintf(text, sizeof(text),
             CFG_HEAD "    - {appId: a, namespace: n, trustDomain: t, operations: [{name: %s, "
                      "httpVerb: ['*'], action: allow}]}\n",
             name);
    acl = compile(text, H);
    ASSERT(acl != NULL);
    acl_unref(acl);
    name[ACL_MAX_OPERATION_BYTES] = 'a';
    name[ACL_MAX_OPERATION_BYTES + 1] = '\0';
    snprintf(text, sizeof(text),
             CFG_HEAD "    - {appId: a, namespace: n, trustDomain: t, operations: [{name: %s, "
                      "httpVerb: ['*'], action: allow}]}\n",
             name);
    ASSERT_COMPILE_FAILS(text, "name: longer than 1024 bytes");

    /* Segment count: 64 is fine, 65 is not. */
    n = 0;
    for (int i = 0; i < ACL_MAX_OPERATION_SEGMENTS; i++)
        n += (size_t)snprintf(name + n, sizeof(name) - n, "/s");
    snprintf(text, sizeof(text),
             CFG_HEAD "    - {appId: a, namespace: n, trustDomain: t, operations: [{name: %s, "
                      "action: allow}]}\n",
             name);
    acl = compile(text, G);
    ASSERT(acl != NULL);
    acl_unref(acl);
    snprintf(name + n, sizeof(name) - n, "/s");
    snprintf(text, sizeof(text),
             CFG_HEAD "    - {appId: a, namespace: n, trustDomain: t, operations: [{name: %s, "
                      "action: allow}]}\n",
             name);
    ASSERT_COMPILE_FAILS(text, "name: more than 64 segments");
}

TEST(compile_releases_everything)
{
    size_t before = mem_used();
    acl_t *acl = compile(dapr_cfg, H);
    char got[400];

    ASSERT(acl != NULL);
    ASSERT(acl_ref(acl) == acl);
    acl_unref(acl);
    acl_unref(acl);
    ASSERT(compile_fails(CFG_HEAD "    - appId: a\n", "namespace", got, sizeof(got)));
    ASSERT_EQ(mem_used(), before);
    acl_unref(NULL);
    ASSERT(acl_ref(NULL) == NULL);
}

TEST(compile_out_of_memory)
{
    res_config_t *cfg = NULL;
    err_detail_t d = {{0}};
    size_t before;
    unsigned long n;

    ASSERT_EQ(res_config_parse(NULL, "acl.yaml", dapr_cfg, strlen(dapr_cfg), 0, &cfg, &d), 0);
    before = mem_used();
    /* Fail each try-allocation in turn: an error or a result, never a leak. */
    for (n = 1; n < 200; n++) {
        acl_t *acl = NULL;
        int rc;
        mem_fail_after(n);
        rc = acl_compile(cfg, H, &acl, &d);
        mem_fail_after(0);
        if (rc == 0) {
            acl_unref(acl);
            break;
        }
        ASSERT(rc == ERR_NOMEM || rc == ERR_TOO_LARGE);
        ASSERT(acl == NULL);
        ASSERT_EQ(mem_used(), before);
    }
    ASSERT(n > 1);
    ASSERT_EQ(mem_used(), before);
    res_config_free(cfg);
}

/* ---- the 403 text, verbs -------------------------------------------------------------------- */

TEST(deny_message)
{
    static spiffe_id_t id;
    buf_t b;

    buf_init(&b, ACL_DENY_MESSAGE_MAX);
    ASSERT_EQ(spiffe_id_from_parts("public", "default", "intruder-agent", &id), 0);
    ASSERT_EQ(acl_deny_message(&b, &id, "mcp", 3, POST), 0);
    ASSERT_STREQ(buf_ptr(&b), "access control policy has denied access to id: "
                              "spiffe://public/ns/default/intruder-agent operation: mcp verb: "
                              "POST");
    buf_reset(&b);
    ASSERT_EQ(acl_deny_message(&b, NULL, "Admin/Users", 11, NOV), 0);
    ASSERT_STREQ(buf_ptr(&b),
                 "access control policy has denied access to id:  operation: Admin/Users verb: "
                 "NONE");
    buf_free(&b);
}

TEST(verbs)
{
    ASSERT_EQ(acl_verb_from_method("GET", 3), GET);
    ASSERT_EQ(acl_verb_from_method("get", 3), GET);
    ASSERT_EQ(acl_verb_from_method("PATCH", 5), ACL_VERB_PATCH);
    ASSERT_EQ(acl_verb_from_method("OPTIONS", 7), ACL_VERB_OPTIONS);
    ASSERT_EQ(acl_verb_from_method("PROPFIND", 8), POST); /* Dapr: unknown verbs are POST */
    ASSERT_EQ(acl_verb_from_method("GE", 2), POST);
    ASSERT_EQ(acl_verb_from_method("NONE", 4), NOV);
    ASSERT_STREQ(acl_verb_name(DEL), "DELETE");
    ASSERT_STREQ(acl_verb_name(NOV), "NONE");
    ASSERT_STREQ(acl_verb_name(42), "NONE");
    ASSERT_STREQ(acl_level_name(ACL_LEVEL_GLOBAL), "global");
    ASSERT_STREQ(acl_level_name(ACL_LEVEL_NONE), "");
    ASSERT_STREQ(acl_reason_name(ACL_REASON_VERB_WILDCARD), "verb_wildcard");
}

/* ---- path tricks: the callee's normalisation, then the check -------------------------------- */

static const char tricks_cfg[] = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\n"
                                 "spec:\n"
                                 "  accessControl:\n"
                                 "    defaultAction: deny\n"
                                 "    policies:\n"
                                 "    - appId: analyst-agent\n" /* allow-list */
                                 "      namespace: default\n"
                                 "      trustDomain: public\n"
                                 "      defaultAction: deny\n"
                                 "      operations:\n"
                                 "      - {name: /mcp, httpVerb: [POST], action: allow}\n"
                                 "    - appId: ops-agent\n" /* deny-list */
                                 "      namespace: default\n"
                                 "      trustDomain: public\n"
                                 "      defaultAction: allow\n"
                                 "      operations:\n"
                                 "      - {name: /admin/**, httpVerb: ['*'], action: deny}\n";

TEST(path_tricks_cannot_bypass_rules)
{
    static const struct {
        int line;
        const char *app;    /* caller */
        const char *url;    /* what reaches the callee's internal port */
        int verb;           /* request verb */
        int rc;             /* 0, or the 400 the callee returns before any check */
        const char *method; /* what the ACL sees and the app is sent */
        bool allowed;       /* verdict */
    } cases[] = {
        /* allow-list: only POST /mcp */
        {__LINE__, "analyst-agent", "/mcp", POST, 0, "mcp", ALLOW},
        {__LINE__, "analyst-agent", "/mcp", GET, 0, "mcp", DENY},
        {__LINE__, "analyst-agent", "/MCP", GET, 0, "MCP", DENY},
        {__LINE__, "analyst-agent", "/mcp/../admin", POST, 0, "admin", DENY},
        {__LINE__, "analyst-agent", "/mcp/%2e%2e/admin", POST, 0, "admin", DENY},
        {__LINE__, "analyst-agent", "/mcp%2f..%2fadmin", POST, 0, "admin", DENY},
        {__LINE__, "analyst-agent", "/mcp%2F%2E%2E%2Fadmin", POST, 0, "admin", DENY},
        {__LINE__, "analyst-agent", "/%2e%2e/%2e%2e/admin", POST, 0, "admin", DENY},
        {__LINE__, "analyst-agent", "/mcp.", POST, 0, "mcp.", DENY},
        {__LINE__, "analyst-agent", "/mcp..", POST, 0, "mcp..", DENY},
        {__LINE__, "analyst-agent", "/./mcp", POST, 0, "mcp", ALLOW},
        {__LINE__, "analyst-agent", "/x/../mcp", POST, 0, "mcp", ALLOW},
        {__LINE__, "analyst-agent", "/mcp%00", POST, ERR_INVOKE_BAD_METHOD, NULL, DENY},
        {__LINE__, "analyst-agent", "/mcp%23frag", POST, ERR_INVOKE_BAD_METHOD, NULL, DENY},
        {__LINE__, "analyst-agent", "/mcp%3Fq", POST, ERR_INVOKE_BAD_METHOD, NULL, DENY},
        {__LINE__, "analyst-agent", "/mcp%0d%0aX:%20y", POST, ERR_INVOKE_BAD_METHOD, NULL, DENY},
        {__LINE__, "analyst-agent", "/mcp%7f", POST, ERR_INVOKE_BAD_METHOD, NULL, DENY},
        {__LINE__, "analyst-agent", "/mcp#frag", POST, ERR_NET_BAD_REQUEST, NULL, DENY},
        {__LINE__, "analyst-agent", "/mcp%zz", POST, ERR_NET_BAD_REQUEST, NULL, DENY},
        /* the query is not part of the method */
        {__LINE__, "analyst-agent", "/admin?/mcp", POST, 0, "admin", DENY},
        /* deny-list: everything but /admin and below */
        {__LINE__, "ops-agent", "/public", GET, 0, "public", ALLOW},
        {__LINE__, "ops-agent", "/admin", GET, 0, "admin", DENY},
        {__LINE__, "ops-agent", "/admin/users", DEL, 0, "admin/users", DENY},
        {__LINE__, "ops-agent", "/ADMIN/users", GET, 0, "ADMIN/users", DENY},
        {__LINE__, "ops-agent", "/AdMiN", GET, 0, "AdMiN", DENY},
        {__LINE__, "ops-agent", "/admin%2fusers", GET, 0, "admin/users", DENY},
        {__LINE__, "ops-agent", "/Admin%2FUsers", GET, 0, "Admin/Users", DENY},
        {__LINE__, "ops-agent", "//admin//users", GET, 0, "/admin/users", DENY},
        {__LINE__, "ops-agent", "/./admin/./users", GET, 0, "admin/users", DENY},
        {__LINE__, "ops-agent", "/public/../admin", GET, 0, "admin", DENY},
        {__LINE__, "ops-agent", "/public/%2e%2e/admin", GET, 0, "admin", DENY},
        {__LINE__, "ops-agent", "/public/%2E%2E%2Fadmin", GET, 0, "admin", DENY},
        {__LINE__, "ops-agent", "/%2e%2e/admin", GET, 0, "admin", DENY},
        {__LINE__, "ops-agent", "/../../admin/x", GET, 0, "admin/x", DENY},
        {__LINE__, "ops-agent", "/admin/", GET, 0, "admin", DENY},
        {__LINE__, "ops-agent", "/admin/.", GET, 0, "admin", DENY},
        {__LINE__, "ops-agent", "/admin/x/..", GET, 0, "admin", DENY},
        /* not admin: allowed, and the app is sent exactly that other path */
        {__LINE__, "ops-agent", "/admin.", GET, 0, "admin.", ALLOW},
        {__LINE__, "ops-agent", "/admin.", GET, 0, "admin.", ALLOW},
        {__LINE__, "ops-agent", "/admin%2e", GET, 0, "admin.", ALLOW},
        {__LINE__, "ops-agent", "/admin%09", GET, ERR_INVOKE_BAD_METHOD, NULL, DENY},
    };
    acl_t *acl = compile(tricks_cfg, H);

    ASSERT(acl != NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        static spiffe_id_t id;
        err_detail_t d = {{0}};
        buf_t path, method;
        const char *q;
        size_t qlen;
        acl_decision_t dec;
        bool got = false;
        int rc;

        buf_init(&path, 64 * 1024);
        buf_init(&method, 64 * 1024);
        /* What invoke__on_internal_request does before it forwards. */
        rc = invoke_url_split(cases[i].url, strlen(cases[i].url), &path, &q, &qlen, &d);
        if (rc == 0)
            rc = invoke_method_normalize(path.ptr + 1, path.len - 1, &method, &d);
        if (rc == 0) {
            ASSERT_EQ(spiffe_id_from_parts("public", "default", cases[i].app, &id), 0);
            got = acl_check(acl, &id, buf_ptr(&method), method.len, cases[i].verb, &dec);
        }
        if (rc != cases[i].rc || (rc == 0 && strcmp(buf_ptr(&method), cases[i].method) != 0) ||
            got != cases[i].allowed) {
            fprintf(stderr, "  line %d: %s %s: rc=%s method=\"%s\" %s\n", cases[i].line,
                    acl_verb_name(cases[i].verb), cases[i].url, err_name(rc), buf_ptr(&method),
                    got ? "allowed" : "denied");
            *test_failed_ = 1;
        }
        buf_free(&path);
        buf_free(&method);
    }
    acl_unref(acl);
}

/* A long hostile method with many segments: the walk is bounded by the trie, not the input. */
TEST(long_methods)
{
    static char m[60000];
    static spiffe_id_t id;
    acl_t *acl = compile(tricks_cfg, H);
    size_t n = 0;

    ASSERT(acl != NULL);
    ASSERT_EQ(spiffe_id_from_parts("public", "default", "ops-agent", &id), 0);
    n += (size_t)snprintf(m, sizeof(m), "admin");
    while (n + 2 < sizeof(m)) {
        m[n++] = '/';
        m[n++] = 'a';
    }
    ASSERT(!acl_check(acl, &id, m, n, GET, NULL));
    m[0] = 'b';
    ASSERT(acl_check(acl, &id, m, n, GET, NULL));
    memset(m, '/', sizeof(m));
    ASSERT(acl_check(acl, &id, m, sizeof(m), GET, NULL));
    acl_unref(acl);
}
