#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "observe/obs_int.h"
#include "test.h"

/* Builds an obs_t from a Configuration spec body (YAML, already indented by 2), or defaults. */
static obs_t *make(const char *spec, err_detail_t *d, int *rc_out)
{
    char doc[8192];
    res_config_t *c = NULL;
    obs_t *o = NULL;
    obs_opts_t oo = {.app_id = "app", .namespace_ = "default", .workers = 2, .api_logging = -1};
    int rc = 0;

    if (spec != NULL) {
        snprintf(doc, sizeof(doc),
                 "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: t\n"
                 "spec:\n%s",
                 spec);
        rc = res_config_parse(NULL, "t.yaml", doc, strlen(doc), 0, &c, d);
    }
    oo.config = c;
    if (rc == 0)
        rc = obs_new(&oo, &o, d);
    res_config_free(c);
    if (rc_out)
        *rc_out = rc;
    return o;
}

static char *render(obs_t *o, buf_t *b)
{
    buf_init(b, 64 * 1024 * 1024);
    if (obs_metrics_render(o, b) < 0)
        return NULL;
    return b->ptr ? b->ptr : (char *)"";
}

TEST(traceparent_valid_and_invalid)
{
    uint8_t t[16], s[8], f = 0;
    const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    ASSERT_EQ(obs_traceparent_parse(ok, strlen(ok), t, s, &f), 0);
    ASSERT_EQ(t[0], 0x4b);
    ASSERT_EQ(s[7], 0xb7);
    ASSERT_EQ(f, 1);
    /* A later version may carry more fields after a dash. */
    ASSERT_EQ(obs_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-xyz",
                                    59, t, s, &f),
              0);
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  /* v00 has no extra */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",   /* flags */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01zz", /* v01 extra without dash */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ(obs_traceparent_parse(bad[i], strlen(bad[i]), t, s, &f), ERR_PARSE);
}

TEST(traceparent_round_trip)
{
    obs_trace_t tr = {.sampled = true};
    char out[56];
    uint8_t t[16], s[8], f;
    for (int i = 0; i < 16; i++)
        tr.trace_id[i] = (uint8_t)(i * 17 + 1);
    for (int i = 0; i < 8; i++)
        tr.span_id[i] = (uint8_t)(0xa0 + i);
    obs_traceparent_format(&tr, out);
    ASSERT_EQ(strlen(out), 55);
    ASSERT_EQ(obs_traceparent_parse(out, 55, t, s, &f), 0);
    ASSERT(memcmp(t, tr.trace_id, 16) == 0);
    ASSERT(memcmp(s, tr.span_id, 8) == 0);
    ASSERT_EQ(f, 1);
}

TEST(ratio_sampler)
{
    uint8_t id[16] = {0};
    ASSERT(!obs_ratio_sampled(id, 0));
    ASSERT(obs_ratio_sampled(id, 1));
    memset(id + 8, 0xff, 8); /* the largest low half: only rate 1 samples it */
    ASSERT(!obs_ratio_sampled(id, 0.999));
    memset(id + 8, 0, 8);
    id[15] = 2; /* tiny */
    ASSERT(obs_ratio_sampled(id, 0.0001));
    /* Around half of random ids at 0.5. */
    int n = 0;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(id + 8, &x, 8);
        n += obs_ratio_sampled(id, 0.5);
    }
    ASSERT(n > 4500 && n < 5500);
}

TEST(trace_begin_continues_or_starts)
{
    err_detail_t d = {{0}};
    obs_t *o = make("  tracing:\n    samplingRate: \"1\"\n    stdout: true\n", &d, NULL);
    net_head_t h;
    obs_trace_t a, b;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

    ASSERT(o != NULL);
    ASSERT(o->tracing);
    net_head_init(&h);
    ASSERT_EQ(net_head_add(&h, "traceparent", 11, tp, strlen(tp)), 0);
    obs__trace_begin(o, &a, 0, &h);
    ASSERT(a.has_parent);
    ASSERT(!a.sampled); /* ParentBased: the caller said no */
    ASSERT_EQ(a.trace_id[0], 0x4b);
    ASSERT_EQ(a.parent_id[0], 0x00);
    ASSERT_EQ(a.parent_id[1], 0xf0);
    obs__trace_begin(o, &b, 1, NULL);
    ASSERT(!b.has_parent);
    ASSERT(b.sampled); /* rate 1 */
    ASSERT(memcmp(a.span_id, b.span_id, 8) != 0);
    /* Two traceparent headers are ambiguous: start a new trace. */
    ASSERT_EQ(net_head_add(&h, "traceparent", 11, tp, strlen(tp)), 0);
    obs__trace_begin(o, &a, 0, &h);
    ASSERT(!a.has_parent);
    net_head_free(&h);
    obs_free(o);
}

