#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "cli/runfile.h"
#include "test.h"

/* A fresh registry home under /tmp; removed by rm_home. */
static void make_home(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/outrigger-runfile-XXXXXX");
    if (mkdtemp(dir) == NULL)
        dir[0] = '\0';
}

static void rm_home(const char *home)
{
    char path[512];
    DIR *dp;
    struct dirent *de;

    snprintf(path, sizeof(path), "%s/run", home);
    dp = opendir(path);
    while (dp != NULL && (de = readdir(dp)) != NULL) {
        char f[1024];
        if (de->d_name[0] == '.')
            continue;
        snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
        unlink(f);
    }
    if (dp != NULL)
        closedir(dp);
    rmdir(path);
    rmdir(home);
}

static int count_files(const char *home)
{
    char path[512];
    DIR *dp;
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof(path), "%s/run", home);
    dp = opendir(path);
    while (dp != NULL && (de = readdir(dp)) != NULL)
        n += de->d_name[0] != '.';
    if (dp != NULL)
        closedir(dp);
    return n;
}

TEST(time_round_trip)
{
    char s[32];
    int64_t t = 0;

    runfile_time_format(1700000000, s, sizeof(s));
    ASSERT_STREQ(s, "2023-11-14T22:13:20Z");
    ASSERT_EQ(runfile_time_parse(s, &t), 0);
    ASSERT_EQ(t, 1700000000);
    ASSERT_EQ(runfile_time_parse("2023-11-14T23:13:20.123+01:00", &t), 0);
    ASSERT_EQ(t, 1700000000);
    ASSERT_EQ(runfile_time_parse("2023-11-14T22:13:20", &t), ERR_PARSE);
    ASSERT_EQ(runfile_time_parse("2023-13-14T22:13:20Z", &t), ERR_PARSE);
    ASSERT_EQ(runfile_time_parse("2023-11-14 22:13:20Z", &t), ERR_PARSE);
    ASSERT_EQ(runfile_time_parse("2023-11-14T22:13:20Zjunk", &t), ERR_PARSE);
    ASSERT_EQ(runfile_time_parse("", &t), ERR_PARSE);
}

TEST(age_like_dapr_list)
{
    char s[16];

    runfile_age_format(42, s, sizeof(s));
    ASSERT_STREQ(s, "42s");
    runfile_age_format(300, s, sizeof(s));
    ASSERT_STREQ(s, "5m");
    runfile_age_format(3 * 3600 + 5, s, sizeof(s));
    ASSERT_STREQ(s, "3h");
    runfile_age_format(2 * 86400, s, sizeof(s));
    ASSERT_STREQ(s, "2d");
    runfile_age_format(-5, s, sizeof(s));
    ASSERT_STREQ(s, "0s");
}

TEST(write_list_remove)
{
    char home[64];
    runfile_entry_t e;
    runfile_list_t l = {NULL, 0, NULL};
    err_detail_t d = {""};
    char *path = NULL;
    size_t before = mem_used();

    make_home(home, sizeof(home));
    ASSERT(home[0] != '\0');
    memset(&e, 0, sizeof(e));
    e.app_id = "orders";
    e.namespace_ = "prod";
    e.command = "node app.js";
    e.http_port = 3500;
    e.internal_port = 50002;
    e.metrics_port = 9090;
    e.app_port = 8080;
    e.sidecar_pid = 11;
    e.app_pid = 12;
    e.cli_pid = (long)getpid();
    e.created = (int64_t)time(NULL) - 90;
    ASSERT_EQ(runfile_write(home, &e, (long)getpid(), &path, &d), 0);
    ASSERT(path != NULL);
    ASSERT(strstr(path, "/run/orders.") != NULL);

    ASSERT_EQ(runfile_list(home, &l, &d), 0);
    ASSERT_EQ(l.count, 1);
    ASSERT_STREQ(l.items[0].app_id, "orders");
    ASSERT_STREQ(l.items[0].namespace_, "prod");
    ASSERT_STREQ(l.items[0].command, "node app.js");
    ASSERT_EQ(l.items[0].http_port, 3500);
    ASSERT_EQ(l.items[0].internal_port, 50002);
    ASSERT_EQ(l.items[0].metrics_port, 9090);
    ASSERT_EQ(l.items[0].app_port, 8080);
    ASSERT_EQ(l.items[0].sidecar_pid, 11);
    ASSERT_EQ(l.items[0].app_pid, 12);
    ASSERT_EQ(l.items[0].owner_pid, (long)getpid());
    ASSERT_EQ(l.items[0].created, e.created);
    runfile_list_free(&l);

    ASSERT_EQ(runfile_remove(path), 0);
    ASSERT_EQ(runfile_remove(path), 0);
    ASSERT_EQ(count_files(home), 0);
    mem_free(path);
    rm_home(home);
    ASSERT_EQ(mem_used(), before);
}

TEST(list_drops_dead_owners_and_skips_junk)
{
    char home[64], junk[128];
    runfile_entry_t e;
    runfile_list_t l = {NULL, 0, NULL};
    err_detail_t d = {""};
    FILE *f;

    make_home(home, sizeof(home));
    memset(&e, 0, sizeof(e));
    e.app_id = "gone";
    e.created = 1;
    /* Above any pid_max, so no process has it. */
    ASSERT_EQ(runfile_write(home, &e, 2147483000L, NULL, &d), 0);
    e.app_id = "alive";
    ASSERT_EQ(runfile_write(home, &e, (long)getpid(), NULL, &d), 0);
    snprintf(junk, sizeof(junk), "%s/run/bad.%ld.json", home, (long)getpid());
    f = fopen(junk, "w");
    ASSERT(f != NULL);
    fputs("{not json", f);
    fclose(f);
    snprintf(junk, sizeof(junk), "%s/run/notes.txt", home);
    f = fopen(junk, "w");
    ASSERT(f != NULL);
    fclose(f);
    ASSERT_EQ(count_files(home), 4);

    ASSERT_EQ(runfile_list(home, &l, &d), 0);
    ASSERT_EQ(l.count, 1);
    ASSERT_STREQ(l.items[0].app_id, "alive");
    ASSERT_STREQ(l.items[0].command, "");
    runfile_list_free(&l);
    /* The dead owner's file is gone; junk owned by a live pid stays. */
    ASSERT_EQ(count_files(home), 3);
    rm_home(home);
}

TEST(missing_folder_is_empty)
{
    runfile_list_t l = {NULL, 0, NULL};
    err_detail_t d = {""};

    ASSERT_EQ(runfile_list("/tmp/outrigger-no-such-home", &l, &d), 0);
    ASSERT_EQ(l.count, 0);
    runfile_list_free(&l);
}

TEST(bad_ids_are_refused)
{
    runfile_entry_t e;
    err_detail_t d = {""};

    memset(&e, 0, sizeof(e));
    e.app_id = "../escape";
    ASSERT_EQ(runfile_write("/tmp", &e, 1, NULL, &d), ERR_INVAL);
    e.app_id = "a/b";
    ASSERT_EQ(runfile_write("/tmp", &e, 1, NULL, &d), ERR_INVAL);
    e.app_id = "";
    ASSERT_EQ(runfile_write("/tmp", &e, 1, NULL, &d), ERR_INVAL);
}

TEST(pid_alive)
{
    ASSERT(runfile_pid_alive((long)getpid()));
    ASSERT(!runfile_pid_alive(0));
    ASSERT(!runfile_pid_alive(2147483000L));
}
