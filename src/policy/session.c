/* Browser sessions for middleware.http.oauth2 (see session.h). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/b64.h"
#include "base/err.h"
#include "base/str.h"
#include "policy/session.h"

#define NIL UINT32_MAX
#define MAC_LEN 32   /* HMAC-SHA256 */
#define ID_CHARS 22  /* b64url of 16 bytes */
#define MAC_CHARS 43 /* b64url of 32 bytes */
#define REAP_PER_ALLOC 8

/* --- cookies ---------------------------------------------------------------------------------- */

int pol_sess_key_new(unsigned char key[POL_SESS_KEY_LEN])
{
    return RAND_bytes(key, POL_SESS_KEY_LEN) == 1 ? 0 : ERR_IDENTITY_CRYPTO;
}

int pol_sess_id_new(pol_sess_id_t *id)
{
    return RAND_bytes(id->b, sizeof(id->b)) == 1 ? 0 : ERR_IDENTITY_CRYPTO;
}

/* Encodes into a fixed array (the lengths here are constants, so the result always fits). */
static void b64_fixed(const unsigned char *p, size_t n, char *out, size_t cap)
{
    buf_t b;
    buf_init(&b, cap);
    if (b64url_put(&b, p, n) == 0 && b.len < cap)
        memcpy(out, b.ptr, b.len + 1);
    else
        out[0] = '\0';
    buf_free(&b);
}

int pol_sess_state_new(char out[POL_SESS_STATE_LEN + 1])
{
    unsigned char r[POL_SESS_STATE_LEN * 3 / 4];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return ERR_IDENTITY_CRYPTO;
    b64_fixed(r, sizeof(r), out, POL_SESS_STATE_LEN + 1);
    return out[0] != '\0' ? 0 : ERR_IDENTITY_CRYPTO;
}

static void mac_of(const unsigned char key[POL_SESS_KEY_LEN], const pol_sess_id_t *id,
                   unsigned char mac[MAC_LEN])
{
    unsigned int len = MAC_LEN;
    if (HMAC(EVP_sha256(), key, POL_SESS_KEY_LEN, id->b, sizeof(id->b), mac, &len) == NULL)
        memset(mac, 0, MAC_LEN); /* never matches a decoded MAC of a real cookie by chance */
}

void pol_sess_cookie_make(const unsigned char key[POL_SESS_KEY_LEN], const pol_sess_id_t *id,
                          char out[POL_SESS_COOKIE_LEN + 1])
{
    unsigned char mac[MAC_LEN];
    mac_of(key, id, mac);
    b64_fixed(id->b, sizeof(id->b), out, ID_CHARS + 1);
    out[ID_CHARS] = '.';
    b64_fixed(mac, sizeof(mac), out + ID_CHARS + 1, MAC_CHARS + 1);
}

int pol_sess_cookie_check(const unsigned char key[POL_SESS_KEY_LEN], const char *v, size_t n,
                          pol_sess_id_t *id)
{
    pol_sess_id_t got;
    unsigned char mac[MAC_LEN], want[MAC_LEN];
    size_t l1 = 0, l2 = 0;

    if (v == NULL || n != POL_SESS_COOKIE_LEN || v[ID_CHARS] != '.')
        return ERR_NOT_FOUND;
    if (b64url_decode(v, ID_CHARS, got.b, sizeof(got.b), &l1) < 0 || l1 != sizeof(got.b) ||
        b64url_decode(v + ID_CHARS + 1, MAC_CHARS, mac, sizeof(mac), &l2) < 0 || l2 != MAC_LEN)
        return ERR_NOT_FOUND;
    mac_of(key, &got, want);
    if (CRYPTO_memcmp(mac, want, MAC_LEN) != 0)
        return ERR_NOT_FOUND;
    *id = got;
    return 0;
}

/* --- parsers ---------------------------------------------------------------------------------- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int pol_cookie_get(const char *hdr, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name), i = 0;

    if (hdr == NULL)
        return ERR_NOT_FOUND;
    if (len > POL_COOKIE_HEADER_MAX)
        len = POL_COOKIE_HEADER_MAX;
    while (i < len) {
        size_t start, end, eq;
        while (i < len && (is_ows(hdr[i]) || hdr[i] == ';'))
            i++;
        start = i;
        while (i < len && hdr[i] != ';')
            i++;
        end = i;
        while (end > start && is_ows(hdr[end - 1]))
            end--;
        for (eq = start; eq < end && hdr[eq] != '='; eq++)
            ;
        if (eq == end)
            continue; /* RFC 6265 §5.2: a pair without "=" is ignored */
        {
            size_t ne = eq, vs = eq + 1;
            while (ne > start && is_ows(hdr[ne - 1]))
                ne--;
            while (vs < end && is_ows(hdr[vs]))
                vs++;
            if (ne - start == nlen && memcmp(hdr + start, name, nlen) == 0) {
                if (end - vs >= 2 && hdr[vs] == '"' && hdr[end - 1] == '"') {
                    vs++;
                    end--;
                }
                *val = hdr + vs;
                *vlen = end - vs;
                return 0;
            }
        }
    }
    return ERR_NOT_FOUND;
}

