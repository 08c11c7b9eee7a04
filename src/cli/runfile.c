#include "cli/runfile.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fs.h"
#include "base/buf.h"
#include "base/str.h"

/* Longest path built here. */
#define RUNFILE_PATH_MAX 4096

void runfile_time_format(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    if (strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 && n > 0)
        out[0] = '\0';
}

/* Reads @p n digits at @p s into @p out, at most @p max. */
static int digits(const char *s, size_t n, uint64_t max, int *out)
{
    uint64_t v;
    int rc = str_u64(s, n, max, &v);
    if (rc < 0)
        return rc;
    *out = (int)v;
    return 0;
}

int runfile_time_parse(const char *s, int64_t *out)
{
    struct tm tm;
    int year, mon, day, hour, min, sec, oh, om;
    size_t n = strlen(s), i = 19;
    int64_t off = 0;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return ERR_PARSE;
    if (digits(s, 4, 9999, &year) < 0 || digits(s + 5, 2, 12, &mon) < 0 ||
        digits(s + 8, 2, 31, &day) < 0 || digits(s + 11, 2, 23, &hour) < 0 ||
        digits(s + 14, 2, 59, &min) < 0 || digits(s + 17, 2, 60, &sec) < 0 || mon == 0 || day == 0)
        return ERR_PARSE;
    if (s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        off = 0;
    } else if ((s[i] == '+' || s[i] == '-') && i + 6 == n && s[i + 3] == ':') {
        if (digits(s + i + 1, 2, 23, &oh) < 0 || digits(s + i + 4, 2, 59, &om) < 0)
            return ERR_PARSE;
        off = (int64_t)(oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    } else {
        return ERR_PARSE;
    }
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *out = (int64_t)t - off;
    return 0;
}

void runfile_age_format(int64_t s, char *out, size_t n)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(out, n, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, n, "%lldm", (long long)(s / 60));
    else if (s < 86400)
        snprintf(out, n, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, n, "%lldd", (long long)(s / 86400));
}

/* True when /proc says @p pid is a zombie: it has exited and only waits to be reaped, which can
 * take long when its parent died too and init is slow to reap. */
static bool is_zombie(long pid)
{
    char path[64], stat[512], *rp;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    /* "pid (comm) S ...": comm may hold spaces and parentheses, so look after the last ')'. */
    rp = strrchr(stat, ')');
    return rp != NULL && rp[1] == ' ' && rp[2] == 'Z';
}

bool runfile_pid_alive(long pid)
{
    if (pid <= 0)
        return false;
    /* EPERM means the process exists but belongs to someone else. */
    if (kill((pid_t)pid, 0) < 0 && errno != EPERM)
        return false;
    return !is_zombie(pid);
}

/* The file name must not escape the folder: ids hold no '/' and do not start with '.'. */
static bool safe_id(const char *id)
{
    return id != NULL && id[0] != '\0' && id[0] != '.' && strchr(id, '/') == NULL &&
           strlen(id) <= 255;
}

static json_t *entry_to_json(const runfile_entry_t *e)
{
    char created[32];
    json_t *o = json_object();

    runfile_time_format(e->created, created, sizeof(created));
    json_object_set_new(o, "appId", json_string(e->app_id));
    json_object_set_new(o, "httpPort", json_integer(e->http_port));
    json_object_set_new(o, "internalPort", json_integer(e->internal_port));
    json_object_set_new(o, "metricsPort", json_integer(e->metrics_port));
    json_object_set_new(o, "appPort", json_integer(e->app_port));
    json_object_set_new(o, "sidecarPid", json_integer(e->sidecar_pid));
    if (e->app_pid > 0)
        json_object_set_new(o, "appPid", json_integer(e->app_pid));
    if (e->cli_pid > 0)
        json_object_set_new(o, "cliPid", json_integer(e->cli_pid));
    json_object_set_new(o, "command", json_string(e->command ? e->command : ""));
    json_object_set_new(o, "created", json_string(created));
    json_object_set_new(o, "namespace", json_string(e->namespace_ ? e->namespace_ : "default"));
    return o;
}

int runfile_write(const char *home, const runfile_entry_t *e, long owner_pid, char **path_out,
                  err_detail_t *d)
{
    buf_t dir, path, tmp;
    json_t *doc = NULL;
    int rc = 0;

    buf_init(&dir, RUNFILE_PATH_MAX);
    buf_init(&path, RUNFILE_PATH_MAX);
    buf_init(&tmp, RUNFILE_PATH_MAX);
    if (home == NULL || e == NULL || !safe_id(e->app_id) || owner_pid <= 0) {
        rc = err_set(d, ERR_INVAL, "bad run registry entry");
        goto out;
    }
    rc = buf_printf(&dir, "%s/run", home);
    if (rc == 0)
        rc = buf_printf(&path, "%s/%s.%ld.json", buf_ptr(&dir), e->app_id, owner_pid);
    if (rc == 0)
        rc = buf_printf(&tmp, "%s.tmp", buf_ptr(&path));
    if (rc < 0) {
        rc = err_set(d, rc, "run registry path too long");
        goto out;
    }
    rc = fs_mkdir_p(buf_ptr(&dir), 0700, d);
    if (rc < 0)
        goto out;
    doc = entry_to_json(e);
    if (json_dump_file(doc, buf_ptr(&tmp), JSON_INDENT(2)) < 0) {
        rc = err_set(d, ERR_IO, "cannot write %s: %s", buf_ptr(&tmp), strerror(errno));
        unlink(buf_ptr(&tmp));
        goto out;
    }
    if (rename(buf_ptr(&tmp), buf_ptr(&path)) < 0) {
        rc = err_set(d, ERR_IO, "cannot rename %s: %s", buf_ptr(&tmp), strerror(errno));
        unlink(buf_ptr(&tmp));
        goto out;
    }
    if (path_out != NULL)
        *path_out = buf_take(&path);
out:
    json_decref(doc);
    buf_free(&tmp);
    buf_free(&path);
    buf_free(&dir);
    return rc;
}

