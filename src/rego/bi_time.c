/*
 * bi_time.c — time builtins (UTC and fixed offsets only; no time zone database).
 */
#include <string.h>

#include "rego/rego_int.h"

const rego__builtin_t rego__bi_time[] = {
    {NULL, 0, NULL},
};
