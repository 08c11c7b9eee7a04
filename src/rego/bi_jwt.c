/*
 * bi_jwt.c — io.jwt.* builtins over OpenSSL.
 */
#include <string.h>

#include "rego/rego_int.h"

const rego__builtin_t rego__bi_jwt[] = {
    {NULL, 0, NULL},
};
