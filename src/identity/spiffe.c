/*
 * SPIFFE ID parsing: one left-to-right scan that checks every byte against the SPIFFE character
 * sets, then Dapr's /ns/<namespace>/<app id> shape. Nothing is decoded, so there is exactly one
 * spelling of each identity and policy lookups compare the bytes the certificate carries.
 */
#include "identity/spiffe.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

#define SCHEME "spiffe://"
#define SCHEME_LEN (sizeof(SCHEME) - 1)

/* SPIFFE ID spec §2.1: trust domains are lower case; '.', '-' and '_' are the only symbols. */
static bool td_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* SPIFFE ID spec §2.2: path segments may use both cases, digits, '.', '-' and '_'. */
static bool seg_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* True when [p, p+n) is a valid path segment: non-empty, allowed bytes, not "." or "..". */
static bool seg_ok(const char *p, size_t n)
{
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!seg_char((unsigned char)p[i]))
            return false;
    }
    return true;
}

static bool td_ok(const char *p, size_t n)
{
    if (n == 0 || n > SPIFFE_TRUST_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!td_char((unsigned char)p[i]))
            return false;
    }
    return true;
}

/*
 * Checks [uri, uri+len) and fills *out:
 * 1. scheme, then the trust domain up to the first '/';
 * 2. every path segment (so a malformed segment after the app id is still rejected, as
 *    go-spiffe rejects the whole ID before Dapr looks at its path);
 * 3. the first three segments are "ns", the namespace and the app id.
 * *out is written only when everything holds.
 */
int spiffe_id_parse(const char *uri, size_t len, spiffe_id_t *out)
{
    const char *seg[3] = {NULL, NULL, NULL};
    size_t seg_len[3] = {0, 0, 0};
    size_t i, td_end, nseg = 0;

    if (uri == NULL || out == NULL)
        return ERR_INVAL;
    if (len > SPIFFE_ID_MAX || len < SCHEME_LEN || memcmp(uri, SCHEME, SCHEME_LEN) != 0)
        return ERR_IDENTITY_BAD_SPIFFE_ID;
    for (td_end = SCHEME_LEN; td_end < len && uri[td_end] != '/'; td_end++)
        ;
    if (!td_ok(uri + SCHEME_LEN, td_end - SCHEME_LEN))
        return ERR_IDENTITY_BAD_SPIFFE_ID;
    for (i = td_end; i < len;) {
        size_t j = i + 1;
        while (j < len && uri[j] != '/')
            j++;
        if (!seg_ok(uri + i + 1, j - i - 1))
            return ERR_IDENTITY_BAD_SPIFFE_ID;
        if (nseg < 3) {
            seg[nseg] = uri + i + 1;
            seg_len[nseg] = j - i - 1;
        }
        nseg++;
        i = j;
    }
    if (nseg < 3 || seg_len[0] != 2 || memcmp(seg[0], "ns", 2) != 0 ||
        seg_len[1] > SPIFFE_NAME_MAX || seg_len[2] > SPIFFE_NAME_MAX)
        return ERR_IDENTITY_BAD_SPIFFE_ID;

    memcpy(out->uri, uri, len);
    out->uri[len] = '\0';
    out->uri_len = len;
    memcpy(out->trust_domain, uri + SCHEME_LEN, td_end - SCHEME_LEN);
    out->trust_domain[td_end - SCHEME_LEN] = '\0';
    memcpy(out->ns, seg[1], seg_len[1]);
    out->ns[seg_len[1]] = '\0';
    memcpy(out->app_id, seg[2], seg_len[2]);
    out->app_id[seg_len[2]] = '\0';
    return 0;
}

/* Checks the three parts on their own, so that "a/b" cannot smuggle a segment into an ID. */
static int parts_ok(const char *td, const char *ns, const char *app_id)
{
    size_t ns_len, app_len;

    if (td == NULL || ns == NULL || app_id == NULL)
        return ERR_INVAL;
    ns_len = strlen(ns);
    app_len = strlen(app_id);
    if (!td_ok(td, strlen(td)) || ns_len > SPIFFE_NAME_MAX || app_len > SPIFFE_NAME_MAX ||
        !seg_ok(ns, ns_len) || !seg_ok(app_id, app_len))
        return ERR_IDENTITY_BAD_SPIFFE_ID;
    return 0;
}

int spiffe_id_format(const char *td, const char *ns, const char *app_id, char *out, size_t out_len)
{
    int rc = parts_ok(td, ns, app_id);
    size_t td_len, ns_len, app_len, n;
    char *w;

    if (rc < 0)
        return rc;
    if (out == NULL)
        return ERR_INVAL;
    /* Called per proxied request (the peer a caller expects): concatenated, no printf. The parts
     * are bounded (255 bytes each), so the whole always fits SPIFFE_ID_MAX. */
    td_len = strlen(td);
    ns_len = strlen(ns);
    app_len = strlen(app_id);
    n = SCHEME_LEN + td_len + 4 + ns_len + 1 + app_len;
    if (n > SPIFFE_ID_MAX)
        return ERR_IDENTITY_BAD_SPIFFE_ID;
    if (n >= out_len)
        return ERR_TOO_LARGE;
    w = out;
    memcpy(w, SCHEME, SCHEME_LEN);
    w += SCHEME_LEN;
    memcpy(w, td, td_len);
    w += td_len;
    memcpy(w, "/ns/", 4);
    w += 4;
    memcpy(w, ns, ns_len);
    w += ns_len;
    *w++ = '/';
    memcpy(w, app_id, app_len);
    w[app_len] = '\0';
    return 0;
}

int spiffe_id_from_parts(const char *td, const char *ns, const char *app_id, spiffe_id_t *out)
{
    char tmp[SPIFFE_ID_MAX + 1];
    int rc;

    if (out == NULL)
        return ERR_INVAL;
    rc = spiffe_id_format(td, ns, app_id, tmp, sizeof(tmp));
    if (rc < 0)
        return rc;
    return spiffe_id_parse(tmp, strlen(tmp), out);
}
