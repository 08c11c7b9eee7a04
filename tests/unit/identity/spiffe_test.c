#include <string.h>

#include "base/err.h"
#include "identity/spiffe.h"
#include "test.h"

static int parse(const char *s, spiffe_id_t *id)
{
    return spiffe_id_parse(s, strlen(s), id);
}

TEST(spiffe_parses_dapr_ids)
{
    static spiffe_id_t id;

    ASSERT_EQ(parse("spiffe://public/ns/default/analyst-agent", &id), 0);
    ASSERT_STREQ(id.trust_domain, "public");
    ASSERT_STREQ(id.ns, "default");
    ASSERT_STREQ(id.app_id, "analyst-agent");
    ASSERT_STREQ(id.uri, "spiffe://public/ns/default/analyst-agent");
    ASSERT_EQ(id.uri_len, strlen("spiffe://public/ns/default/analyst-agent"));

    ASSERT_EQ(parse("spiffe://cluster.local/ns/Prod_1/My.App-2", &id), 0);
    ASSERT_STREQ(id.trust_domain, "cluster.local");
    ASSERT_STREQ(id.ns, "Prod_1");
    ASSERT_STREQ(id.app_id, "My.App-2");
}

TEST(spiffe_extra_segments_are_kept_but_ignored)
{
    static spiffe_id_t id;

    /* Dapr: "Don't force match of 4 segments, since we may want to add more identifiers". */
    ASSERT_EQ(parse("spiffe://example.org/ns/test/app/extra/identifiers", &id), 0);
    ASSERT_STREQ(id.ns, "test");
    ASSERT_STREQ(id.app_id, "app");
    ASSERT_STREQ(id.uri, "spiffe://example.org/ns/test/app/extra/identifiers");
}

TEST(spiffe_rejects_malformed)
{
    static const char *const bad[] = {
        "",
        "abcd",
        "spiffe://",
        "spiffe:///ns/a/b",                  /* no trust domain */
        "SPIFFE://public/ns/a/b",            /* scheme is lower case */
        "spiffe:/public/ns/a/b",             /* one slash */
        "https://public/ns/a/b",             /* other scheme */
        "spiffe://Public/ns/a/b",            /* upper-case trust domain */
        "spiffe://pub lic/ns/a/b",           /* space */
        "spiffe://user@public/ns/a/b",       /* userinfo */
        "spiffe://public:443/ns/a/b",        /* port */
        "spiffe://public",                   /* no path */
        "spiffe://public/",                  /* trailing slash */
        "spiffe://public/ns",                /* too short */
        "spiffe://public/ns/a",              /* no app id */
        "spiffe://mydomain/ns/myappid",      /* Dapr's own "not all fields" case */
        "spiffe://public/ns/a/",             /* empty app id / trailing slash */
        "spiffe://public/ns//b",             /* empty namespace */
        "spiffe://public/nss/a/b",           /* not "ns" */
        "spiffe://public/NS/a/b",            /* "ns" is literal */
        "spiffe://example.org/test/bar/app", /* Dapr's "no namespace" case */
        "spiffe://public/ns/a/b/",           /* trailing slash after the app id */
        "spiffe://public/ns/a/b//c",         /* empty extra segment */
        "spiffe://public/ns/./b",            /* dot segment */
        "spiffe://public/ns/a/..",           /* dot-dot segment */
        "spiffe://public/ns/a/b/../c",       /* dot-dot later */
        "spiffe://public/ns/a%2Fb/c",        /* percent-encoding */
        "spiffe://public/ns/a/b%41",         /* percent-encoding */
        "spiffe://public/ns/a/b?x=1",        /* query */
        "spiffe://public/ns/a/b#frag",       /* fragment */
        "spiffe://public/ns/a/b c",          /* space */
        "spiffe://public/ns/a/b\n",          /* control byte */
        "spiffe://public/ns/a/caf\xc3\xa9",  /* non-ASCII */
        "spiffe://public/ns/a:b/c",          /* ':' in a segment */
        "spiffe://public/ns/a/b@c",          /* '@' in a segment */
        " spiffe://public/ns/a/b",           /* leading space */
    };
    static spiffe_id_t id;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&id, 0x5a, sizeof(id));
        if (parse(bad[i], &id) != ERR_IDENTITY_BAD_SPIFFE_ID)
            TEST_FAIL_("accepted \"%s\"", bad[i]);
        /* Out-parameters are written only on success. */
        ASSERT_EQ((unsigned char)id.uri[0], 0x5a);
    }
    /* An embedded NUL is not the end of the ID. */
    ASSERT_EQ(spiffe_id_parse("spiffe://public/ns/a/b\0c", 24, &id), ERR_IDENTITY_BAD_SPIFFE_ID);
    ASSERT_EQ(spiffe_id_parse(NULL, 0, &id), ERR_INVAL);
    ASSERT_EQ(spiffe_id_parse("spiffe://public/ns/a/b", 22, NULL), ERR_INVAL);
}

