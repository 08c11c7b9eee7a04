/*
 * acl — Dapr's service-invocation access control (Configuration spec.accessControl), compiled
 * once and evaluated per call on the callee sidecar (spec dapr.md §2).
 *
 * Job: turn spec.accessControl of a loaded Configuration into an immutable acl_t (policies keyed
 * by caller appId + namespace, one operation trie per policy with per-verb actions), and answer
 * "may this caller invoke this method with this verb" with Dapr's exact algorithm, reporting
 * which level and rule decided.
 *
 * Semantics (Dapr pkg/acl/acl.go and pkg/config/acl_trie.go, followed exactly unless noted):
 * - No accessControl section, or one with no trustDomain, no defaultAction and no policies:
 *   there is no ACL and every call is allowed (level ACL_LEVEL_NONE).
 * - No caller identity (mTLS off): the global defaultAction decides every call.
 * - A malformed caller SPIFFE ID is denied outright, even without accessControl (acl_check_peer).
 * - A caller without a policy for its appId+namespace, or whose trust domain differs from the
 *   policy's: global defaultAction. A policy's own defaultAction, when set, replaces it (level
 *   "app"). The operation trie is then searched with "/" + method (lower-cased for HTTP apps):
 *   children in insertion order, first hit wins (exact, "/\*" on the last segment only, "/\**",
 *   in-segment glob); a rule reached before the last segment is a prefix match; "/a/\*" and
 *   "/a/\**" also match "/a". A matched rule sets the action from its verb entry, else its "*"
 *   entry, else leaves it; a call without a verb takes the policy's defaultAction ("" = deny).
 *   gRPC apps ignore verbs and take the rule's action.
 * - Verb names in httpVerb are compared as written, like Dapr: "GET" matches a GET, "get" never
 *   does (compile warns about it). An operation without httpVerb never changes an HTTP decision
 *   (compile warns about that too).
 * Decisions where Dapr's docs and code disagree, and our own limits (README, configuration):
 * - An omitted global defaultAction, in a section that says anything at all, is DENY (Dapr's
 *   code overlays its default Configuration, so it keeps "allow"; its docs and its parser's own
 *   branch say deny). Compile logs a warning.
 * - An empty or missing operation action is DENY (Dapr's code; its docs say allow).
 * - defaultAction and action must be "allow" or "deny" in any case, or empty where Dapr allows
 *   empty; any other word is a load error (Dapr silently treats it as deny).
 * - A policy missing appId, namespace or trustDomain is a load error, as in Dapr; so is an
 *   operation without a name (Dapr would silently read it as "/"). Duplicate appId+namespace
 *   policies: the last wins, as in Dapr (compile warns).
 * - Operation names longer than ACL_MAX_OPERATION_BYTES or with more than
 *   ACL_MAX_OPERATION_SEGMENTS segments are load errors. Request methods have no segment limit:
 *   the trie walk streams over the method and stops at the trie's depth, so it needs no scratch.
 * - HTTP lower-casing is ASCII only; other bytes compare exactly (Go lower-cases Unicode too).
 *
 * Ownership: acl_compile returns an acl_t with one reference; acl_ref/acl_unref share it and the
 * last unref frees it. It copies what it needs: the Configuration may be freed afterwards.
 * Strings in an acl_decision_t point into the acl_t and live as long as the reference used for
 * the check.
 * Threading: acl_compile runs on any thread. An acl_t is immutable: any number of threads may
 * check against it at once; acl_ref/acl_unref are atomic. acl_check never allocates or locks.
 * Errors: acl_compile returns ERR_RES_INVALID (the detail reads "<file>:<line>: <field>:
 * <problem>"), ERR_NOMEM or ERR_INVAL. acl_deny_message returns buf_t's errors.
 */
#ifndef OUTRIGGER_POLICY_ACL_H
#define OUTRIGGER_POLICY_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"
#include "identity/spiffe.h"
#include "resources/resources.h"

#define ACL_MAX_OPERATION_BYTES 1024  /* bytes of one operations[].name */
#define ACL_MAX_OPERATION_SEGMENTS 64 /* '/'-separated segments of one operations[].name */
#define ACL_DENY_MESSAGE_MAX 8192     /* suggested buf_t max for acl_deny_message */

/** How the callee app is reached: Dapr's isHTTP (--app-protocol http, https, h2c) or gRPC. */
typedef enum acl_proto { ACL_PROTO_HTTP = 0, ACL_PROTO_GRPC } acl_proto_t;

/** Dapr's HTTPExtension verbs, with Dapr's numbers; ACL_VERB_NONE is "no verb". */
typedef enum acl_verb {
    ACL_VERB_NONE = -1,
    ACL_VERB_GET = 1,
    ACL_VERB_HEAD = 2,
    ACL_VERB_POST = 3,
    ACL_VERB_PUT = 4,
    ACL_VERB_DELETE = 5,
    ACL_VERB_CONNECT = 6,
    ACL_VERB_OPTIONS = 7,
    ACL_VERB_TRACE = 8,
    ACL_VERB_PATCH = 9,
} acl_verb_t;

/** Dapr's actionPolicy: which default was in force. Metrics are counted for GLOBAL and APP. */
typedef enum acl_level {
    ACL_LEVEL_NONE = 0, /* no ACL, or the caller's identity was malformed: no metric in Dapr */
    ACL_LEVEL_GLOBAL,   /* dapr_runtime_acl_global_policy_action_{allowed,blocked}_total */
    ACL_LEVEL_APP,      /* dapr_runtime_acl_app_policy_action_{allowed,blocked}_total */
} acl_level_t;

