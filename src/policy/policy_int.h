/*
 * policy_int.h — declarations shared by the files of policy/ only; no other module includes it.
 *
 * oauth2_token.c: what both OAuth2 middlewares share: the token request (RFC 6749 §4.1.3 and
 * §4.4.2) and the reading of its response, as Go's golang.org/x/oauth2 does them (Dapr builds on
 * that package), the encoding of scopes and the pathFilter match.
 * Ownership: borrows every argument; secrets it copies (form bodies, Basic credentials, the
 * response) are wiped before they are freed.
 * Threading: pol__token_fetch blocks (pol_fetch): libuv's thread pool or start-up only, never a
 * worker loop; the others are pure and may run anywhere.
 * Errors: ERR_POLICY_UPSTREAM (the server said no or sent no token), ERR_TOO_LARGE, and the errors
 * of pol_fetch. Details never quote a secret or a token.
 */
#ifndef OUTRIGGER_POLICY_POLICY_INT_H
#define OUTRIGGER_POLICY_POLICY_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "policy/fetch.h"
#include "resources/component.h"

/* How the client credentials travel (Go's oauth2.AuthStyle; the authStyle metadata values). */
typedef enum {
    POL_AUTH_AUTO = 0,   /* Basic header first; on 400/401 once more with them in the body */
    POL_AUTH_PARAMS = 1, /* client_id and client_secret in the form body */
    POL_AUTH_BASIC = 2,  /* Authorization: Basic (RFC 6749 §2.3.1) */
} pol_auth_style_t;

/* One token request: POST application/x-www-form-urlencoded to token_url with the body
 * head [&client_id=..&client_secret=..] tail. */
typedef struct pol_token_req {
    const char *token_url;
    const char *client_id;
    const char *secret;
    pol_auth_style_t style;
    const char *head; /* encoded fields before the credentials: "grant_type=..." */
    size_t head_len;
    const char *tail; /* encoded fields after them ("&scope=..."); may be NULL */
    size_t tail_len;
} pol_token_req_t;

/** Appends @p s form-encoded (Go's url.QueryEscape: space as "+", unreserved bytes kept). */
int pol__form_escape(buf_t *b, const char *s) __attribute__((warn_unused_result));

/** Appends Dapr's comma-separated @p scopes (each trimmed of spaces, empty ones dropped) as one
 * form-encoded value, the scopes joined by "+" (a space). ERR_TOO_LARGE for a scope of 512 bytes
 * or more, or when @p b is full. */
int pol__scopes_put(buf_t *b, const char *scopes) __attribute__((warn_unused_result));

/** ERR_RES_INVALID ("<file>:<line>: <name>: metadata <key> is required") for the first of the
 * @p n keys of @p c that is absent or empty; else 0. */
int pol__meta_require(const res_component_t *c, const char *const *keys, size_t n, err_detail_t *d);

/** Seconds of the monotonic clock (token and key lifetimes, refresh pacing). */
int64_t pol__mono_s(void);

/** Wipes and frees a secret string (NULL allowed). */
void pol__secret_free(char *s);

/** True when the request path [path, path+n) (cut at 2047 bytes) matches the pathFilter @p re. */
bool pol__path_matches(const regex_t *re, const char *path, size_t n);

/** Reads a 200 token response (the parser behind pol__token_fetch; exposed for its fuzz target):
 * access_token, token_type and expires_in from JSON, or from a form-encoded body when @p resp's
 * Content-Type says application/x-www-form-urlencoded or text/plain. Writes @p value and
 * *expires_in_s as pol__token_fetch does. ERR_POLICY_UPSTREAM (no or empty access_token, an
 * access_token with a byte outside %x20-7E or a token_type that is not RFC 6749 name-chars:
 * either could cut or forge the header), ERR_TOO_LARGE
 * ("<type> <token>" does not fit @p cap). */
int pol__token_parse(const pol_fetch_resp_t *resp, char *value, size_t cap, uint64_t *expires_in_s,
                     err_detail_t *d) __attribute__((warn_unused_result));

/** Makes the token request @p r and reads the answer (JSON, or form-encoded as some providers,
 * GitHub among them, send). On success writes "<type> <access_token>" (type as Go's
 * Token.Type(): Bearer when absent) into @p value of @p cap bytes and the token's expires_in
 * into *expires_in_s (0 when the server gave none). A status other than 200 is
 * ERR_POLICY_UPSTREAM with "token endpoint answered <status>[ <OAuth2 error code>]". */
int pol__token_fetch(const pol_token_req_t *r, char *value, size_t cap, uint64_t *expires_in_s,
                     err_detail_t *d) __attribute__((warn_unused_result));

#endif