/* True when the form-decoded [p, p+n) equals @p name. */
static bool key_is(const char *p, size_t n, const char *name)
{
    size_t i = 0, k = 0;
    while (i < n) {
        char c = (char)str_unescape_byte(p, n, &i, STR_UNESCAPE_PLUS);
        if (name[k] == '\0' || name[k] != c)
            return false;
        k++;
    }
    return name[k] == '\0';
}

int pol_query_get(const char *q, size_t len, const char *name, buf_t *out)
{
    size_t i = 0;

    if (q == NULL)
        return ERR_NOT_FOUND;
    if (len > POL_QUERY_MAX)
        len = POL_QUERY_MAX;
    while (i < len) {
        size_t start = i, eq, end;
        while (i < len && q[i] != '&')
            i++;
        end = i;
        if (i < len)
            i++;
        for (eq = start; eq < end && q[eq] != '='; eq++)
            ;
        if (key_is(q + start, eq - start, name)) {
            size_t j = eq < end ? eq + 1 : end;
            int rc = str_unescape(q + j, end - j, STR_UNESCAPE_PLUS, out);
            if (rc == 0 && out->ptr == NULL)
                rc = buf_append(out, "", 0);
            return rc;
        }
    }
    return ERR_NOT_FOUND;
}

/* --- the store -------------------------------------------------------------------------------- */

enum { L_FREE = 0, L_PENDING = 1, L_AUTHED = 2 };

typedef struct login {
    char state[POL_SESS_STATE_LEN + 1]; /* "" = free slot */
    char *url;                          /* owned */
    int64_t expires;                    /* monotonic seconds */
    uint64_t seq;                       /* creation order (the oldest makes room) */
} login_t;

typedef struct sess {
    pol_sess_id_t id;
    int list;         /* L_* */
    char *value;      /* owned "<type> <token>" (L_AUTHED); wiped when dropped */
    size_t value_len; /* bytes of value */
    int64_t expires;  /* monotonic seconds the value is good until */
    login_t login[POL_SESS_LOGINS];
    uint32_t hnext;      /* next in the hash bucket */
    uint32_t prev, next; /* neighbours in its list (head = most recently used) */
} sess_t;

typedef struct list {
    uint32_t head, tail;
    size_t count;
} list_t;

struct pol_sess_store {
    uv_mutex_t mu;
    size_t max;         /* sessions */
    size_t max_pending; /* of which pending logins */
    sess_t *e;          /* max entries, owned */
    uint32_t *bucket;   /* mask + 1 chain heads, owned */
    uint32_t mask;      /* buckets - 1 */
    list_t lists[3];    /* free, pending, logged in */
    uint64_t seq;       /* login counter */
};

static void list_unlink(pol_sess_store_t *s, uint32_t i)
{
    sess_t *e = &s->e[i];
    list_t *l = &s->lists[e->list];
    if (e->prev != NIL)
        s->e[e->prev].next = e->next;
    else
        l->head = e->next;
    if (e->next != NIL)
        s->e[e->next].prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NIL;
    l->count--;
}

static void list_push(pol_sess_store_t *s, int which, uint32_t i)
{
    sess_t *e = &s->e[i];
    list_t *l = &s->lists[which];
    e->list = which;
    e->prev = NIL;
    e->next = l->head;
    if (l->head != NIL)
        s->e[l->head].prev = i;
    else
        l->tail = i;
    l->head = i;
    l->count++;
}

/* Ids are random (and only reach the store after their signature checked), so any bits hash. */
static uint32_t bucket_of(const pol_sess_store_t *s, const pol_sess_id_t *id)
{
    uint32_t h;
    memcpy(&h, id->b, sizeof(h));
    return h & s->mask;
}

static void hash_insert(pol_sess_store_t *s, uint32_t i)
{
    uint32_t b = bucket_of(s, &s->e[i].id);
    s->e[i].hnext = s->bucket[b];
    s->bucket[b] = i;
}

static void hash_remove(pol_sess_store_t *s, uint32_t i)
{
    uint32_t *pp = &s->bucket[bucket_of(s, &s->e[i].id)];
    while (*pp != NIL && *pp != i)
        pp = &s->e[*pp].hnext;
    if (*pp == i)
        *pp = s->e[i].hnext;
    s->e[i].hnext = NIL;
}

static void login_clear(login_t *l)
{
    mem_free(l->url);
    memset(l, 0, sizeof(*l));
}

