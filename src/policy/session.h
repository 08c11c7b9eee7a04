/*
 * session — browser sessions for middleware.http.oauth2: signed session cookies, the in-memory
 * session store, and the two small parsers the flow needs (a Cookie header, a query string).
 *
 * Job: a session is a random 128-bit id. The browser holds it in a cookie whose value is
 * "<b64url(id)>.<b64url(HMAC-SHA256(key, id))>", the key being random per middleware instance,
 * so a cookie the sidecar did not issue (or one altered by a single bit) is refused before any
 * lookup. The store keeps, per session, either up to POL_SESS_LOGINS pending logins (an OAuth2
 * `state` with the URL to return to, each expiring on its own) or the authorization header value
 * obtained at login (until the token expires). It is bounded: at most `max` sessions, of which at
 * most a quarter may be pending logins (anyone can start a login, so pending ones only ever evict
 * pending ones while they hold their quota); beyond that the least recently used session goes.
 *
 * Ownership: the store owns everything in it; values and URLs are copied in and out (a caller
 * never holds a pointer into the store). Token values are wiped from memory when dropped.
 * Threading: a store may be shared by all worker threads: every call takes the store's mutex for
 * a short, bounded critical section (a hash lookup and a copy). The parsers and the cookie
 * functions are pure and reentrant.
 * Errors: ERR_NOT_FOUND (no such session, no such login, cookie absent or invalid),
 * ERR_TOO_LARGE (a value, URL or output buffer past its limit), ERR_INVAL (bad arguments),
 * ERR_IDENTITY_CRYPTO (the random generator failed).
 */
#ifndef OUTRIGGER_POLICY_SESSION_H
#define OUTRIGGER_POLICY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define POL_SESS_ID_LEN 16          /* random bytes of a session id */
#define POL_SESS_KEY_LEN 32         /* HMAC-SHA256 key bytes */
#define POL_SESS_COOKIE_LEN 66      /* characters of a cookie value: 22 + "." + 43 */
#define POL_SESS_STATE_LEN 32       /* characters of a state: b64url of 24 random bytes */
#define POL_SESS_LOGINS 4           /* pending logins per session (several tabs logging in) */
#define POL_SESS_URL_MAX 4096       /* longest URL to return to after a login */
#define POL_SESS_VALUE_MAX 8192     /* longest "<type> <token>" value */
#define POL_SESS_MAX_DEFAULT 10000  /* sessions per store */
#define POL_COOKIE_HEADER_MAX 16384 /* bytes of Cookie header the parser looks at */
#define POL_QUERY_MAX 16384         /* bytes of query string the parser looks at */

typedef struct pol_sess_id {
    unsigned char b[POL_SESS_ID_LEN];
} pol_sess_id_t;

/* --- cookies ---------------------------------------------------------------------------------- */

/** Fills @p key with random bytes. 0 or ERR_IDENTITY_CRYPTO. */
int pol_sess_key_new(unsigned char key[POL_SESS_KEY_LEN]) __attribute__((warn_unused_result));
/** A new random session id. 0 or ERR_IDENTITY_CRYPTO. */
int pol_sess_id_new(pol_sess_id_t *id) __attribute__((warn_unused_result));
/** A new random state (POL_SESS_STATE_LEN URL-safe characters + NUL). 0 or ERR_IDENTITY_CRYPTO. */
int pol_sess_state_new(char out[POL_SESS_STATE_LEN + 1]) __attribute__((warn_unused_result));
/** Writes the signed cookie value of @p id (POL_SESS_COOKIE_LEN characters + NUL). */
void pol_sess_cookie_make(const unsigned char key[POL_SESS_KEY_LEN], const pol_sess_id_t *id,
                          char out[POL_SESS_COOKIE_LEN + 1]);
/**
 * Checks a cookie value made by pol_sess_cookie_make with @p key and extracts the id (written
 * only on success). Constant time in the signature. 0 or ERR_NOT_FOUND (malformed or not signed
 * by @p key).
 */