TEST(registry_counts_histograms_and_overflow)
{
    err_detail_t d = {{0}};
    obs_t *o = make(NULL, &d, NULL);
    buf_t b;
    char *text;
    const char *v[] = {"target", "unary"};
    const char *lat[] = {"target", "200", "unary"};

    ASSERT(o != NULL);
    obs__count(o, 0, OBS_F_SI_REQ_SENT, v, 2); /* shards of two workers, summed */
    obs__count(o, 1, OBS_F_SI_REQ_SENT, v, 1);
    obs__observe(o, 0, OBS_F_SI_RES_RECV_LATENCY, lat, 2500);       /* 2.5 ms */
    obs__observe(o, -1, OBS_F_SI_RES_RECV_LATENCY, lat, 999999999); /* beyond the last bucket */
    for (int i = 0; i < OBS_SERIES_MAX + 50; i++) {
        char id[32];
        const char *vv[] = {id, "unary"};
        snprintf(id, sizeof(id), "app-%d", i);
        obs__count(o, i % 2, OBS_F_SI_REQ_SENT, vv, 1);
    }
    text = render(o, &b);
    ASSERT(text != NULL);
    ASSERT(strstr(text, "# TYPE dapr_runtime_service_invocation_req_sent_total counter\n"));
    ASSERT(strstr(text, "dapr_runtime_service_invocation_req_sent_total{app_id=\"app\",dst_app_id="
                        "\"target\",type=\"unary\"} 3\n"));
    ASSERT(strstr(text, "dapr_runtime_service_invocation_res_recv_latency_ms_bucket{app_id=\"app\","
                        "src_app_id=\"target\",status=\"200\",le=\"2\"} 0\n"));
    ASSERT(strstr(text, "dapr_runtime_service_invocation_res_recv_latency_ms_bucket{app_id=\"app\","
                        "src_app_id=\"target\",status=\"200\",le=\"3\"} 1\n"));
    ASSERT(strstr(text, "dapr_runtime_service_invocation_res_recv_latency_ms_bucket{app_id=\"app\","
                        "src_app_id=\"target\",status=\"200\",le=\"100000\"} 1\n"));
    ASSERT(strstr(text, "dapr_runtime_service_invocation_res_recv_latency_ms_bucket{app_id=\"app\","
                        "src_app_id=\"target\",status=\"200\",le=\"+Inf\"} 2\n"));
    ASSERT(strstr(text, "dapr_runtime_service_invocation_res_recv_latency_ms_count{app_id=\"app\","
                        "src_app_id=\"target\",status=\"200\"} 2\n"));
    /* Bounded cardinality: label sets past the table land in "_other". */
    ASSERT(strstr(text, "dst_app_id=\"_other\",type=\"_other\"}"));
    buf_free(&b);
    obs_free(o);
}

TEST(series_memo_tells_label_sets_apart)
{
    err_detail_t d = {{0}};
    obs_t *o = make(NULL, &d, NULL);
    buf_t b;
    char *text;
    /* Same bytes, labels split differently; the worker's last series is tried first each time. */
    const char *ab[] = {"a", "b"}, *ab1[] = {"ab", ""}, *ab2[] = {"", "ab"};

    ASSERT(o != NULL);
    obs__count(o, 0, OBS_F_SI_REQ_SENT, ab, 1);
    obs__count(o, 0, OBS_F_SI_REQ_SENT, ab, 1);
    obs__count(o, 0, OBS_F_SI_REQ_SENT, ab1, 1);
    obs__count(o, 0, OBS_F_SI_REQ_SENT, ab, 1);
    obs__count(o, 0, OBS_F_SI_REQ_SENT, ab2, 5);
    obs__count(o, 1, OBS_F_SI_REQ_SENT, ab2, 1);
    obs__count(o, -1, OBS_F_SI_REQ_SENT, ab1, 1);
    text = render(o, &b);
    ASSERT(text != NULL);
    ASSERT(strstr(text, "req_sent_total{app_id=\"app\",dst_app_id=\"a\",type=\"b\"} 3\n"));
    ASSERT(strstr(text, "req_sent_total{app_id=\"app\",dst_app_id=\"ab\",type=\"\"} 2\n"));
    ASSERT(strstr(text, "req_sent_total{app_id=\"app\",dst_app_id=\"\",type=\"ab\"} 6\n"));
    buf_free(&b);
    obs_free(o);
}