TEST(spiffe_lengths_are_bounded)
{
    static char buf[SPIFFE_ID_MAX + 64];
    static spiffe_id_t id;
    size_t n;

    /* Trust domain of exactly 255 bytes is fine, 256 is not. */
    n = (size_t)snprintf(buf, sizeof(buf), "spiffe://%0255d/ns/a/b", 0);
    ASSERT_EQ(spiffe_id_parse(buf, n, &id), 0);
    ASSERT_EQ(strlen(id.trust_domain), 255);
    n = (size_t)snprintf(buf, sizeof(buf), "spiffe://%0256d/ns/a/b", 0);
    ASSERT_EQ(spiffe_id_parse(buf, n, &id), ERR_IDENTITY_BAD_SPIFFE_ID);

    /* Namespace and app id: 255 bytes each at most. */
    n = (size_t)snprintf(buf, sizeof(buf), "spiffe://td/ns/%0255d/%0255d", 1, 2);
    ASSERT_EQ(spiffe_id_parse(buf, n, &id), 0);
    n = (size_t)snprintf(buf, sizeof(buf), "spiffe://td/ns/%0256d/b", 1);
    ASSERT_EQ(spiffe_id_parse(buf, n, &id), ERR_IDENTITY_BAD_SPIFFE_ID);
    n = (size_t)snprintf(buf, sizeof(buf), "spiffe://td/ns/a/%0256d", 1);
    ASSERT_EQ(spiffe_id_parse(buf, n, &id), ERR_IDENTITY_BAD_SPIFFE_ID);

    /* The whole ID: 2048 bytes at most, extra segments included. */
    n = (size_t)snprintf(buf, sizeof(buf), "spiffe://td/ns/a/b/");
    memset(buf + n, 'x', SPIFFE_ID_MAX - n);
    ASSERT_EQ(spiffe_id_parse(buf, SPIFFE_ID_MAX, &id), 0);
    ASSERT_EQ(id.uri_len, SPIFFE_ID_MAX);
    buf[SPIFFE_ID_MAX] = 'x';
    ASSERT_EQ(spiffe_id_parse(buf, SPIFFE_ID_MAX + 1, &id), ERR_IDENTITY_BAD_SPIFFE_ID);
}

TEST(spiffe_format_round_trips)
{
    static spiffe_id_t id, again;
    char out[128];

    ASSERT_EQ(spiffe_id_format("public", "default", "analyst-agent", out, sizeof(out)), 0);
    ASSERT_STREQ(out, "spiffe://public/ns/default/analyst-agent");
    ASSERT_EQ(spiffe_id_from_parts("public", "default", "analyst-agent", &id), 0);
    ASSERT_STREQ(id.uri, out);
    ASSERT_EQ(parse(id.uri, &again), 0);
    ASSERT_STREQ(again.app_id, "analyst-agent");

    /* Exactly fitting, then one byte short. */
    ASSERT_EQ(spiffe_id_format("td", "n", "a", out, strlen("spiffe://td/ns/n/a") + 1), 0);
    memset(out, 'Z', sizeof(out));
    ASSERT_EQ(spiffe_id_format("td", "n", "a", out, strlen("spiffe://td/ns/n/a")), ERR_TOO_LARGE);
    ASSERT_EQ(out[0], 'Z');

    /* Each part is checked on its own: no smuggled segments, dots or upper-case domains. */
    ASSERT_EQ(spiffe_id_format("Public", "default", "a", out, sizeof(out)),
              ERR_IDENTITY_BAD_SPIFFE_ID);
    ASSERT_EQ(spiffe_id_format("public", "a/b", "c", out, sizeof(out)), ERR_IDENTITY_BAD_SPIFFE_ID);
    ASSERT_EQ(spiffe_id_format("public", "default", "..", out, sizeof(out)),
              ERR_IDENTITY_BAD_SPIFFE_ID);
    ASSERT_EQ(spiffe_id_format("public", "", "a", out, sizeof(out)), ERR_IDENTITY_BAD_SPIFFE_ID);
    ASSERT_EQ(spiffe_id_from_parts("public", "default", "a b", &id), ERR_IDENTITY_BAD_SPIFFE_ID);
    ASSERT_EQ(spiffe_id_format(NULL, "default", "a", out, sizeof(out)), ERR_INVAL);
}
