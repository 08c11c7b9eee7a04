/*
 * fetch: the URL splitter and loopback test, and real pol_fetch exchanges with a tiny HTTP/1.1
 * server run by the test on a thread (loopback, a free port): chunked and Content-Length bodies,
 * close-delimited bodies, the body limit, a server that never answers, refused connections,
 * malformed answers, and plain http:// to a remote host refused without connecting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"
#include "policy/fetch.h"
#include "test.h"

/* --- pol_url_split --------------------------------------------------------------------------- */

typedef struct split {
    int rc;
    bool tls;
    char host[64];
    int port;
    char path[64];
} split_t;

static split_t split(const char *url)
{
    split_t s;
    memset(&s, 0, sizeof(s));
    s.rc = pol_url_split(url, &s.tls, s.host, sizeof(s.host), &s.port, s.path, sizeof(s.path));
    return s;
}

TEST(url_split_schemes_hosts_ports)
{
    split_t s = split("https://idp.example/.well-known/openid-configuration");
    ASSERT_EQ(s.rc, 0);
    ASSERT(s.tls);
    ASSERT_STREQ(s.host, "idp.example");
    ASSERT_EQ(s.port, 443);
    ASSERT_STREQ(s.path, "/.well-known/openid-configuration");

    s = split("http://127.0.0.1:8080/jwks");
    ASSERT_EQ(s.rc, 0);
    ASSERT(!s.tls);
    ASSERT_STREQ(s.host, "127.0.0.1");
    ASSERT_EQ(s.port, 8080);
    ASSERT_STREQ(s.path, "/jwks");

    s = split("HTTPS://Idp.Example:8443");
    ASSERT_EQ(s.rc, 0);
    ASSERT(s.tls);
    ASSERT_STREQ(s.host, "Idp.Example");
    ASSERT_EQ(s.port, 8443);
    ASSERT_STREQ(s.path, "/");

    s = split("http://localhost");
    ASSERT_EQ(s.rc, 0);
    ASSERT_EQ(s.port, 80);
    ASSERT_STREQ(s.path, "/");

    /* IPv6 literals, with and without port. */
    s = split("http://[::1]:9000/token?x=1");
    ASSERT_EQ(s.rc, 0);
    ASSERT_STREQ(s.host, "::1");
    ASSERT_EQ(s.port, 9000);
    ASSERT_STREQ(s.path, "/token?x=1");
    s = split("https://[2001:db8::7]/a");
    ASSERT_EQ(s.rc, 0);
    ASSERT_STREQ(s.host, "2001:db8::7");
    ASSERT_EQ(s.port, 443);
    ASSERT_STREQ(s.path, "/a");
    ASSERT_EQ(split("http://[::1/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://[::1]x/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://[]/").rc, ERR_INVAL);

    /* Ports: 1..65535, digits only, nothing after. */
    ASSERT_EQ(split("http://h:1/").port, 1);
    ASSERT_EQ(split("http://h:65535/").port, 65535);
    ASSERT_EQ(split("http://h:0/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://h:65536/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://h:-1/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://h:/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://h:80x/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://h:99999999999999999999/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://h:8:9/").rc, ERR_INVAL);

    /* Schemes. */
    ASSERT_EQ(split("ftp://h/").rc, ERR_INVAL);
    ASSERT_EQ(split("https:/h/").rc, ERR_INVAL);
    ASSERT_EQ(split("h/x").rc, ERR_INVAL);
    ASSERT_EQ(split("").rc, ERR_INVAL);
    ASSERT_EQ(split("http://").rc, ERR_INVAL);
    ASSERT_EQ(split("http:///x").rc, ERR_INVAL);
    ASSERT_EQ(split("http://:80/").rc, ERR_INVAL);
}

/* pol_url_split into 8-byte host and path buffers (so that limits are reached early). */
static int split8(const char *url, char host[8], char path[8])
{
    bool tls;
    int port;
    return pol_url_split(url, &tls, host, 8, &port, path, 8);
}

