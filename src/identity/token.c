/*
 * Join tokens: the credential a sidecar on another machine presents to the sentry's TCP
 * listener. Each token allows one namespace and a list of app ids (or every app of that
 * namespace). Format, one token per line ('#' starts a comment line):
 *
 *   <token> <namespace> <app-id>[,<app-id>...]      or      <token> <namespace> *
 *
 * Tokens are 32 to 256 printable ASCII characters. Only SHA-256 digests are kept in memory, and a
 * lookup compares against every entry in constant time so that timing does not reveal a prefix.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "identity/identity_int.h"

typedef struct token_entry {
    unsigned char digest[32];     /* SHA-256 of the token */
    char ns[SPIFFE_NAME_MAX + 1]; /* the namespace it allows */
    char *apps;                   /* owned; app ids, each NUL-terminated, back to back */
    size_t app_count;             /* 0 = every app of ns ("*") */
} token_entry_t;

struct identity__tokens {
    token_entry_t *entries; /* owned */
    size_t count;
};

void identity__tokens_free(identity__tokens_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++)
        mem_free(t->entries[i].apps);
    if (t->entries != NULL)
        OPENSSL_cleanse(t->entries, t->count * sizeof(*t->entries));
    mem_free(t->entries);
    mem_free(t);
}

static int digest(const char *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;

    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return ERR_IDENTITY_CRYPTO;
    return 0;
}

/* Splits [*p, end) at spaces/tabs: the next field, or n = 0 when none is left. */
static const char *next_field(const char **p, const char *end, size_t *n)
{
    const char *s = *p, *f;

    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    f = s;
    while (s < end && *s != ' ' && *s != '\t')
        s++;
    *n = (size_t)(s - f);
    *p = s;
    return f;
}

/* Parses one non-comment line into @p e. */
static int parse_line(const char *line, size_t len, size_t lineno, token_entry_t *e,
                      err_detail_t *d)
{
    const char *end = line + len, *p = line, *tok, *ns, *apps;
    size_t tn, nn, an, extra;
    char uri[IDENTITY_URI_MAX], nsbuf[SPIFFE_NAME_MAX + 1];
    buf_t list;
    int rc = 0;

    tok = next_field(&p, end, &tn);
    ns = next_field(&p, end, &nn);
    apps = next_field(&p, end, &an);
    (void)next_field(&p, end, &extra);
    if (an == 0 || extra != 0)
        return err_set(d, ERR_PARSE, "line %zu: expected \"<token> <namespace> <app-ids>\"",
                       lineno);
    if (tn < IDENTITY_TOKEN_MIN_BYTES || tn > IDENTITY_TOKEN_MAX_BYTES)
        return err_set(d, ERR_PARSE, "line %zu: a token must be %d to %d characters", lineno,
                       IDENTITY_TOKEN_MIN_BYTES, IDENTITY_TOKEN_MAX_BYTES);
    for (size_t i = 0; i < tn; i++) {
        if (tok[i] < 0x21 || tok[i] > 0x7e)
            return err_set(d, ERR_PARSE, "line %zu: a token must be printable ASCII", lineno);
    }
    if (nn > SPIFFE_NAME_MAX)
        return err_set(d, ERR_PARSE, "line %zu: namespace too long", lineno);
    memcpy(nsbuf, ns, nn);
    nsbuf[nn] = '\0';
    if (spiffe_id_format("x", nsbuf, "x", uri, sizeof(uri)) < 0)
        return err_set(d, ERR_PARSE, "line %zu: invalid namespace \"%s\"", lineno, nsbuf);
    memset(e, 0, sizeof(*e));
    memcpy(e->ns, nsbuf, nn + 1);
    if (digest(tok, tn, e->digest) < 0)
        return err_set(d, ERR_IDENTITY_CRYPTO, "cannot hash a token");
    if (an == 1 && apps[0] == '*')
        return 0;
    buf_init(&list, (size_t)IDENTITY_TOKEN_MAX_APPS * (IDENTITY_APP_ID_MAX + 1));
    for (const char *a = apps, *aend = apps + an; rc == 0 && a < aend;) {
        const char *comma = memchr(a, ',', (size_t)(aend - a));
        size_t n = (size_t)((comma ? comma : aend) - a);
        char app[IDENTITY_APP_ID_MAX + 1];

        if (n == 0 || n > IDENTITY_APP_ID_MAX) {
            rc = err_set(d, ERR_PARSE, "line %zu: app ids must be 1 to %d characters", lineno,
                         IDENTITY_APP_ID_MAX);
            break;
        }
        memcpy(app, a, n);
        app[n] = '\0';
        if (spiffe_id_format("x", "x", app, uri, sizeof(uri)) < 0) {
            rc = err_set(d, ERR_PARSE, "line %zu: invalid app id \"%s\"", lineno, app);
            break;
        }
        if (e->app_count >= IDENTITY_TOKEN_MAX_APPS) {
            rc = err_set(d, ERR_PARSE, "line %zu: more than %d app ids", lineno,
                         IDENTITY_TOKEN_MAX_APPS);
            break;
        }
        rc = buf_append(&list, app, n + 1);
        e->app_count++;
        a += n + (comma ? 1 : 0);
    }
    if (rc < 0) {
        buf_free(&list);
        return rc;
    }
    e->apps = buf_take(&list);
    return 0;
}