static void value_clear(sess_t *e)
{
    if (e->value != NULL) {
        OPENSSL_cleanse(e->value, e->value_len);
        mem_free(e->value);
    }
    e->value = NULL;
    e->value_len = 0;
    e->expires = 0;
}

static void drop(pol_sess_store_t *s, uint32_t i)
{
    sess_t *e = &s->e[i];
    hash_remove(s, i);
    list_unlink(s, i);
    value_clear(e);
    for (size_t k = 0; k < POL_SESS_LOGINS; k++)
        login_clear(&e->login[k]);
    OPENSSL_cleanse(&e->id, sizeof(e->id));
    list_push(s, L_FREE, i);
}

/* A session is dead once its token expired, or (pending) once all its logins expired. */
static bool dead(sess_t *e, int64_t now)
{
    bool live = false;
    if (e->list == L_AUTHED)
        return now >= e->expires;
    for (size_t k = 0; k < POL_SESS_LOGINS; k++) {
        if (e->login[k].state[0] == '\0')
            continue;
        if (now >= e->login[k].expires)
            login_clear(&e->login[k]);
        else
            live = true;
    }
    return !live;
}

/* The live session @p id, or NIL (a dead one found on the way is dropped). */
static uint32_t find(pol_sess_store_t *s, const pol_sess_id_t *id, int64_t now)
{
    uint32_t i = s->bucket[bucket_of(s, id)];
    while (i != NIL && memcmp(s->e[i].id.b, id->b, sizeof(id->b)) != 0)
        i = s->e[i].hnext;
    if (i != NIL && dead(&s->e[i], now)) {
        drop(s, i);
        return NIL;
    }
    return i;
}

/* Drops dead sessions from the cold end of list @p which (bounded work per call). */
static void reap(pol_sess_store_t *s, int which, int64_t now)
{
    for (int k = 0; k < REAP_PER_ALLOC && s->lists[which].tail != NIL; k++) {
        uint32_t t = s->lists[which].tail;
        if (!dead(&s->e[t], now))
            break;
        drop(s, t);
    }
}

/* A free entry for a session that goes on list @p which, evicting if the store is full. */
static uint32_t alloc_entry(pol_sess_store_t *s, int which, int64_t now)
{
    uint32_t i;
    reap(s, L_PENDING, now);
    reap(s, L_AUTHED, now);
    /* Anyone can start a login: pending sessions only evict each other past their quota. */
    if (which == L_PENDING && s->lists[L_PENDING].count >= s->max_pending)
        drop(s, s->lists[L_PENDING].tail);
    if (s->lists[L_FREE].count == 0)
        drop(s, s->lists[L_PENDING].count > 0 ? s->lists[L_PENDING].tail : s->lists[L_AUTHED].tail);
    i = s->lists[L_FREE].head;
    list_unlink(s, i);
    list_push(s, which, i);
    return i;
}

pol_sess_store_t *pol_sess_store_new(size_t max)
{
    pol_sess_store_t *s = mem_calloc(sizeof(*s));
    size_t nb = 1;

    if (max == 0)
        max = POL_SESS_MAX_DEFAULT;
    if (max < 4)
        max = 4;
    while (nb < max * 2)
        nb <<= 1;
    uv_mutex_init(&s->mu);
    s->max = max;
    s->max_pending = max / 4;
    s->e = mem_calloc(sizeof(sess_t) * max);
    s->bucket = mem_alloc(sizeof(uint32_t) * nb);
    s->mask = (uint32_t)(nb - 1);
    for (size_t b = 0; b < nb; b++)
        s->bucket[b] = NIL;
    for (int l = 0; l < 3; l++)
        s->lists[l] = (list_t){NIL, NIL, 0};
    for (size_t i = max; i-- > 0;) {
        s->e[i].hnext = NIL;
        list_push(s, L_FREE, (uint32_t)i);
    }
    return s;
}

void pol_sess_store_free(pol_sess_store_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->max; i++) {
        value_clear(&s->e[i]);
        for (size_t k = 0; k < POL_SESS_LOGINS; k++)
            login_clear(&s->e[i].login[k]);
    }
    mem_free(s->bucket);
    mem_free(s->e);
    uv_mutex_destroy(&s->mu);
    mem_free(s);
}

size_t pol_sess_store_count(pol_sess_store_t *s)
{
    size_t n;
    uv_mutex_lock(&s->mu);
    n = s->lists[L_PENDING].count + s->lists[L_AUTHED].count;
    uv_mutex_unlock(&s->mu);
    return n;
}

int pol_sess_value(pol_sess_store_t *s, const pol_sess_id_t *id, int64_t now, char *out, size_t cap)
{
    int rc = ERR_NOT_FOUND;
    uint32_t i;

    uv_mutex_lock(&s->mu);
    i = find(s, id, now);
    if (i != NIL && s->e[i].list == L_AUTHED) {
        sess_t *e = &s->e[i];
        if (e->value_len < cap) {
            memcpy(out, e->value, e->value_len + 1);
            list_unlink(s, i);
            list_push(s, L_AUTHED, i);
            rc = 0;
        } else {
            rc = ERR_TOO_LARGE;
        }
    }
    uv_mutex_unlock(&s->mu);
    return rc;
}

