/*
 * Helpers for the identity tests: temporary state dirs and SVIDs issued by a real CA.
 * Included by one test file each (every function is static).
 */
#ifndef OUTRIGGER_IDTEST_H
#define OUTRIGGER_IDTEST_H

#include <ftw.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "identity/identity_int.h"

/* Makes a fresh private temporary folder; returns its path in @p out. */
static __attribute__((unused)) void idt_tmpdir(char *out, size_t n)
{
    snprintf(out, n, "/tmp/outrigger-idtest.XXXXXX");
    if (mkdtemp(out) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

static __attribute__((unused)) int idt_rm_one(const char *path, const struct stat *st, int flag,
                                              struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes @p dir and everything under it. */
static __attribute__((unused)) void idt_rmtree(const char *dir)
{
    nftw(dir, idt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Issues an SVID from @p ca for @p uri valid over [now + from_s, now + to_s]; NULL on failure.
 * The chain is checked only when @p verify is set. */
static __attribute__((unused)) identity_svid_t *idt_issue(const identity__ca_t *ca, const char *uri,
                                                          int64_t from_s, int64_t to_s, bool verify)
{
    identity__profile_t p;
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    identity_svid_t *s = NULL;
    err_detail_t d = {""};
    int64_t now = (int64_t)time(NULL);
    buf_t chain;

    buf_init(&chain, 1 << 20);
    memset(&p, 0, sizeof(p));
    p.uri = uri;
    p.client_auth = true;
    p.not_before = now + from_s;
    p.not_after = now + to_s;
    if (identity__key_new(&key, &d) < 0 || identity__ca_sign(ca, key, &p, &leaf, &d) < 0 ||
        identity__ca_chain_pem(ca, leaf, &chain) < 0) {
        fprintf(stderr, "  idt_issue: %s\n", d.msg);
        EVP_PKEY_free(key);
        key = NULL;
        goto out;
    }
    if (identity__svid_new(key, chain.ptr, chain.len, ca->bundle_pem, strlen(ca->bundle_pem), NULL,
                           0, verify, &s, &d) < 0) {
        fprintf(stderr, "  idt_issue: %s\n", d.msg);
        s = NULL;
    }
out:
    X509_free(leaf);
    buf_free(&chain);
    return s;
}

/* Opens (creating) a CA in a subfolder "ca" of @p dir. */
static __attribute__((unused)) identity__ca_t *idt_ca(const char *dir, const char *sub)
{
    char path[512];
    identity__ca_t *ca = NULL;
    err_detail_t d = {""};

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    if (identity__ca_open(path, "public", &ca, &d) < 0) {
        fprintf(stderr, "  idt_ca: %s\n", d.msg);
        return NULL;
    }
    return ca;
}

#endif