TEST(label_values_are_escaped_and_utf8)
{
    err_detail_t d = {{0}};
    obs_t *o = make(NULL, &d, NULL);
    buf_t b;
    char out[16];

    obs__label_copy(out, sizeof(out), "ab\xc3", 3); /* a cut sequence */
    ASSERT_STREQ(out, "ab?");
    obs__label_copy(out, 4, "abcdef", 6);
    ASSERT_STREQ(out, "abc");
    /* Peer-supplied values (here: from headers) are made valid UTF-8, then escaped. */
    obs_denied(o, NULL, 0, "acl", "a\"b\\c\nd\xff\xc3\xa9", "t", NULL, NULL);
    ASSERT(strstr(render(o, &b), "caller_app_id=\"a\\\"b\\\\c\\nd?\xc3\xa9\""));
    buf_free(&b);
    obs_free(o);
}

TEST(path_matching_and_cardinality)
{
    err_detail_t d = {{0}};
    int rc;
    obs_t *o =
        make("  metrics:\n    http:\n      increasedCardinality: false\n      pathMatching:\n"
             "        - /orders/{orderID}\n        - /files/{rest...}\n",
             &d, &rc);
    char out[OBS_LABEL_MAX];

    ASSERT_EQ(rc, 0);
    obs__path_label(o, "/orders/42?secret=1", 19, out, sizeof(out));
    ASSERT_STREQ(out, "/orders/{orderID}");
    obs__path_label(o, "/orders/42/items", 16, out, sizeof(out));
    ASSERT_STREQ(out, ""); /* not matched, increasedCardinality false */
    obs__path_label(o, "/files/a/b/c", 12, out, sizeof(out));
    ASSERT_STREQ(out, "/files/{rest...}");
    ASSERT(!obs__pattern_match("/orders/{id}", "/orders/", 8));
    ASSERT(!o->fam[OBS_F_HTTP_SERVER_RESPONSE_COUNT].enabled);
    obs_free(o);

    o = make(NULL, &d, NULL);
    obs__path_label(o, "/v1.0/invoke/x/method/mcp?token=abc", 35, out, sizeof(out));
    ASSERT_STREQ(out, "/v1.0/invoke/x/method/mcp"); /* the query never becomes a label */
    ASSERT_STREQ(obs__method_label(o, HTTP_POST), "POST");
    ASSERT_STREQ(obs__method_label(o, HTTP_PROPFIND), "UNKNOWN");
    obs_free(o);
}

TEST(rules_rewrite_labels)
{
    err_detail_t d = {{0}};
    int rc;
    obs_t *o = make(
        "  metrics:\n    rules:\n      - name: dapr_runtime_service_invocation_req_sent_total\n"
        "        labels:\n          - name: dst_app_id\n            regex:\n"
        "              \"tenant-x\": \"^tenant-\"\n",
        &d, &rc);
    buf_t b;
    const char *v1[] = {"tenant-1", "unary"}, *v2[] = {"tenant-2", "unary"};

    ASSERT_EQ(rc, 0);
    obs__count(o, 0, OBS_F_SI_REQ_SENT, v1, 1);
    obs__count(o, 1, OBS_F_SI_REQ_SENT, v2, 1);
    ASSERT(strstr(render(o, &b), "dst_app_id=\"tenant-x\",type=\"unary\"} 2\n"));
    buf_free(&b);
    obs_free(o);

    o = make(
        "  metrics:\n    rules:\n      - name: dapr_runtime_service_invocation_req_sent_total\n"
        "        labels:\n          - name: nope\n            regex:\n              a: b\n",
        &d, &rc);
    ASSERT(o == NULL);
    ASSERT_EQ(rc, ERR_RES_INVALID);
    ASSERT(strstr(d.msg, "not a label of the metric"));
}

