/*
 * Finding the target app and method of an API request, exactly as Dapr's HTTP API does (spec
 * dapr.md §1.1-1.2), so that routing, policy and the app all see one normalised method.
 */
#include <http_parser.h>
#include <string.h>

#include "base/str.h"
#include "invoke/invoke_int.h"

#define METHOD_MAX 16384

void invoke_route_init(invoke_route_t *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->method, METHOD_MAX);
}

void invoke_route_free(invoke_route_t *r)
{
    buf_free(&r->method);
}

int invoke_url_split(const char *url, size_t len, buf_t *path, const char **query,
                     size_t *query_len, err_detail_t *d)
{
    struct http_parser_url u;
    const char *p;
    size_t n;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c == '#' || c < 0x21 || c == 0x7f)
            return err_set(d, ERR_NET_BAD_REQUEST, "invalid character in request target");
    }
    *query = NULL;
    *query_len = 0;
    if (len > 0 && url[0] == '/') {
        /* origin-form (RFC 9112 §3.2.1), nearly every request: path, then an optional query. */
        const char *qm = memchr(url, '?', len);
        p = url;
        n = qm ? (size_t)(qm - url) : len;
        if (qm != NULL && (size_t)(qm - url) + 1 < len) {
            *query = qm + 1;
            *query_len = len - n - 1;
        }
    } else {
        http_parser_url_init(&u);
        if (http_parser_parse_url(url, len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH)))
            return err_set(d, ERR_NET_BAD_REQUEST, "malformed request target");
        p = url + u.field_data[UF_PATH].off;
        n = u.field_data[UF_PATH].len;
        if (u.field_set & (1 << UF_QUERY)) {
            *query = url + u.field_data[UF_QUERY].off;
            *query_len = u.field_data[UF_QUERY].len;
        }
    }
    if (n == 0 || p[0] != '/')
        return err_set(d, ERR_NET_BAD_REQUEST, "request target must start with /");
    if (str_unescape(p, n, STR_UNESCAPE_STRICT, path) < 0)
        return err_set(d, ERR_NET_BAD_REQUEST, "invalid percent-encoding in path");
    return 0;
}

int invoke_path_clean(const char *p, size_t n, buf_t *out)
{
    bool rooted = n > 0 && p[0] == '/';
    size_t start = out->len, dotdot; /* dotdot: where ".." may back up to */
    size_t i = 0;
    int rc = 0;

    if (n == 0)
        return buf_append(out, ".", 1);
    if (rooted) {
        rc = buf_append(out, "/", 1);
        i = 1;
    }
    dotdot = out->len;
    while (rc == 0 && i < n) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        if (j == i || (j - i == 1 && p[i] == '.')) {
            /* empty or "." element */
        } else if (j - i == 2 && p[i] == '.' && p[i + 1] == '.') {
            if (out->len > dotdot) {
                /* Back up to the previous separator. */
                size_t k = out->len - 1;
                while (k > dotdot && out->ptr[k] != '/')
                    k--;
                out->len = k;
                out->ptr[k] = '\0';
            } else if (!rooted) {
                if (out->len > start)
                    rc = buf_append(out, "/", 1);
                rc = rc ? rc : buf_append(out, "..", 2);
                dotdot = out->len;
            }
        } else {
            if ((rooted && out->len != start + 1) || (!rooted && out->len != start))
                rc = buf_append(out, "/", 1);
            rc = rc ? rc : buf_append(out, p + i, j - i);
        }
        i = j + 1;
    }
    if (rc == 0 && out->len == start)
        rc = buf_append(out, ".", 1);
    return rc;
}