TEST(url_split_userinfo_query_fragment_limits)
{
    split_t s;
    char url[400], host[8], path[8];

    /* Userinfo is refused (it would end up in logs), even percent-looking or empty. */
    ASSERT_EQ(split("https://user:secret@idp.example/").rc, ERR_INVAL);
    ASSERT_EQ(split("https://@idp.example/").rc, ERR_INVAL);
    ASSERT_EQ(split("http://u@[::1]:80/").rc, ERR_INVAL);
    /* An @ after the authority is path data. */
    s = split("https://idp.example/a@b");
    ASSERT_EQ(s.rc, 0);
    ASSERT_STREQ(s.path, "/a@b");
    s = split("https://idp.example?next=a@b");
    ASSERT_EQ(s.rc, 0);
    ASSERT_STREQ(s.host, "idp.example");
    ASSERT_STREQ(s.path, "/?next=a@b");

    /* Query without path; fragments dropped. */
    s = split("https://idp.example?a=1&b=2");
    ASSERT_EQ(s.rc, 0);
    ASSERT_STREQ(s.host, "idp.example");
    ASSERT_STREQ(s.path, "/?a=1&b=2");
    s = split("https://idp.example:444?a=1");
    ASSERT_EQ(s.rc, 0);
    ASSERT_EQ(s.port, 444);
    ASSERT_STREQ(s.path, "/?a=1");
    s = split("https://idp.example/p?q=1#frag");
    ASSERT_EQ(s.rc, 0);
    ASSERT_STREQ(s.path, "/p?q=1");
    s = split("https://idp.example#frag");
    ASSERT_EQ(s.rc, 0);
    ASSERT_STREQ(s.host, "idp.example");
    ASSERT_STREQ(s.path, "/");
    s = split("https://idp.example:8443#x/y");
    ASSERT_EQ(s.rc, 0);
    ASSERT_EQ(s.port, 8443);
    ASSERT_STREQ(s.path, "/");

    /* Limits: the host and the path must fit (with their NUL). */
    ASSERT_EQ(split8("http://abcdefg/", host, path), 0);
    ASSERT_STREQ(host, "abcdefg");
    ASSERT_EQ(split8("http://abcdefgh/", host, path), ERR_INVAL);
    ASSERT_EQ(split8("http://h/abcdef", host, path), 0);
    ASSERT_STREQ(path, "/abcdef");
    ASSERT_EQ(split8("http://h/abcdefg", host, path), ERR_INVAL);
    ASSERT_EQ(split8("http://h?abcde", host, path), 0);
    ASSERT_STREQ(path, "/?abcde");
    ASSERT_EQ(split8("http://h?abcdef", host, path), ERR_INVAL);
    memset(url, 0, sizeof(url));
    memcpy(url, "https://", 8);
    memset(url + 8, 'a', 300);
    ASSERT_EQ(split(url).rc, ERR_INVAL);
}

TEST(loopback_hosts)
{
    ASSERT(pol_host_is_loopback("localhost"));
    ASSERT(pol_host_is_loopback("LocalHost"));
    ASSERT(pol_host_is_loopback("127.0.0.1"));
    ASSERT(pol_host_is_loopback("127.255.255.254"));
    ASSERT(pol_host_is_loopback("::1"));
    ASSERT(!pol_host_is_loopback("128.0.0.1"));
    ASSERT(!pol_host_is_loopback("126.255.255.255"));
    ASSERT(!pol_host_is_loopback("10.0.0.1"));
    ASSERT(!pol_host_is_loopback("0.0.0.0"));
    ASSERT(!pol_host_is_loopback("::"));
    ASSERT(!pol_host_is_loopback("::ffff:8.8.8.8"));
    ASSERT(!pol_host_is_loopback("localhost.evil.example"));
    ASSERT(!pol_host_is_loopback("127.0.0.1.evil.example"));
    ASSERT(!pol_host_is_loopback("127.1"));
    ASSERT(!pol_host_is_loopback("0x7f.0.0.1"));
    ASSERT(!pol_host_is_loopback(""));
}

/* --- a one-shot HTTP server on a thread ------------------------------------------------------ */

typedef struct srv {
    int lfd;
    int port;
    const char *const *parts; /* written in order, NULL-terminated; NULL = never answer */
    size_t big;               /* > 0: a Content-Length body of this many bytes instead */
    bool stall;               /* after the parts, say nothing more until the client leaves */
    int gap_ms;               /* pause between parts (default 5 ms) */
    char req[8192];           /* what the client sent (head and body) */
    size_t req_len;
    pthread_t th;
} srv_t;