int pol_sess_begin(pol_sess_store_t *s, const pol_sess_id_t *cur, const char *state,
                   const char *url, int64_t now, int64_t ttl_s, pol_sess_id_t *out, bool *is_new)
{
    pol_sess_id_t fresh;
    size_t slen = state ? strlen(state) : 0;
    login_t *slot = NULL;
    char *copy;
    uint32_t i = NIL;
    sess_t *e;

    if (slen == 0 || slen > POL_SESS_STATE_LEN || url == NULL || ttl_s <= 0)
        return ERR_INVAL;
    if (strlen(url) > POL_SESS_URL_MAX)
        return ERR_TOO_LARGE;
    if (pol_sess_id_new(&fresh) < 0)
        return ERR_IDENTITY_CRYPTO;
    copy = mem_strdup(url);
    uv_mutex_lock(&s->mu);
    if (cur != NULL)
        i = find(s, cur, now);
    if (i == NIL) {
        i = alloc_entry(s, L_PENDING, now);
        s->e[i].id = fresh;
        hash_insert(s, i);
        *is_new = true;
    } else {
        *is_new = false;
        if (s->e[i].list == L_AUTHED)
            value_clear(&s->e[i]);
        list_unlink(s, i);
        list_push(s, L_PENDING, i);
    }
    e = &s->e[i];
    for (size_t k = 0; k < POL_SESS_LOGINS; k++) {
        login_t *l = &e->login[k];
        if (l->state[0] == '\0') {
            slot = l;
            break;
        }
        if (slot == NULL || l->seq < slot->seq)
            slot = l;
    }
    login_clear(slot);
    memcpy(slot->state, state, slen + 1);
    slot->url = copy;
    slot->expires = now + ttl_s;
    slot->seq = ++s->seq;
    *out = e->id;
    uv_mutex_unlock(&s->mu);
    return 0;
}

int pol_sess_take(pol_sess_store_t *s, const pol_sess_id_t *id, const char *state, bool consume,
                  int64_t now, buf_t *url)
{
    size_t slen = state ? strlen(state) : 0;
    int rc = ERR_NOT_FOUND;
    uint32_t i;

    if (slen == 0 || slen > POL_SESS_STATE_LEN)
        return ERR_NOT_FOUND;
    uv_mutex_lock(&s->mu);
    i = find(s, id, now);
    for (size_t k = 0; i != NIL && k < POL_SESS_LOGINS; k++) {
        login_t *l = &s->e[i].login[k];
        /* Every stored state has the same length, so only its content is secret. */
        if (l->state[0] == '\0' || strlen(l->state) != slen ||
            CRYPTO_memcmp(l->state, state, slen) != 0)
            continue;
        rc = 0;
        if (consume) {
            if (url != NULL)
                rc = buf_append_str(url, l->url);
            login_clear(l);
        }
        break;
    }
    uv_mutex_unlock(&s->mu);
    return rc;
}

int pol_sess_login(pol_sess_store_t *s, pol_sess_id_t *id, const char *value, int64_t now,
                   int64_t ttl_s)
{
    pol_sess_id_t fresh;
    size_t vlen = value ? strlen(value) : 0;
    char *copy;
    uint32_t i;
    sess_t *e;

    if (vlen == 0 || ttl_s <= 0)
        return ERR_INVAL;
    if (vlen > POL_SESS_VALUE_MAX)
        return ERR_TOO_LARGE;
    if (pol_sess_id_new(&fresh) < 0)
        return ERR_IDENTITY_CRYPTO;
    copy = mem_strdup(value);
    uv_mutex_lock(&s->mu);
    /* The login just consumed may have been the session's last, so look it up as raw. */
    i = s->bucket[bucket_of(s, id)];
    while (i != NIL && memcmp(s->e[i].id.b, id->b, sizeof(id->b)) != 0)
        i = s->e[i].hnext;
    if (i == NIL) {
        i = alloc_entry(s, L_AUTHED, now);
    } else {
        hash_remove(s, i);
        list_unlink(s, i);
        list_push(s, L_AUTHED, i);
    }
    e = &s->e[i];
    value_clear(e);
    for (size_t k = 0; k < POL_SESS_LOGINS; k++)
        login_clear(&e->login[k]);
    e->id = fresh;
    hash_insert(s, i);
    e->value = copy;
    e->value_len = vlen;
    e->expires = now + ttl_s;
    *id = fresh;
    uv_mutex_unlock(&s->mu);
    return 0;
}
