/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz.h - what every libFuzzer target of tests/fuzz shares: the entry
 * point's prototype and FUZZ_CHECK, which turns a broken property (a round
 * trip that does not return, output that is not JSON) into a crash that
 * libFuzzer reports with its reproducer.
 */
#ifndef LURK_FUZZ_H
#define LURK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A NUL-terminated copy of the input (free() it), for APIs that take C strings. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s != NULL) {
        for (size_t i = 0; i < size; i++) {
            s[i] = (char) data[i];
        }
        s[size] = '\0';
    }
    return s;
}

#endif /* LURK_FUZZ_H */