/* Reads until the client closes or 10 s pass. */
static void drain(srv_t *s, int fd, int ms)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char tmp[4096];
        ssize_t n;
        if (poll(&p, 1, ms) != 1)
            return;
        n = recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0)
            return;
        if (s != NULL && s->req_len + (size_t)n < sizeof(s->req)) {
            memcpy(s->req + s->req_len, tmp, (size_t)n);
            s->req_len += (size_t)n;
            s->req[s->req_len] = '\0';
            if (strstr(s->req, "\r\n\r\n") != NULL) {
                const char *cl = strstr(s->req, "Content-Length: ");
                const char *end = strstr(s->req, "\r\n\r\n") + 4;
                if (cl == NULL || s->req_len - (size_t)(end - s->req) >= strtoul(cl + 16, NULL, 10))
                    return;
            }
        }
    }
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    int fd;

    if (poll(&p, 1, 10000) != 1)
        return NULL;
    fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    drain(s, fd, 10000);
    if (s->big > 0) {
        char head[128], *body = mem_alloc(s->big);
        int hl = snprintf(head, sizeof(head),
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          s->big);
        memset(body, 'b', s->big);
        send_all(fd, head, (size_t)hl);
        send_all(fd, body, s->big);
        mem_free(body);
    } else if (s->parts != NULL) {
        for (size_t i = 0; s->parts[i] != NULL; i++) {
            send_all(fd, s->parts[i], strlen(s->parts[i]));
            usleep(s->gap_ms > 0 ? (useconds_t)s->gap_ms * 1000 : 5000); /* separate reads */
        }
        if (s->stall)
            drain(NULL, fd, 10000);
    } else {
        drain(NULL, fd, 10000); /* never answer: wait for the client to give up */
    }
    shutdown(fd, SHUT_WR);
    drain(NULL, fd, 2000);
    close(fd);
    return NULL;
}

static void srv_start_gap(srv_t *s, const char *const *parts, size_t big, bool stall, int gap_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->parts = parts;
    s->big = big;
    s->stall = stall;
    s->gap_ms = gap_ms;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(s->lfd, 4) != 0 || getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0 ||
        pthread_create(&s->th, NULL, srv_main, s) != 0) {
        perror("srv_start");
        abort();
    }
    s->port = ntohs(a.sin_port);
}

static void srv_start(srv_t *s, const char *const *parts, size_t big, bool stall)
{
    srv_start_gap(s, parts, big, stall, 0);
}