int invoke_method_normalize(const char *p, size_t n, buf_t *out, err_detail_t *d)
{
    char mem[256];
    buf_t tmp;
    const char *m;
    size_t mlen;
    int rc;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '#' || c == '?' || c < 0x20 || c == 0x7f)
            return err_set(d, ERR_INVOKE_BAD_METHOD,
                           "invalid method: contains a forbidden character");
    }
    buf_init_local(&tmp, mem, sizeof(mem), METHOD_MAX);
    rc = invoke_path_clean(p, n, &tmp);
    if (rc < 0) {
        buf_free(&tmp);
        return err_set(d, rc, "invalid method: too long");
    }
    m = buf_ptr(&tmp);
    mlen = tmp.len;
    while (mlen >= 3 && memcmp(m, "../", 3) == 0) {
        m += 3;
        mlen -= 3;
    }
    if (str_eq(m, mlen, "..") || str_eq(m, mlen, "."))
        mlen = 0;
    rc = buf_append(out, m, mlen);
    buf_free(&tmp);
    return rc;
}

int invoke_path_escape(buf_t *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0; /* start of the bytes copied as they are */
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)p[i];
        /* RFC 3986 pchar plus '/': unreserved, sub-delims, ':' and '@'. */
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL))
            continue;
        {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = buf_append(out, p + run, i - run);
            rc = rc ? rc : buf_append(out, e, 3);
            run = i + 1;
        }
    }
    return rc ? rc : buf_append(out, p + run, n - run);
}

int invoke_split_target(const char *target, const char *self_ns, char *id, size_t id_len, char *ns,
                        size_t ns_len, err_detail_t *d)
{
    const char *dot = strchr(target, '.');
    size_t n;

    if (dot != NULL && strchr(dot + 1, '.') != NULL)
        return err_set(d, ERR_INVOKE_BAD_APP_ID, "invalid app id %s", target);
    n = dot ? (size_t)(dot - target) : strlen(target);
    if (n == 0 || n >= id_len || (dot && (dot[1] == '\0' || strlen(dot + 1) >= ns_len)))
        return err_set(d, ERR_INVOKE_BAD_APP_ID, "invalid app id %s", target);
    memcpy(id, target, n);
    id[n] = '\0';
    if (dot)
        memcpy(ns, dot + 1, strlen(dot + 1) + 1);
    else if (strlen(self_ns) < ns_len)
        memcpy(ns, self_ns, strlen(self_ns) + 1);
    else
        return err_set(d, ERR_INVOKE_BAD_APP_ID, "invalid namespace");
    return 0;
}

/* Decodes standard base64 (with padding) into @p out; returns 0 or ERR_PARSE. */
static int b64decode(const char *p, size_t n, buf_t *out)
{
    unsigned v = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        int x;
        if (c == '=')
            break;
        if (c >= 'A' && c <= 'Z')
            x = c - 'A';
        else if (c >= 'a' && c <= 'z')
            x = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            x = c - '0' + 52;
        else if (c == '+')
            x = 62;
        else if (c == '/')
            x = 63;
        else
            return ERR_PARSE;
        v = (v << 6) | (unsigned)x;
        bits += 6;
        if (bits >= 8) {
            char ch = (char)((v >> (bits - 8)) & 0xff);
            bits -= 8;
            if (buf_append(out, &ch, 1) < 0)
                return ERR_PARSE;
        }
    }
    return 0;
}

/* A target is copied into a C string and may end up in a header towards the next hop: NUL (which
 * would cut it short), other control bytes, spaces and DEL are refused wherever it came from. */
static bool target_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return n > 0;
}

/* Dapr also accepts the target as Basic credentials "dapr-app-id:<target>" (the user name is
 * compared case-insensitively); the Authorization header is still forwarded. Returns 1 when found,
 * 0 when the header does not name a target, ERR_INVOKE_BAD_APP_ID when it names an invalid one. */
static int target_from_basic(const net_head_t *h, char *target, size_t len)
{
    const net_header_t *a = net_head_get(h, "authorization");
    buf_t dec;
    int found = 0;

    if (a == NULL || a->value_len < 6 || !str_ieq(a->value, 6, "basic "))
        return 0;
    buf_init(&dec, 1024);
    if (b64decode(a->value + 6, a->value_len - 6, &dec) == 0 && dec.len > 12 &&
        str_ieq(dec.ptr, 12, "dapr-app-id:") && dec.len - 12 < len) {
        found = target_ok(dec.ptr + 12, dec.len - 12) ? 1 : ERR_INVOKE_BAD_APP_ID;
        if (found == 1) {
            memcpy(target, dec.ptr + 12, dec.len - 12);
            target[dec.len - 12] = '\0';
        }
    }
    buf_free(&dec);
    return found;
}

