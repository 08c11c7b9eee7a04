/*
 * fuzz.h — what every fuzz target shares: the libFuzzer entry point it defines, and CHECK, which
 * aborts (so libFuzzer and replay_main.c report the input) with the invariant that failed.
 */
#ifndef OUTRIGGER_FUZZ_H
#define OUTRIGGER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
