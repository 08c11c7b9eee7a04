#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "resources/resources_int.h"

#define ENV_NAME_MAX 255 /* longer names expand to "" without a lookup */

/* The one-character names Go's os.Expand accepts after '$' ($1, $*, ...). */
static bool is_special(char c)
{
    return strchr("*#$@!?-", c) != NULL || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * Reads the variable name after a '$' at [s, s+n), n ≥ 1, following Go's getShellName: sets
 * [*name, *name + *name_len) (empty when there is none) and returns how many bytes to skip.
 * An empty name with a skip > 0 means bad syntax ("${", "${}"), whose bytes Go drops.
 */
static size_t shell_name(const char *s, size_t n, const char **name, size_t *name_len)
{
    size_t i;

    *name = s;
    *name_len = 0;
    if (s[0] == '{') {
        if (n > 2 && is_special(s[1]) && s[2] == '}') {
            *name = s + 1;
            *name_len = 1;
            return 3;
        }
        for (i = 1; i < n; i++) {
            if (s[i] == '}') {
                if (i == 1)
                    return 2;
                *name = s + 1;
                *name_len = i - 1;
                return i + 1;
            }
        }
        return 1;
    }
    if (is_special(s[0])) {
        *name_len = 1;
        return 1;
    }
    for (i = 0; i < n && is_alnum(s[i]); i++)
        ;
    *name_len = i;
    return i;
}

/* Appends the environment value of the variable [name, name+len), or nothing when unset. */
static int append_env(buf_t *out, const char *name, size_t len)
{
    char key[ENV_NAME_MAX + 1];
    const char *v;

    if (len > ENV_NAME_MAX)
        return 0;
    memcpy(key, name, len);
    key[len] = '\0';
    v = getenv(key);
    return v ? buf_append_str(out, v) : 0;
}

int res__expand_env(const char *data, size_t len, buf_t *out)
{
    size_t i = 0, j;
    int rc = 0;

    for (j = 0; j < len && rc == 0; j++) {
        const char *name;
        size_t name_len, skip;

        if (data[j] != '$' || j + 1 >= len)
            continue;
        rc = buf_append(out, data + i, j - i);
        if (rc < 0)
            break;
        skip = shell_name(data + j + 1, len - j - 1, &name, &name_len);
        if (name_len == 0 && skip == 0)
            rc = buf_append(out, "$", 1); /* "$" not followed by a name stays */
        else if (name_len > 0)
            rc = append_env(out, name, name_len);
        j += skip;
        i = j + 1;
    }
    if (rc == 0)
        rc = buf_append(out, data + i, len - i);
    return rc;
}