static int method_from_path(const char *p, size_t n, invoke_route_t *r, err_detail_t *d)
{
    char mem[256];
    buf_t clean;
    int rc;

    buf_init_local(&clean, mem, sizeof(mem), METHOD_MAX);
    rc = invoke_path_clean(p, n, &clean);
    if (rc == 0) {
        const char *m = buf_ptr(&clean);
        size_t mlen = clean.len;
        if (mlen > 0 && m[0] == '/') {
            m++;
            mlen--;
        }
        if (str_eq(m, mlen, "."))
            mlen = 0;
        rc = invoke_method_normalize(m, mlen, &r->method, d);
    }
    buf_free(&clean);
    return rc;
}

int invoke_route_parse(const net_head_t *h, invoke_route_t *r, err_detail_t *d)
{
    static const char prefix[] = "/v1.0/invoke/";
    const net_header_t *idh = net_head_get(h, "dapr-app-id");
    char path_mem[256], tgt_mem[sizeof(r->target)];
    buf_t path;
    int rc;

    buf_init_local(&path, path_mem, sizeof(path_mem), METHOD_MAX);
    rc = invoke_url_split(h->url, h->url_len, &path, &r->query, &r->query_len, d);
    if (rc < 0)
        goto out;
    if (idh != NULL && idh->value_len > 0) {
        if (idh->value_len >= sizeof(r->target)) {
            rc = err_set(d, ERR_INVOKE_BAD_APP_ID, "app id too long");
            goto out;
        }
        if (!target_ok(idh->value, idh->value_len)) {
            rc = err_set(d, ERR_INVOKE_BAD_APP_ID, "invalid character in app id");
            goto out;
        }
        memcpy(r->target, idh->value, idh->value_len);
        r->target[idh->value_len] = '\0';
        r->from_header = true;
        rc = method_from_path(path.ptr, path.len, r, d);
        goto out;
    }
    rc = target_from_basic(h, r->target, sizeof(r->target));
    if (rc < 0) {
        rc = err_set(d, rc, "invalid character in app id");
        goto out;
    }
    if (rc == 1) {
        r->from_header = true;
        rc = method_from_path(path.ptr, path.len, r, d);
        goto out;
    }
    if (path.len > sizeof(prefix) - 1 && memcmp(path.ptr, prefix, sizeof(prefix) - 1) == 0) {
        const char *t = path.ptr + sizeof(prefix) - 1;
        const char *m = strstr(t, "/method/");
        buf_t tgt;
        if (m != NULL && m > t) {
            buf_init_local(&tgt, tgt_mem, sizeof(tgt_mem), sizeof(r->target) - 1);
            rc = str_unescape(t, (size_t)(m - t), STR_UNESCAPE_PLUS | STR_UNESCAPE_STRICT, &tgt);
            if (rc == 0 && tgt.len > 0 && !target_ok(tgt.ptr, tgt.len)) {
                buf_free(&tgt);
                rc = err_set(d, ERR_INVOKE_BAD_APP_ID, "invalid character in app id");
                goto out;
            }
            if (rc == 0 && tgt.len > 0) {
                memcpy(r->target, tgt.ptr, tgt.len + 1);
                buf_free(&tgt);
                m += strlen("/method/");
                rc = invoke_method_normalize(m, path.len - (size_t)(m - path.ptr), &r->method, d);
                goto out;
            }
            buf_free(&tgt);
        }
    }
    rc = err_set(d, ERR_INVOKE_NO_APP_ID,
                 "failed getting app id either from the URL path or the header dapr-app-id");
out:
    buf_free(&path);
    return rc;
}