int pol_sess_cookie_check(const unsigned char key[POL_SESS_KEY_LEN], const char *v, size_t n,
                          pol_sess_id_t *id) __attribute__((warn_unused_result));

/* --- parsers (peer input: bounded, never crash) ------------------------------------------------
 */

/**
 * Finds cookie @p name in a Cookie header value (RFC 6265 §4.2.1: "a=b; c=d"; the first match
 * wins; optional double quotes around the value are removed). The value points into @p hdr.
 * Only the first POL_COOKIE_HEADER_MAX bytes are looked at. 0 or ERR_NOT_FOUND.
 */
int pol_cookie_get(const char *hdr, size_t len, const char *name, const char **val, size_t *vlen);

/**
 * Finds query parameter @p name in the raw query string @p q (no leading "?"; pairs split on
 * "&"; "+" and %XX decoded as application/x-www-form-urlencoded; the first match wins) and
 * appends its decoded value to @p out (bounded by out->max). A malformed %-escape is kept as is.
 * Only the first POL_QUERY_MAX bytes are looked at. 0, ERR_NOT_FOUND or ERR_TOO_LARGE.
 */
int pol_query_get(const char *q, size_t len, const char *name, buf_t *out)
    __attribute__((warn_unused_result));

/* --- the store -------------------------------------------------------------------------------- */

typedef struct pol_sess_store pol_sess_store_t;

/** A store of at most @p max sessions (0 = POL_SESS_MAX_DEFAULT; at least 4). */
pol_sess_store_t *pol_sess_store_new(size_t max);
void pol_sess_store_free(pol_sess_store_t *s);
/** Sessions held now (pending and logged in), for tests and logs. */
size_t pol_sess_store_count(pol_sess_store_t *s);

/**
 * Copies the authorization value of logged-in session @p id into @p out (capacity @p cap) if its
 * token has not expired at @p now (monotonic seconds), and marks the session recently used.
 * 0, ERR_NOT_FOUND, ERR_TOO_LARGE (cap too small).
 */
int pol_sess_value(pol_sess_store_t *s, const pol_sess_id_t *id, int64_t now, char *out, size_t cap)
    __attribute__((warn_unused_result));

/**
 * Records a pending login (@p state, return to @p url) valid for @p ttl_s seconds. If @p cur
 * (may be NULL) names a live session, that session gets the login (its oldest pending login
 * makes room when it already has POL_SESS_LOGINS; a logged-in one is logged out); otherwise a new
 * session is made. Its id is written to @p out, and *@p is_new says whether it is a new one.
 * 0, ERR_TOO_LARGE (url), ERR_INVAL, ERR_IDENTITY_CRYPTO.
 */
int pol_sess_begin(pol_sess_store_t *s, const pol_sess_id_t *cur, const char *state,
                   const char *url, int64_t now, int64_t ttl_s, pol_sess_id_t *out, bool *is_new)
    __attribute__((warn_unused_result));

/**
 * Looks for pending login @p state (compared in constant time) in session @p id. When found and
 * @p consume, the login is removed and its URL appended to @p url (may be NULL when not
 * consuming). 0 or ERR_NOT_FOUND (no session, no such state, or it expired), ERR_TOO_LARGE.
 */
int pol_sess_take(pol_sess_store_t *s, const pol_sess_id_t *id, const char *state, bool consume,
                  int64_t now, buf_t *url) __attribute__((warn_unused_result));

/**
 * Completes a login: session @p id (or a new one if it is gone) gets a fresh id — the old one
 * stops working, so an id planted before the login is worthless after it — holds @p value until
 * @p now + @p ttl_s, and drops its pending logins. The new id is written to @p id.
 * 0, ERR_TOO_LARGE (value), ERR_INVAL, ERR_IDENTITY_CRYPTO.
 */
int pol_sess_login(pol_sess_store_t *s, pol_sess_id_t *id, const char *value, int64_t now,
                   int64_t ttl_s) __attribute__((warn_unused_result));

#endif
