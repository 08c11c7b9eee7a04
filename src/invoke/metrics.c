/*
 * The sidecar's Prometheus counters that exist so far: accessControl decisions and workload
 * certificate events, with Dapr's names (spec dapr.md §6.1). Recording is one relaxed atomic add
 * on a slot found in a fixed table: no lock, no allocation. Exposition is text format 0.0.4 on
 * --metrics-port, at "/" (Dapr) and "/metrics" (Prometheus' default).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/str.h"
#include "invoke/invoke_int.h"
#include "policy/acl.h"
#include "resiliency/resiliency.h"

#define ACL_LABEL_SLOTS 64 /* distinct (trust domain, namespace) label pairs kept; then "other" */
#define LABEL_MAX 128

typedef struct acl_slot {
    _Atomic int used;          /* 0 free, 1 being filled, 2 ready */
    char td[LABEL_MAX];        /* caller trust domain label */
    char ns[LABEL_MAX];        /* caller namespace label */
    atomic_ullong count[2][2]; /* [global=0, app=1][blocked=0, allowed=1] */
} acl_slot_t;

struct invoke_metrics {
    acl_slot_t acl[ACL_LABEL_SLOTS + 1]; /* the last slot counts labels that did not fit */
    atomic_ullong mtls[INVOKE_MTLS_EVENTS];
};

static const char *const mtls_names[INVOKE_MTLS_EVENTS] = {
    "dapr_runtime_mtls_init_total",
    "dapr_runtime_mtls_init_fail_total",
    "dapr_runtime_mtls_workload_cert_rotated_total",
    "dapr_runtime_mtls_workload_cert_rotated_fail_total",
};

invoke_metrics_t *invoke__metrics_new(void)
{
    invoke_metrics_t *m = mem_calloc(sizeof(*m));
    str_copy(m->acl[ACL_LABEL_SLOTS].td, LABEL_MAX, "other");
    str_copy(m->acl[ACL_LABEL_SLOTS].ns, LABEL_MAX, "other");
    atomic_store(&m->acl[ACL_LABEL_SLOTS].used, 2);
    return m;
}

void invoke__metrics_free(invoke_metrics_t *m)
{
    mem_free(m);
}

/* Finds or claims the slot for a label pair. Slots are claimed once and never freed, so a reader
 * that sees used == 2 may read the labels without a lock. */
static acl_slot_t *acl_slot(invoke_metrics_t *m, const char *td, const char *ns)
{
    for (int i = 0; i < ACL_LABEL_SLOTS; i++) {
        acl_slot_t *s = &m->acl[i];
        int u = atomic_load(&s->used);
        if (u == 0) {
            int expected = 0;
            if (atomic_compare_exchange_strong(&s->used, &expected, 1)) {
                str_copy(s->td, LABEL_MAX, td);
                str_copy(s->ns, LABEL_MAX, ns);
                atomic_store(&s->used, 2);
                return s;
            }
            u = atomic_load(&s->used);
        }
        while (u == 1) /* another thread is filling it in: a few stores away */
            u = atomic_load(&s->used);
        if (strcmp(s->td, td) == 0 && strcmp(s->ns, ns) == 0)
            return s;
    }
    return &m->acl[ACL_LABEL_SLOTS];
}

void invoke__metrics_acl(invoke_metrics_t *m, int level, bool allowed, const char *td,
                         const char *ns)
{
    if (m == NULL || (level != ACL_LEVEL_GLOBAL && level != ACL_LEVEL_APP))
        return;
    atomic_fetch_add_explicit(
        &acl_slot(m, td ? td : "", ns ? ns : "")->count[level == ACL_LEVEL_APP][allowed], 1,
        memory_order_relaxed);
}

void invoke__metrics_mtls(invoke_metrics_t *m, invoke_mtls_event_t e)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->mtls[e], 1, memory_order_relaxed);
}

int invoke__metrics_render(invoke_metrics_t *m, const char *app_id, buf_t *b)
{
    static const char *const acl_names[2][2] = {
        {"dapr_runtime_acl_global_policy_action_blocked_total",
         "dapr_runtime_acl_global_policy_action_allowed_total"},
        {"dapr_runtime_acl_app_policy_action_blocked_total",
         "dapr_runtime_acl_app_policy_action_allowed_total"},
    };
    int rc = 0;

    for (int lv = 0; lv < 2 && rc == 0; lv++) {
        for (int al = 0; al < 2 && rc == 0; al++) {
            rc = buf_printf(
                b, "# HELP %s accessControl decisions (%s policy, %s).\n# TYPE %s counter\n",
                acl_names[lv][al], lv ? "app" : "global", al ? "allowed" : "blocked",
                acl_names[lv][al]);
            for (int i = 0; i <= ACL_LABEL_SLOTS && rc == 0; i++) {
                acl_slot_t *s = &m->acl[i];
                unsigned long long v;
                if (atomic_load(&s->used) != 2)
                    continue;
                v = atomic_load(&s->count[lv][al]);
                if (v == 0)
                    continue;
                rc = buf_printf(b, "%s{app_id=\"", acl_names[lv][al]);
                rc = rc ? rc : buf_append_prom_label(b, app_id);
                rc = rc ? rc : buf_append_str(b, "\",trustDomain=\"");
                rc = rc ? rc : buf_append_prom_label(b, s->td);
                rc = rc ? rc : buf_append_str(b, "\",namespace=\"");
                rc = rc ? rc : buf_append_prom_label(b, s->ns);
                rc = rc ? rc : buf_printf(b, "\"} %llu\n", v);
            }
        }
    }
    for (int e = 0; e < INVOKE_MTLS_EVENTS && rc == 0; e++) {
        rc =
            buf_printf(b, "# HELP %s Workload certificate events.\n# TYPE %s counter\n%s{app_id=\"",
                       mtls_names[e], mtls_names[e], mtls_names[e]);
        rc = rc ? rc : buf_append_prom_label(b, app_id);
        rc = rc ? rc : buf_printf(b, "\"} %llu\n", (unsigned long long)atomic_load(&m->mtls[e]));
    }
    return rc;
}

/* The metrics port: GET / or /metrics. */
void invoke__on_metrics_request(net_sreq_t *req, void *ctx)
{
    invoke_worker_t *iw = ctx;
    const net_head_t *h = net_sreq_head(req);
    buf_t b;

    if (!(str_eq(h->url, h->url_len, "/") || str_eq(h->url, h->url_len, "/metrics"))) {
        net_sreq_respond_simple(req, 404, "text/plain", "not found\n", 10);
        return;
    }
    buf_init(&b, 64 * 1024 * 1024); /* every family full: about 30 MiB */
    if (invoke__metrics_render(iw->sc->metrics, iw->sc->opts->app_id, &b) == 0 &&
        resil_metrics_render(iw->sc->resil, &b) == 0 &&
        (iw->sc->obs == NULL || obs_metrics_render(iw->sc->obs, &b) == 0))
        net_sreq_respond_simple(req, 200, "text/plain; version=0.0.4", buf_ptr(&b), b.len);
    else
        net_sreq_respond_simple(req, 500, "text/plain", "metrics too large\n", 18);
    buf_free(&b);
}
