/* base64url without padding (RFC 4648 §5), as JOSE uses it (see b64.h). */
#include "base/b64.h"

#include "base/err.h"

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64url_put(buf_t *b, const void *p, size_t n)
{
    const unsigned char *s = p;
    char out[4];
    size_t i = 0;
    int rc = 0;

    for (; rc == 0 && i + 3 <= n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        out[0] = b64url_chars[v >> 18];
        out[1] = b64url_chars[(v >> 12) & 63];
        out[2] = b64url_chars[(v >> 6) & 63];
        out[3] = b64url_chars[v & 63];
        rc = buf_append(b, out, 4);
    }
    if (rc == 0 && n - i == 1) {
        unsigned v = (unsigned)s[i] << 16;
        out[0] = b64url_chars[v >> 18];
        out[1] = b64url_chars[(v >> 12) & 63];
        rc = buf_append(b, out, 2);
    } else if (rc == 0 && n - i == 2) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
        out[0] = b64url_chars[v >> 18];
        out[1] = b64url_chars[(v >> 12) & 63];
        out[2] = b64url_chars[(v >> 6) & 63];
        rc = buf_append(b, out, 3);
    }
    return rc;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int b64url_decode(const char *p, size_t n, unsigned char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;

    /* A lone trailing character carries 6 bits: not a whole byte, so not valid base64. */
    if (n % 4 == 1)
        return ERR_PARSE;
    if (n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(p[i]);
        if (v < 0)
            return ERR_PARSE;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, or two encodings would decode to the same bytes. */
    if (acc != 0)
        return ERR_PARSE;
    *out_len = o;
    return 0;
}