TEST(metrics_disabled_and_buckets)
{
    err_detail_t d = {{0}};
    int rc;
    obs_t *o = make("  metric:\n    enabled: true\n  metrics:\n    enabled: false\n", &d, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT(!obs_metrics_enabled(o)); /* metrics overrides metric */
    obs_free(o);
    o = make("  metrics:\n    latencyDistributionBuckets: [5, 50, 500]\n", &d, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(o->lat_nb, 3);
    obs_free(o);
    o = make("  metrics:\n    latencyDistributionBuckets: [5, 4]\n", &d, &rc);
    ASSERT(o == NULL);
    ASSERT_EQ(rc, ERR_RES_INVALID);
}

TEST(tracing_config_and_env)
{
    err_detail_t d = {{0}};
    int rc;
    obs_t *o = make("  tracing:\n    samplingRate: \"0.5\"\n    otel:\n      endpointAddress: "
                    "collector:4318\n      protocol: http\n      isSecure: false\n      headers:\n"
                    "        - name: api-key\n          value: k1\n",
                    &d, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT(o->tracing);
    ASSERT_STREQ(o->endpoint_host, "collector");
    ASSERT_EQ(o->endpoint_port, 4318);
    ASSERT_STREQ(o->endpoint_path, "/v1/traces");
    ASSERT(!o->secure);
    ASSERT_STREQ(o->headers, "api-key: k1\r\n");
    obs_free(o);

    o = make("  tracing:\n    otel:\n      endpointAddress: c:1\n      protocol: grpc\n", &d, &rc);
    ASSERT(o == NULL);
    ASSERT(strstr(d.msg, "grpc is not supported"));

    /* Unparsable rate: Dapr's 0.0001; "0" turns recording off. */
    o = make("  tracing:\n    samplingRate: abc\n    stdout: true\n", &d, &rc);
    ASSERT(o->rate > 0.00009 && o->rate < 0.00011);
    obs_free(o);
    o = make("  tracing:\n    samplingRate: \"0\"\n    stdout: true\n", &d, &rc);
    ASSERT(!o->tracing);
    obs_free(o);

    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9999/custom/path", 1);
    setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=1, b = 2", 1);
    o = make(NULL, &d, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT(o->tracing); /* the env sets samplingRate 1 */
    ASSERT(o->rate == 1.0);
    ASSERT_STREQ(o->endpoint_path, "/custom/path");
    ASSERT_EQ(o->endpoint_port, 9999);
    ASSERT(!o->secure);
    ASSERT_STREQ(o->headers, "a: 1\r\nb: 2\r\n");
    obs_free(o);
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example:4318", 1);
    o = make(NULL, &d, &rc);
    ASSERT(o->secure);
    ASSERT_STREQ(o->endpoint_path, "/v1/traces");
    obs_free(o);
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    unsetenv("OTEL_EXPORTER_OTLP_HEADERS");
}

TEST(ring_drops_and_counts_when_full)
{
    err_detail_t d = {{0}};
    obs_t *o;
    obs_span_t s, out[64];
    buf_t b;

    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "32", 1);
    o = make("  tracing:\n    samplingRate: \"1\"\n    stdout: true\n", &d, NULL);
    unsetenv("OTEL_BSP_MAX_QUEUE_SIZE");
    memset(&s, 0, sizeof(s));
    ASSERT_EQ(o->rings[0].cap, 16);
    for (int i = 0; i < 20; i++) {
        s.status = i;
        obs__span_push(o, 0, &s);
    }
    ASSERT(strstr(render(o, &b),
                  "outrigger_trace_spans_total{app_id=\"app\",outcome=\"dropped\"} 4\n"));
    buf_free(&b);
    ASSERT_EQ(obs__ring_pop(&o->rings[0], out, 10), 10);
    ASSERT_EQ(out[9].status, 9);
    ASSERT_EQ(obs__ring_pop(&o->rings[0], out, 64), 6);
    ASSERT_EQ(out[5].status, 15);
    ASSERT_EQ(obs__ring_pop(&o->rings[0], out, 64), 0);
    obs_free(o);
}

TEST(otlp_json_shape)
{
    err_detail_t d = {{0}};
    obs_t *o = make(NULL, &d, NULL);
    obs_span_t s;
    buf_t b;

    memset(&s, 0, sizeof(s));
    s.trace_id[0] = 0xab;
    s.span_id[7] = 0x01;
    s.side = OBS_SIDE_CALLEE;
    s.http_method = HTTP_POST;
    s.status = 200;
    s.start_unix_ns = 1000;
    s.end_unix_ns = 2000;
    snprintf(s.peer_app, sizeof(s.peer_app), "agent");
    snprintf(s.path, sizeof(s.path), "/mcp");
    snprintf(s.mcp_method, sizeof(s.mcp_method), "tools/call");
    snprintf(s.mcp_tool, sizeof(s.mcp_tool), "get \"weather\"");
    buf_init(&b, 1024 * 1024);
    ASSERT_EQ(obs__otlp_json(o, &s, 1, &b), 0);
    ASSERT(strstr(b.ptr, "\"traceId\":\"ab000000000000000000000000000000\""));
    ASSERT(strstr(b.ptr, "\"spanId\":\"0000000000000001\""));
    ASSERT(!strstr(b.ptr, "parentSpanId"));
    ASSERT(strstr(b.ptr, "\"name\":\"tools/call get \\\"weather\\\"\",\"kind\":2"));
    ASSERT(strstr(b.ptr, "{\"key\":\"gen_ai.tool.name\",\"value\":{\"stringValue\":\"get "
                         "\\\"weather\\\"\"}}"));
    ASSERT(strstr(b.ptr, "{\"key\":\"dapr.caller_app_id\",\"value\":{\"stringValue\":\"agent\"}}"));
    ASSERT(
        strstr(b.ptr, "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"200\"}}"));
    ASSERT(!strstr(b.ptr, "\"status\":{"));
    buf_free(&b);
    obs_free(o);
}

TEST(otlp_json_escapes_numbers_and_batches)
{
    err_detail_t d = {{0}};
    obs_t *o = make(NULL, &d, NULL);
    obs_span_t s[2];
    buf_t b;

    memset(s, 0, sizeof(s));
    s[0].span_id[0] = 1;
    s[0].side = OBS_SIDE_CALLER;
    s[0].http_method = HTTP_GET;
    s[0].start_unix_ns = 1764142000123456789ull;
    s[0].end_unix_ns = 18446744073709551615ull;
    snprintf(s[0].error, sizeof(s[0].error), "a\x01\x7f\\\"\xc3\xa9");
    s[1] = s[0];
    s[1].error[0] = '\0';
    s[1].status = 503;
    s[1].start_unix_ns = 0;
    s[1].end_unix_ns = 9;
    buf_init(&b, 1024 * 1024);
    ASSERT_EQ(obs__otlp_json(o, s, 2, &b), 0);
    ASSERT(strstr(b.ptr,
                  "\"name\":\"GET /\",\"kind\":3,\"startTimeUnixNano\":\"1764142000123456789\","
                  "\"endTimeUnixNano\":\"18446744073709551615\""));
    /* Control bytes and DEL as \u00XX, quote and backslash escaped, UTF-8 as it is. */
    ASSERT(strstr(b.ptr, "{\"key\":\"error.type\",\"value\":{\"stringValue\":\"a\\u0001\\u007f\\\\"
                         "\\\"\xc3\xa9\"}}],\"status\":{\"code\":2,\"message\":"
                         "\"a\\u0001\\u007f\\\\\\\"\xc3\xa9\"}}"));
    ASSERT(strstr(b.ptr, "\"startTimeUnixNano\":\"0\",\"endTimeUnixNano\":\"9\""));
    ASSERT(strstr(b.ptr, "{\"key\":\"error.type\",\"value\":{\"stringValue\":\"503\"}}]"));
    ASSERT(strstr(b.ptr, "}},{\"traceId\":")); /* two spans, comma-separated */
    ASSERT(strcmp(b.ptr + b.len - 6, "]}]}]}") == 0);
    buf_free(&b);
    obs_free(o);
}

/* A byte source that hands out @p step bytes at a time. */
typedef struct src {
    const char *p;
    size_t n, step;
} src_t;

static ssize_t src_read(void *ctx, char *p, size_t n)
{
    src_t *s = ctx;
    size_t k = s->n < s->step ? s->n : s->step;
    if (k > n)
        k = n;
    memcpy(p, s->p, k);
    s->p += k;
    s->n -= k;
    return (ssize_t)k;
}

static int read_resp(const char *text, size_t step, bool *reusable, size_t *left)
{
    src_t s = {text, strlen(text), step};
    int rc = obs__read_response(src_read, &s, reusable);
    *left = s.n;
    return rc;
}

TEST(collector_responses)
{
    bool re;
    size_t left;
    for (size_t step = 1; step <= 64; step *= 4) {
        ASSERT_EQ(read_resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", step, &re, &left),
                  200);
        ASSERT(re);
        ASSERT_EQ(left, 0);
        ASSERT_EQ(read_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
                            "\r\n",
                            step, &re, &left),
                  200);
        ASSERT(re);
        ASSERT_EQ(left, 0);
        /* Connection: close, or a body that ends at close: not reused. */
        ASSERT_EQ(read_resp("HTTP/1.1 503 x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                            step, &re, &left),
                  503);
        ASSERT(!re);
        ASSERT_EQ(read_resp("HTTP/1.0 200 OK\r\n\r\nbody", step, &re, &left), 200);
        ASSERT(!re);
    }
    ASSERT_EQ(read_resp("", 1, &re, &left), ERR_NET_UPSTREAM_CLOSED);
    ASSERT_EQ(read_resp("SSH-2.0-OpenSSH\r\n", 1, &re, &left), ERR_NET_BAD_RESPONSE);
    ASSERT_EQ(read_resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}", 1, &re, &left), 200);
    ASSERT(!re); /* truncated body */
    ASSERT_EQ(
        read_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 1, &re, &left),
        200);
    ASSERT(!re);
}