/** What decided, for debug logs. */
typedef enum acl_reason {
    ACL_REASON_NO_ACL = 0,    /* no accessControl: allowed */
    ACL_REASON_BAD_IDENTITY,  /* malformed caller SPIFFE ID: denied */
    ACL_REASON_NO_IDENTITY,   /* no caller identity: global defaultAction */
    ACL_REASON_NO_POLICY,     /* no policy for appId+namespace: global defaultAction */
    ACL_REASON_TRUST_DOMAIN,  /* policy's trustDomain differs: global defaultAction */
    ACL_REASON_NO_RULE,       /* no operation matched: the policy's default (else global) */
    ACL_REASON_VERB,          /* the matched rule's entry for the verb */
    ACL_REASON_VERB_WILDCARD, /* the matched rule's "*" entry */
    ACL_REASON_VERB_UNLISTED, /* rule matched, verb not listed: default unchanged */
    ACL_REASON_NO_VERB,       /* HTTP call without a verb: the policy's defaultAction */
    ACL_REASON_RULE,          /* gRPC: the matched rule's action */
} acl_reason_t;

/** The outcome of one check. Strings are borrowed from the acl_t (NULL when not applicable). */
typedef struct acl_decision {
    bool allowed;                 /* the verdict */
    acl_level_t level;            /* Dapr's metric family */
    acl_reason_t reason;          /* what decided */
    const char *policy_app_id;    /* appId of the caller's policy, when one applied */
    const char *policy_namespace; /* its namespace */
    const char *operation;        /* matched operation name as compiled ("/mcp/\**") */
    const char *verb;             /* verb entry that decided: "POST" or "*" */
} acl_decision_t;

typedef struct acl acl_t; /* opaque, immutable, refcounted */

/**
 * Compiles spec.accessControl of @p cfg (borrowed) for an app reached over @p proto into *@p out
 * (one reference). A Configuration without accessControl yields an acl_t that allows
 * everything (acl_enabled() false). Warnings (see above) go to the log under scope "acl".
 */
int acl_compile(const res_config_t *cfg, acl_proto_t proto, acl_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Takes one more reference to @p acl (NULL allowed) and returns it. */
acl_t *acl_ref(acl_t *acl);
/** Drops one reference; the last one frees @p acl. NULL is a no-op. */
void acl_unref(acl_t *acl);

/** False when the Configuration specified no access control (everything allowed). */
bool acl_enabled(const acl_t *acl);
/** spec.accessControl.trustDomain, or "public" when unset: this app's own trust domain. */
const char *acl_trust_domain(const acl_t *acl);
/** Number of policies kept (after duplicates are replaced). */
size_t acl_policy_count(const acl_t *acl);

/**
 * Decides whether @p caller (NULL: no identity) may call @p method (@p len bytes, as normalised
 * by invoke_method_normalize; a leading '/' is optional) with @p verb (an acl_verb_t; ignored
 * for gRPC apps). @p acl NULL means no ACL. Fills *@p out when not NULL; returns the verdict.
 * Never allocates, never fails.
 */
bool acl_check(const acl_t *acl, const spiffe_id_t *caller, const char *method, size_t len,
               int verb, acl_decision_t *out);

/**
 * acl_check for a peer known by the URI SAN of its certificate: @p uri NULL means no identity;
 * a URI that spiffe_id_parse rejects is denied with ACL_REASON_BAD_IDENTITY (Dapr: "malformed
 * SPIFFE ID"). When @p parsed is not NULL it receives the parsed ID (valid only if
 * out->reason != ACL_REASON_BAD_IDENTITY and @p uri was given).
 */
bool acl_check_peer(const acl_t *acl, const char *uri, size_t uri_len, const char *method,
                    size_t len, int verb, spiffe_id_t *parsed, acl_decision_t *out);

/**
 * Appends Dapr's denial text to @p out: "access control policy has denied access to id: <ID>
 * operation: <method> verb: <VERB>", where <ID> is the caller's SPIFFE ID ("" without one),
 * <method> is as given (not lower-cased) and <VERB> is acl_verb_name(@p verb).
 */
int acl_deny_message(buf_t *out, const spiffe_id_t *caller, const char *method, size_t len,
                     int verb) __attribute__((warn_unused_result));

/**
 * The verb Dapr records for an HTTP request method: the upper-cased name when it is one of
 * Dapr's verbs, otherwise POST (Dapr's WithHTTPExtension). "NONE" gives ACL_VERB_NONE; the
 * caller rejects CONNECT and NONE before the ACL (spec dapr.md §1.3).
 */
acl_verb_t acl_verb_from_method(const char *m, size_t n);
/** "GET".."PATCH", "NONE" for ACL_VERB_NONE and anything unknown. */
const char *acl_verb_name(int verb);
/** "global", "app" or "" (ACL_LEVEL_NONE). */
const char *acl_level_name(acl_level_t level);
/** A short name of @p r for logs ("no_policy", "verb_wildcard", ...). */
const char *acl_reason_name(acl_reason_t r);

/*
 * Adapters for res_snapshot_load / res_watch (resources/watch.h): @p ctx is NULL (HTTP app) or
 * points to an acl_proto_t; the snapshot data is the acl_t.
 */
/** Compiles @p cfg into an acl_t stored in *@p data. Thread-safe. */
int acl_snapshot_build(const res_config_t *cfg, void *ctx, void **data, err_detail_t *d)
    __attribute__((warn_unused_result));
/** Releases what acl_snapshot_build stored (acl_unref). */
void acl_snapshot_dispose(void *data);

#endif