int identity__tokens_load(const char *path, identity__tokens_t **out, err_detail_t *d)
{
    identity__tokens_t *t = NULL;
    struct stat st;
    buf_t b;
    size_t lineno = 0, cap = 0;
    int rc;

    /* The file holds credentials: like ssh with private keys, refuse one others may read. */
    if (stat(path, &st) < 0)
        return err_set(d, ERR_IO, "%s: %s", path, strerror(errno));
    if ((st.st_mode & 077) != 0 || st.st_uid != geteuid())
        return err_set(d, ERR_INVAL,
                       "%s must be owned by us and not readable by others (chmod "
                       "600)",
                       path);
    rc = identity__file_read(path, IDENTITY_TOKEN_FILE_MAX_BYTES, &b, d);
    if (rc == ERR_NOT_FOUND)
        return err_set(d, ERR_IO, "%s: no such file", path);
    if (rc < 0)
        return rc;
    t = mem_calloc(sizeof(*t));
    for (const char *p = b.ptr, *end = b.ptr + b.len; p != NULL && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p), i = 0;

        lineno++;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i < n && p[i] != '#') {
            if (t->count >= IDENTITY_TOKEN_MAX_ENTRIES) {
                rc = err_set(d, ERR_TOO_LARGE, "%s: more than %d tokens", path,
                             IDENTITY_TOKEN_MAX_ENTRIES);
                break;
            }
            if (t->count == cap) {
                cap = cap ? cap * 2 : 16;
                t->entries = mem_realloc(t->entries, cap * sizeof(*t->entries));
            }
            rc = parse_line(p, n, lineno, &t->entries[t->count], d);
            if (rc < 0) {
                char msg[sizeof(d->msg)];
                if (d != NULL) {
                    snprintf(msg, sizeof(msg), "%s", d->msg);
                    err_set(d, rc, "%s: %s", path, msg);
                }
                break;
            }
            t->count++;
        }
        p = nl ? nl + 1 : NULL;
    }
    OPENSSL_cleanse(b.ptr, b.len);
    buf_free(&b);
    if (rc < 0) {
        identity__tokens_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int identity__tokens_check(const identity__tokens_t *t, const char *token, const char *ns,
                           const char *app_id, err_detail_t *d)
{
    unsigned char want[32];
    const token_entry_t *found = NULL;
    size_t n = token != NULL ? strlen(token) : 0;

    if (n < IDENTITY_TOKEN_MIN_BYTES || n > IDENTITY_TOKEN_MAX_BYTES || digest(token, n, want) < 0)
        return err_set(d, ERR_IDENTITY_DENIED, "missing or invalid join token");
    /* Compare with every entry, without stopping at a match. */
    for (size_t i = 0; i < t->count; i++) {
        if (CRYPTO_memcmp(t->entries[i].digest, want, sizeof(want)) == 0)
            found = &t->entries[i];
    }
    if (found == NULL)
        return err_set(d, ERR_IDENTITY_DENIED, "unknown join token");
    if (strcmp(found->ns, ns) != 0)
        return err_set(d, ERR_IDENTITY_DENIED, "the join token does not allow namespace \"%s\"",
                       ns);
    if (found->app_count == 0)
        return 0;
    {
        const char *a = found->apps;
        for (size_t i = 0; i < found->app_count; i++, a += strlen(a) + 1) {
            if (strcmp(a, app_id) == 0)
                return 0;
        }
    }
    return err_set(d, ERR_IDENTITY_DENIED, "the join token does not allow app id \"%s\"", app_id);
}