int runfile_remove(const char *path)
{
    if (path == NULL)
        return ERR_INVAL;
    if (unlink(path) < 0 && errno != ENOENT)
        return ERR_IO;
    return 0;
}

/* Reads the owner pid from "<app-id>.<pid>.json"; returns 0 when @p name is not such a file. */
static long owner_of(const char *name)
{
    size_t n = strlen(name), end, start;
    uint64_t pid;

    if (n < sizeof(".1.json") || strcmp(name + n - 5, ".json") != 0 || name[0] == '.')
        return 0;
    end = n - 5;
    start = end;
    while (start > 0 && name[start - 1] != '.')
        start--;
    if (start < 2 || str_u64(name + start, end - start, INT32_MAX, &pid) < 0)
        return 0;
    return (long)pid;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

static int by_created(const void *pa, const void *pb)
{
    const runfile_entry_t *a = pa, *b = pb;
    if (a->created != b->created)
        return a->created < b->created ? -1 : 1;
    return strcmp(a->app_id, b->app_id);
}

int runfile_list(const char *home, runfile_list_t *out, err_detail_t *d)
{
    runfile_list_t l = {NULL, 0, NULL};
    buf_t dir, path;
    DIR *dp = NULL;
    struct dirent *de;
    int rc = 0;

    buf_init(&dir, RUNFILE_PATH_MAX);
    buf_init(&path, RUNFILE_PATH_MAX);
    if (home == NULL) {
        rc = ERR_INVAL;
        goto out;
    }
    rc = buf_printf(&dir, "%s/run", home);
    if (rc < 0)
        goto out;
    dp = opendir(buf_ptr(&dir));
    if (dp == NULL) {
        if (errno != ENOENT)
            rc = err_set(d, ERR_IO, "cannot read %s: %s", buf_ptr(&dir), strerror(errno));
        goto out;
    }
    l.items = mem_calloc(RUNFILE_MAX_ENTRIES * sizeof(*l.items));
    l.docs = mem_calloc(RUNFILE_MAX_ENTRIES * sizeof(*l.docs));
    while ((de = readdir(dp)) != NULL && l.count < RUNFILE_MAX_ENTRIES) {
        long pid = owner_of(de->d_name);
        runfile_entry_t *e = &l.items[l.count];
        json_error_t jerr;
        json_t *doc;

        if (pid == 0)
            continue;
        buf_reset(&path);
        if (buf_printf(&path, "%s/%s", buf_ptr(&dir), de->d_name) < 0)
            continue;
        if (!runfile_pid_alive(pid)) {
            unlink(buf_ptr(&path));
            continue;
        }
        doc = json_load_file(buf_ptr(&path), 0, &jerr);
        if (!json_is_object(doc)) {
            json_decref(doc);
            continue;
        }
        l.docs[l.count] = doc;
        e->app_id = jstr(doc, "appId");
        e->namespace_ = jstr(doc, "namespace");
        e->command = jstr(doc, "command");
        e->http_port = (int)jint(doc, "httpPort");
        e->internal_port = (int)jint(doc, "internalPort");
        e->metrics_port = (int)jint(doc, "metricsPort");
        e->app_port = (int)jint(doc, "appPort");
        e->sidecar_pid = jint(doc, "sidecarPid");
        e->app_pid = jint(doc, "appPid");
        e->cli_pid = jint(doc, "cliPid");
        if (runfile_time_parse(jstr(doc, "created"), &e->created) < 0)
            e->created = 0;
        e->owner_pid = pid;
        l.count++;
    }
    qsort(l.items, l.count, sizeof(*l.items), by_created);
out:
    if (dp != NULL)
        closedir(dp);
    buf_free(&path);
    buf_free(&dir);
    if (rc < 0) {
        runfile_list_free(&l);
        return rc;
    }
    *out = l;
    return 0;
}

void runfile_list_free(runfile_list_t *l)
{
    for (size_t i = 0; l->docs != NULL && i < l->count; i++)
        json_decref((json_t *)l->docs[i]);
    mem_free(l->docs);
    mem_free(l->items);
    l->docs = NULL;
    l->items = NULL;
    l->count = 0;
}
