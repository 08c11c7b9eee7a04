/* The HTTP client against a scripted upstream on loopback: responses split into single bytes,
 * interim 1xx, close-delimited, chunked and truncated bodies, malformed heads. */
#include <arpa/inet.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "net/net.h"
#include "test.h"

/* The upstream: accepts one connection, reads the request head, then writes @p reply in pieces
 * of @p piece bytes (0: at once) with a short pause between them, and closes. */
typedef struct upstream {
    int lfd;
    int port;
    const char *reply;
    size_t reply_len;
    size_t piece;
    uv_thread_t thread;
} upstream_t;

static void upstream_run(void *arg)
{
    upstream_t *u = arg;
    char req[8192];
    size_t got = 0;
    int fd = accept(u->lfd, NULL, NULL), one = 1;

    if (fd < 0)
        return;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    while (got < sizeof(req) - 1) {
        ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    for (size_t off = 0; off < u->reply_len;) {
        size_t n = u->piece ? u->piece : u->reply_len;
        if (n > u->reply_len - off)
            n = u->reply_len - off;
        if (send(fd, u->reply + off, n, MSG_NOSIGNAL) != (ssize_t)n)
            break;
        off += n;
        if (u->piece)
            usleep(200);
    }
    shutdown(fd, SHUT_WR);
    usleep(20000);
    close(fd);
}

static void upstream_start(upstream_t *u, const char *reply, size_t len, size_t piece)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t sl = sizeof(a);
    int one = 1;

    u->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(u->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(u->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(u->lfd, 4) != 0)
        abort();
    getsockname(u->lfd, (struct sockaddr *)&a, &sl);
    u->port = ntohs(a.sin_port);
    u->reply = reply;
    u->reply_len = len;
    u->piece = piece;
    uv_thread_create(&u->thread, upstream_run, u);
}

static void upstream_stop(upstream_t *u)
{
    uv_thread_join(&u->thread);
    close(u->lfd);
}

/* What the client saw. */
typedef struct seen {
    net_worker_t *w;
    int status; /* response status, 0 before the head */
    int end;    /* on_end's status */
    bool ended;
    char x_test[64]; /* value of the response's X-Test field */
    buf_t body;
} seen_t;

static void on_head(net_creq_t *c, const net_head_t *h, void *ctx)
{
    seen_t *s = ctx;
    const net_header_t *x = net_head_get(h, "x-test");
    (void)c;
    s->status = h->status;
    if (x != NULL)
        snprintf(s->x_test, sizeof(s->x_test), "%s", x->value); /* NUL-terminated in place */
}

static void on_body(net_creq_t *c, const char *p, size_t n, void *ctx)
{
    seen_t *s = ctx;
    (void)c;
    if (buf_append(&s->body, p, n) < 0)
        abort();
}

static void on_end(net_creq_t *c, int status, const char *detail, void *ctx)
{
    seen_t *s = ctx;
    (void)c;
    (void)detail;
    s->end = status;
    s->ended = true;
    net_worker_stop_async(s->w);
}

static const net_creq_cbs_t cbs = {.on_head = on_head, .on_body = on_body, .on_end = on_end};

/* Sends one request (@p method) to an upstream answering @p reply in @p piece-byte pieces. */
static void fetch(seen_t *s, int method, const char *reply, size_t piece)
{
    upstream_t u;
    net_limits_t l;
    net_head_t h;
    net_creq_t *c;

    memset(s, 0, sizeof(*s));
    buf_init(&s->body, 1 << 20);
    upstream_start(&u, reply, strlen(reply), piece);
    net_limits_defaults(&l);
    s->w = net_worker_new(&l, 0);
    net_head_init(&h);
    h.method = method;
    if (net_head_set_url(&h, "/t", 2) != 0 ||
        net_creq_start(s->w, "127.0.0.1", u.port, "up", &h, 0, 5000, &cbs, s, &c) != 0)
        abort();
    net_head_free(&h);
    net_worker_run(s->w);
    net_worker_free(s->w);
    upstream_stop(&u);
}

static const char sized[] = "HTTP/1.1 200 OK\r\nX-Test:  v \t\r\nContent-Length: 5\r\n\r\nhello";

TEST(sized_response_whole_and_byte_by_byte)
{
    seen_t s;
    for (size_t piece = 0; piece <= 1; piece++) {
        fetch(&s, HTTP_GET, sized, piece);
        ASSERT(s.ended);
        ASSERT_EQ(s.end, 0);
        ASSERT_EQ(s.status, 200);
        ASSERT_STREQ(s.x_test, "v");
        ASSERT_STREQ(buf_ptr(&s.body), "hello");
        buf_free(&s.body);
    }
}

TEST(interim_responses_skipped)
{
    seen_t s;
    fetch(&s, HTTP_GET,
          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
          "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
          3);
    ASSERT_EQ(s.end, 0);
    ASSERT_EQ(s.status, 201);
    ASSERT_STREQ(buf_ptr(&s.body), "ok");
    buf_free(&s.body);
}

TEST(chunked_with_trailers_byte_by_byte)
{
    seen_t s;
    fetch(&s, HTTP_GET,
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nX-Sum: 1\r\n\r\n",
          1);
    ASSERT_EQ(s.end, 0);
    ASSERT_STREQ(buf_ptr(&s.body), "abcdefg");
    buf_free(&s.body);
}

TEST(close_delimited_body_completes_at_eof)
{
    seen_t s;
    fetch(&s, HTTP_GET, "HTTP/1.1 200 OK\r\n\r\nuntil close", 4);
    ASSERT_EQ(s.end, 0);
    ASSERT_STREQ(buf_ptr(&s.body), "until close");
    buf_free(&s.body);
}

TEST(truncated_bodies_are_errors)
{
    seen_t s;
    fetch(&s, HTTP_GET, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 0);
    ASSERT_EQ(s.end, ERR_NET_UPSTREAM_CLOSED);
    buf_free(&s.body);
    fetch(&s, HTTP_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 0);
    ASSERT_EQ(s.end, ERR_NET_UPSTREAM_CLOSED);
    buf_free(&s.body);
}

TEST(malformed_responses_refused)
{
    static const char *bad[] = {
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seen_t s;
        fetch(&s, HTTP_GET, bad[i], i % 2);
        if (s.end != ERR_NET_BAD_RESPONSE)
            TEST_FAIL_("case %zu: %d", i, s.end);
        buf_free(&s.body);
    }
}

TEST(head_response_has_no_body)
{
    seen_t s;
    fetch(&s, HTTP_HEAD, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0);
    ASSERT_EQ(s.end, 0);
    ASSERT_EQ(s.status, 200);
    ASSERT_EQ(s.body.len, 0);
    buf_free(&s.body);
}

TEST(long_head_in_pieces)
{
    /* Longer than H1_RESCAN_BYTES: parsed again only when a line ends. */
    buf_t r;
    seen_t s;
    buf_init(&r, 1 << 16);
    ASSERT_EQ(buf_append_str(&r, "HTTP/1.1 200 OK\r\n"), 0);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(buf_printf(&r, "X-Pad-%03d: %060d\r\n", i, i), 0);
    ASSERT_EQ(buf_append_str(&r, "X-Test: last\r\nContent-Length: 3\r\n\r\nend"), 0);
    fetch(&s, HTTP_GET, r.ptr, 700);
    ASSERT_EQ(s.end, 0);
    ASSERT_STREQ(s.x_test, "last");
    ASSERT_STREQ(buf_ptr(&s.body), "end");
    buf_free(&s.body);
    buf_free(&r);
}
