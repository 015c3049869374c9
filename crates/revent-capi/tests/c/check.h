/* CHECK(cond): a failed condition prints where and exits 1. */
#ifndef REVENT_CHECK_H
#define REVENT_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); exit(1); } } while (0)
#endif
