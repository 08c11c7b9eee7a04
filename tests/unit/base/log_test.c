#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "test.h"

/* Runs @p fn with stderr redirected to a temporary file; returns what it wrote (static). */
static const char *capture(void (*fn)(void))
{
    static char out[8192];
    char path[] = "/tmp/outrigger-logtest.XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    ssize_t n;

    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, out, sizeof(out) - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return out;
}

static void write_kv(void)
{
    log_kv_t kv[] = {
        {"tool", "get \"x\"\n", false}, {"status", "200", true}, {"arguments", "{\"a\":1}", true}};
    log_kv(LOG_INFO, "audit", kv, 3, "mcp tool call");
    log_kv(LOG_DEBUG, "audit", kv, 3, "below the threshold");
}

TEST(kv_json)
{
    const char *s;
    log_init(LOG_INFO, true, "app\"1");
    s = capture(write_kv);
    ASSERT(strstr(s,
                  "\"app_id\":\"app\\\"1\",\"scope\":\"audit\",\"message\":\"mcp tool call\","
                  "\"tool\":\"get \\\"x\\\"\\u000a\",\"status\":200,\"arguments\":{\"a\":1}}\n"));
    ASSERT(strchr(s, '\n') == s + strlen(s) - 1); /* one line; the debug line was not written */
    /* "YYYY-MM-DDThh:mm:ss.mmmZ" */
    ASSERT(strncmp(s, "{\"time\":\"", 9) == 0);
    for (int i = 0; i < 24; i++) {
        char c = s[9 + i], want = "dddd-dd-ddTdd:dd:dd.dddZ"[i];
        ASSERT(want == 'd' ? (c >= '0' && c <= '9') : c == want);
    }
    ASSERT(strncmp(s + 33, "\",\"level\":\"info\",", 17) == 0);
}

TEST(kv_text)
{
    const char *s;
    log_init(LOG_INFO, false, "app");
    s = capture(write_kv);
    ASSERT(strstr(s,
                  "scope=audit msg=\"mcp tool call\" tool=\"get \\\"x\\\"\\u000a\" status=\"200\" "
                  "arguments=\"{\\\"a\\\":1}\"\n"));
}
