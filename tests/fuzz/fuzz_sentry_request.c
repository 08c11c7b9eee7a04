/*
 * fuzz_sentry_request — one sentry request line (JSON, CSR PEM, audiences, join token) on
 * arbitrary bytes, answered by a real sentry with a real CA, as a local and as a remote request.
 *
 * Invariants checked beyond "no crash, no leak":
 * - the answer is exactly one line holding one JSON object: either {"error":{"code","message"}}
 *   with a known code, or cert_chain + trust_bundle + valid_until;
 * - a certificate is only ever issued for the app id and namespace the request named, as a leaf
 *   with exactly one valid SPIFFE ID that chains to the returned bundle;
 * - never in the reserved control-plane namespace;
 * - over TCP, only with a token of the token file, and only for what that token allows;
 * - a JWT comes back exactly when audiences were asked for;
 * - every byte taken through base/alloc per request is given back.
 */
#include <ftw.h>
#include <jansson.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "identity/identity_int.h"
#include "fuzz.h"

#define TOKEN "fuzz-token-0123456789abcdef0123456789"

static identity_sentry_t *sentry;
static char dir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    identity_sentry_free(sentry);
    sentry = NULL;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    static char state[96], tokens[96];
    identity_sentry_opts_t o;
    err_detail_t d = {""};
    FILE *f;

    log_init(LOG_FATAL, false, "fuzz");
    snprintf(dir, sizeof(dir), "/tmp/outrigger-fuzz-sentry.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(state, sizeof(state), "%s/sentry", dir);
    snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
    f = fopen(tokens, "w");
    CHECK(f != NULL);
    fputs(TOKEN " default checkout,orders\n", f);
    fclose(f);
    CHECK(chmod(tokens, 0600) == 0);
    identity_sentry_opts_defaults(&o);
    o.state_dir = state;
    o.join_token_file = tokens;
    o.listen_address = "127.0.0.1";
    o.port = 0;
    if (identity_sentry_new(&o, &sentry, &d) < 0) {
        fprintf(stderr, "fuzz_sentry_request: %s\n", d.msg);
        abort();
    }
    atexit(teardown);
}

/* Checks a success answer against what @p req asked for. */
static void check_issued(json_t *resp, json_t *req, bool tcp)
{
    const char *app = json_string_value(json_object_get(req, "app_id"));
    const char *ns = json_string_value(json_object_get(req, "namespace"));
    const char *chain = json_string_value(json_object_get(resp, "cert_chain"));
    const char *bundle = json_string_value(json_object_get(resp, "trust_bundle"));
    json_t *aud = json_object_get(req, "jwt_audiences");
    STACK_OF(X509) *certs = NULL, *roots = NULL;
    X509_STORE *store = NULL;
    static spiffe_id_t id;
    X509 *leaf;

    CHECK(app != NULL && ns != NULL && chain != NULL && bundle != NULL);
    CHECK(json_is_string(json_object_get(resp, "valid_until")));
    CHECK(strcmp(ns, IDENTITY_SENTRY_NAMESPACE) != 0);
    if (tcp) {
        const char *tok = json_string_value(json_object_get(req, "token"));
        CHECK(tok != NULL && strcmp(tok, TOKEN) == 0);
        CHECK(strcmp(ns, "default") == 0);
        CHECK(strcmp(app, "checkout") == 0 || strcmp(app, "orders") == 0);
    }
    CHECK((json_array_size(aud) > 0) == (json_object_get(resp, "jwt") != NULL));
    CHECK(identity__pem_certs(chain, strlen(chain), 8, &certs, NULL) == 0);
    CHECK(sk_X509_num(certs) == 2);
    CHECK(identity__pem_certs(bundle, strlen(bundle), 32, &roots, NULL) == 0);
    CHECK(identity__store_new(roots, &store, NULL) == 0);
    leaf = sk_X509_shift(certs);
    CHECK(identity__cert_spiffe_id(leaf, &id, NULL) == 0);
    CHECK(strcmp(id.app_id, app) == 0 && strcmp(id.ns, ns) == 0);
    CHECK(identity__verify_chain(store, leaf, certs, 0, NULL) == 0);
    X509_free(leaf);
    X509_STORE_free(store);
    sk_X509_pop_free(certs, X509_free);
    sk_X509_pop_free(roots, X509_free);
}

static void one(const char *line, size_t n, bool tcp)
{
    size_t before = mem_used();
    json_t *resp, *req, *err;
    buf_t b;

    buf_init(&b, IDENTITY_RESP_MAX_BYTES);
    identity__sentry_handle(sentry, line, n, tcp, &b);
    CHECK(b.len > 0 && b.ptr[b.len - 1] == '\n' && memchr(b.ptr, '\n', b.len) == b.ptr + b.len - 1);
    resp = json_loadb(b.ptr, b.len - 1, 0, NULL);
    CHECK(json_is_object(resp));
    err = json_object_get(resp, "error");
    if (err != NULL) {
        const char *code = json_string_value(json_object_get(err, "code"));
        CHECK(code != NULL && json_is_string(json_object_get(err, "message")));
        CHECK(strcmp(code, "INVALID_ARGUMENT") == 0 || strcmp(code, "PERMISSION_DENIED") == 0 ||
              strcmp(code, "INTERNAL") == 0);
        CHECK(json_object_get(resp, "cert_chain") == NULL);
    } else {
        req = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);
        CHECK(req != NULL);
        check_issued(resp, req, tcp);
        json_decref(req);
    }
    json_decref(resp);
    buf_free(&b);
    CHECK(mem_used() == before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sentry == NULL)
        setup();
    /* The connection layer never hands over more than the request limit. */
    if (size > IDENTITY_REQ_MAX_BYTES)
        return 0;
    one((const char *)data, size, false);
    one((const char *)data, size, true);
    ERR_clear_error();
    return 0;
}