static void srv_stop(srv_t *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fetch(srv_t *s, const char *path, unsigned timeout_ms, pol_fetch_resp_t *out,
                 err_detail_t *d)
{
    char url[128];
    pol_fetch_req_t r = {.method = "GET", .url = url, .timeout_ms = timeout_ms};
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
    return pol_fetch(&r, out, d);
}

TEST(fetch_chunked_response)
{
    static const char *const parts[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\n"
        "Cache-Control: public, max-age=300\r\nTransfer-Encoding: chunked\r\n\r\n",
        "b\r\n{\"keys\":[]}\r\n", "1\r\n", "\n\r\n0\r\n\r\n", NULL};
    srv_t s;
    pol_fetch_resp_t out;
    err_detail_t d = {{0}};
    char host[64];

    srv_start(&s, parts, 0, false);
    ASSERT_EQ(fetch(&s, "/jwks?x=1#frag", 5000, &out, &d), 0);
    srv_stop(&s);
    ASSERT_EQ(out.status, 200);
    ASSERT_MEMEQ(out.body.ptr, out.body.len, "{\"keys\":[]}\n");
    ASSERT_STREQ(out.content_type, "application/jwk-set+json");
    ASSERT_EQ(out.max_age, 300);
    pol_fetch_resp_free(&out);
    /* What the server saw. */
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    ASSERT(strncmp(s.req, "GET /jwks?x=1 HTTP/1.1\r\n", 24) == 0);
    ASSERT(strstr(s.req, host) != NULL);
    ASSERT(strstr(s.req, "\r\nConnection: close\r\n") != NULL);
    ASSERT(strstr(s.req, "frag") == NULL);
}

TEST(fetch_content_length_and_post)
{
    static const char *const parts[] = {"HTTP/1.1 201 Created\r\nContent-Length: 17\r\n\r\n",
                                        "{\"access_token\":", "1}", NULL};
    static const char *const hdrs[] = {"Authorization: Basic Y2xpZW50OnNlY3JldA==", NULL};
    srv_t s;
    pol_fetch_resp_t out;
    err_detail_t d = {{0}};
    char url[128];
    pol_fetch_req_t r = {.method = "POST",
                         .url = url,
                         .content_type = "application/x-www-form-urlencoded",
                         .body = "grant_type=client_credentials",
                         .body_len = 29,
                         .headers = hdrs};

    srv_start(&s, parts, 0, false);
    snprintf(url, sizeof(url), "http://localhost:%d/token", s.port);
    ASSERT_EQ(pol_fetch(&r, &out, &d), 0);
    srv_stop(&s);
    ASSERT_EQ(out.status, 201);
    ASSERT_MEMEQ(out.body.ptr, out.body.len, "{\"access_token\":1");
    ASSERT_STREQ(out.content_type, "");
    ASSERT_EQ(out.max_age, -1);
    pol_fetch_resp_free(&out);
    ASSERT(strncmp(s.req, "POST /token HTTP/1.1\r\n", 22) == 0);
    ASSERT(strstr(s.req, "\r\nContent-Type: application/x-www-form-urlencoded\r\n") != NULL);
    ASSERT(strstr(s.req, "\r\nContent-Length: 29\r\n") != NULL);
    ASSERT(strstr(s.req, "\r\nAuthorization: Basic Y2xpZW50OnNlY3JldA==\r\n") != NULL);
    ASSERT(strstr(s.req, "\r\n\r\ngrant_type=client_credentials") != NULL);
}

TEST(fetch_close_delimited_and_errors_status)
{
    static const char *const parts[] = {
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n", "no such thing", NULL};
    srv_t s;
    pol_fetch_resp_t out;
    err_detail_t d = {{0}};

    srv_start(&s, parts, 0, false);
    ASSERT_EQ(fetch(&s, "/", 5000, &out, &d), 0);
    srv_stop(&s);
    ASSERT_EQ(out.status, 404);
    ASSERT_MEMEQ(out.body.ptr, out.body.len, "no such thing");
    ASSERT_STREQ(out.content_type, "text/plain");
    pol_fetch_resp_free(&out);
}

TEST(fetch_body_limit)
{
    srv_t s;
    pol_fetch_resp_t out;
    err_detail_t d = {{0}};

    /* Exactly the limit fits. */
    srv_start(&s, NULL, POL_FETCH_BODY_MAX, false);
    ASSERT_EQ(fetch(&s, "/big", 10000, &out, &d), 0);
    srv_stop(&s);
    ASSERT_EQ(out.body.len, POL_FETCH_BODY_MAX);
    pol_fetch_resp_free(&out);
    /* One byte more does not. */
    srv_start(&s, NULL, POL_FETCH_BODY_MAX + 1, false);
    ASSERT_EQ(fetch(&s, "/big", 10000, &out, &d), ERR_TOO_LARGE);
    srv_stop(&s);
    ASSERT(strstr(d.msg, "127.0.0.1") != NULL);
    pol_fetch_resp_free(&out);
}

TEST(fetch_chunked_body_limit)
{
    /* Chunks of 512 KiB: two fit, the third byte past the limit is refused. */
    static char chunk[512 * 1024 + 16];
    static const char *parts[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunk,
                                  chunk, "1\r\nx\r\n0\r\n\r\n", NULL};
    srv_t s;
    pol_fetch_resp_t out;
    err_detail_t d = {{0}};
    int n = snprintf(chunk, sizeof(chunk), "80000\r\n");

    memset(chunk + n, 'c', 512 * 1024);
    memcpy(chunk + n + 512 * 1024, "\r\n", 3);
    srv_start(&s, parts, 0, false);
    ASSERT_EQ(fetch(&s, "/", 10000, &out, &d), ERR_TOO_LARGE);
    srv_stop(&s);
    pol_fetch_resp_free(&out);
    parts[3] = "0\r\n\r\n";
    srv_start(&s, parts, 0, false);
    ASSERT_EQ(fetch(&s, "/", 10000, &out, &d), 0);
    srv_stop(&s);
    ASSERT_EQ(out.body.len, POL_FETCH_BODY_MAX);
    pol_fetch_resp_free(&out);
}

TEST(fetch_timeout)
{
    srv_t s;
    pol_fetch_resp_t out;
    err_detail_t d = {{0}};
    int64_t t0;

    srv_start(&s, NULL, 0, false);
    t0 = ms_now();
    ASSERT_EQ(fetch(&s, "/slow", 300, &out, &d), ERR_TIMEOUT);
    ASSERT(ms_now() - t0 >= 250 && ms_now() - t0 < 3000);
    pol_fetch_resp_free(&out);
    srv_stop(&s);
    /* A server that answers half a head and then stalls: the same. */
    {
        static const char *const parts[] = {"HTTP/1.1 200 OK\r\nContent-Le", NULL};
        srv_start(&s, parts, 0, true);
        t0 = ms_now();
        ASSERT_EQ(fetch(&s, "/slow", 300, &out, &d), ERR_TIMEOUT);
        ASSERT(ms_now() - t0 >= 250 && ms_now() - t0 < 3000);
        pol_fetch_resp_free(&out);
        srv_stop(&s);
    }
    /* A server that drips a byte every 100 ms: the timeout covers the whole exchange, not
     * each read. */
    {
        static const char *const drip[] = {"H", "T", "T", "P", "/",  "1",  ".", "1", " ", "2", "0",
                                           "0", " ", "O", "K", "\r", "\n", "X", ":", "1", NULL};
        srv_start_gap(&s, drip, 0, true, 100);
        t0 = ms_now();
        ASSERT_EQ(fetch(&s, "/drip", 500, &out, &d), ERR_TIMEOUT);
        ASSERT(ms_now() - t0 >= 450 && ms_now() - t0 < 1000);
        pol_fetch_resp_free(&out);
        srv_stop(&s);
    }
}

TEST(fetch_bad_responses)
{
    static const char *const garbage[] = {"SSH-2.0-OpenSSH_9.2\r\n\r\n", NULL};
    static const char *const early[] = {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
                                        NULL};
    static const char *const nothing[] = {NULL};
    srv_t s;
    pol_fetch_resp_t out;
    err_detail_t d = {{0}};

    srv_start(&s, garbage, 0, false);
    ASSERT_EQ(fetch(&s, "/", 5000, &out, &d), ERR_NET_BAD_RESPONSE);
    srv_stop(&s);
    pol_fetch_resp_free(&out);
    srv_start(&s, early, 0, false);
    ASSERT_EQ(fetch(&s, "/", 5000, &out, &d), ERR_NET_BAD_RESPONSE);
    srv_stop(&s);
    pol_fetch_resp_free(&out);
    srv_start(&s, nothing, 0, false);
    ASSERT_EQ(fetch(&s, "/", 5000, &out, &d), ERR_NET_BAD_RESPONSE);
    srv_stop(&s);
    pol_fetch_resp_free(&out);
}

TEST(fetch_refused_and_plain_remote)
{
    pol_fetch_resp_t out;
    err_detail_t d = {{0}};
    int port;
    int64_t t0;
    pol_fetch_req_t r = {.method = "GET", .timeout_ms = 5000};

    /* A port nobody listens on (bound, never listening): connect refused. */
    {
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t al = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
               getsockname(fd, (struct sockaddr *)&a, &al) == 0);
        port = ntohs(a.sin_port);
        close(fd);
    }
    {
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
        r.url = url;
        ASSERT_EQ(pol_fetch(&r, &out, &d), ERR_NET_CONNECT);
        pol_fetch_resp_free(&out);
    }
    /* Plain http to a non-loopback address is refused before any connection: a black-holed
     * TEST-NET address would otherwise take the whole timeout. */
    t0 = ms_now();
    r.url = "http://192.0.2.1:8080/jwks";
    ASSERT_EQ(pol_fetch(&r, &out, &d), ERR_INVAL);
    ASSERT(ms_now() - t0 < 1000);
    ASSERT(strstr(d.msg, "192.0.2.1") != NULL);
    pol_fetch_resp_free(&out);
    r.url = "http://idp.example/jwks";
    ASSERT_EQ(pol_fetch(&r, &out, &d), ERR_INVAL);
    pol_fetch_resp_free(&out);
    r.url = "http://[2001:db8::1]/jwks";
    ASSERT_EQ(pol_fetch(&r, &out, &d), ERR_INVAL);
    pol_fetch_resp_free(&out);
    /* Userinfo and bad URLs: refused, and the secret is not in the detail. */
    r.url = "https://user:hunter2@127.0.0.1/";
    ASSERT_EQ(pol_fetch(&r, &out, &d), ERR_INVAL);
    ASSERT(strstr(d.msg, "hunter2") == NULL);
    pol_fetch_resp_free(&out);
    ASSERT_EQ(mem_used(), 0);
}
