/*
 * The dns name resolution backend ("dns", or "kubernetes" as Dapr calls it): an app's address is
 * computed, not looked up. Default form, as Dapr's kubernetes resolver:
 * <app-id>-dapr.<namespace>.svc.<clusterDomain>:<port>. A `template` replaces the whole form; it
 * understands {{.ID}}, {{.Namespace}} and {{.Port}} (spaces inside the braces allowed) and nothing
 * else of Go's text/template, and anything else in {{ }} is refused when the backend is created.
 * The port is the `port` key if set, else the port the sidecar passes (its own internal port, as
 * Dapr passes its own internal gRPC port), else 50002. Turning the name into an IP address is the
 * net layer's job (uv_getaddrinfo).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "invoke/resolve/resolve_int.h"

#define DEFAULT_CLUSTER_DOMAIN "cluster.local"
#define TEMPLATE_MAX 512
#define DOMAIN_MAX 253

enum field { FIELD_ID, FIELD_NAMESPACE, FIELD_PORT };

struct resolve__dns {
    char tmpl[TEMPLATE_MAX + 1]; /* validated template */
    int port;                    /* value of {{.Port}} */
};

/*
 * Reads the placeholder at @p p, which starts with "{{": sets *f and returns its length, or 0
 * when it is not one of the three we support (or is not closed).
 */
static size_t placeholder(const char *p, enum field *f)
{
    static const struct {
        const char *name;
        enum field f;
    } names[] = {{".ID", FIELD_ID}, {".Namespace", FIELD_NAMESPACE}, {".Port", FIELD_PORT}};
    const char *end = strstr(p + 2, "}}");
    const char *in = p + 2;
    size_t n, i;

    if (end == NULL)
        return 0;
    n = (size_t)(end - in);
    str_trim(&in, &n);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (str_eq(in, n, names[i].name)) {
            *f = names[i].f;
            return (size_t)(end + 2 - p);
        }
    }
    return 0;
}

/* Writes @p tmpl with its placeholders replaced into @p out; ERR_TOO_LARGE when it does not fit.
 * The template was validated, so every "{{" starts a known placeholder. */
static int render(const char *tmpl, const char *id, const char *ns, int port, char *out,
                  size_t out_len)
{
    size_t o = 0;
    const char *p = tmpl;

    while (*p != '\0') {
        enum field f = FIELD_ID;
        size_t len = p[0] == '{' && p[1] == '{' ? placeholder(p, &f) : 0;
        char num[8];
        const char *v;
        size_t vlen;

        if (len == 0) {
            v = p;
            vlen = 1;
            len = 1;
        } else if (f == FIELD_PORT) {
            snprintf(num, sizeof(num), "%d", port);
            v = num;
            vlen = strlen(num);
        } else {
            v = f == FIELD_ID ? id : ns;
            vlen = strlen(v);
        }
        if (vlen >= out_len - o)
            return ERR_TOO_LARGE;
        memcpy(out + o, v, vlen);
        o += vlen;
        p += len;
    }
    out[o] = '\0';
    return 0;
}

static bool valid_domain(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > DOMAIN_MAX)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Refuses a template with "{{" that is not a supported placeholder, naming the first one. */
static int check_template(const resolve__conf_t *c, const char *t, err_detail_t *d)
{
    const char *p;

    if (strlen(t) > TEMPLATE_MAX)
        return resolve__conf_err(c, "template", d, "longer than %d bytes", TEMPLATE_MAX);
    for (p = strstr(t, "{{"); p != NULL; p = strstr(p, "{{")) {
        enum field f;
        size_t len = placeholder(p, &f);
        if (len == 0) {
            const char *end = strstr(p + 2, "}}");
            int shown = end != NULL && end + 2 - p <= 48 ? (int)(end + 2 - p) : 24;
            return resolve__conf_err(c, "template", d,
                                     "unsupported placeholder \"%.*s\" (only {{.ID}}, "
                                     "{{.Namespace}} and {{.Port}})",
                                     shown, p);
        }
        p += len;
    }
    return 0;
}

int resolve__dns_new(const resolve__conf_t *c, int default_port, resolve__dns_t **out,
                     err_detail_t *d)
{
    const char *tmpl = NULL, *domain = NULL, *port = NULL;
    resolve__dns_t *s = NULL;
    int rc;

    rc = resolve__conf_str(c, "template", NULL, &tmpl, d);
    if (rc == 0)
        rc = resolve__conf_str(c, "clusterDomain", NULL, &domain, d);
    if (rc == 0)
        rc = resolve__conf_str(c, "port", NULL, &port, d);
    if (rc < 0)
        return rc;
    s = mem_calloc(sizeof(*s));
    s->port = default_port;
    if (port != NULL && str_port(port, &s->port) < 0) {
        rc = resolve__conf_err(c, "port", d, "\"%.16s\" is not a port (1-65535)", port);
        goto out;
    }
    if (domain != NULL && domain[0] != '\0' && !valid_domain(domain)) {
        rc = resolve__conf_err(c, "clusterDomain", d, "\"%.64s\" is not a DNS domain", domain);
        goto out;
    }
    if (tmpl != NULL && tmpl[0] != '\0') {
        rc = check_template(c, tmpl, d);
        if (rc < 0)
            goto out;
        if (domain != NULL && domain[0] != '\0')
            log_warn("resolve", "nameResolution: template and clusterDomain are mutually "
                                "exclusive; using the template");
        snprintf(s->tmpl, sizeof(s->tmpl), "%s", tmpl);
    } else {
        snprintf(s->tmpl, sizeof(s->tmpl), "{{.ID}}-dapr.{{.Namespace}}.svc.%s:{{.Port}}",
                 domain != NULL && domain[0] != '\0' ? domain : DEFAULT_CLUSTER_DOMAIN);
    }
    *out = s;
    s = NULL;
out:
    mem_free(s);
    return rc;
}

int resolve__dns_lookup(const resolve__dns_t *s, const char *app_id, const char *ns, char *out,
                        size_t out_len, err_detail_t *d)
{
    if (ns[0] == '\0')
        return err_set(d, ERR_INVAL, "dns name resolution needs a namespace");
    if (render(s->tmpl, app_id, ns, s->port, out, out_len) < 0)
        return err_set(d, ERR_TOO_LARGE, "address of \"%.64s\" does not fit in %zu bytes", app_id,
                       out_len);
    return 0;
}

void resolve__dns_free(resolve__dns_t *s)
{
    mem_free(s);
}
