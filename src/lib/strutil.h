/* strutil.h: small string helpers with explicit bounds. */
#ifndef TEGAMI_STRUTIL_H
#define TEGAMI_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Lower-cases ASCII letters in place; returns s. */
char *str_lower(char *s);

/* Copies src into dst of size dstsize, always NUL-terminating.
 * Returns false when src did not fit (dst then holds a truncated copy). */
bool str_copy(char *dst, const char *src, size_t dstsize);

/* Parses a whole decimal unsigned number, rejecting signs, blanks, overflow
 * and trailing junk. 0 or -1. */
int str_parse_u64(const char *s, uint64_t *value_r);

/* Like str_parse_u64 but accepts a K, M or G suffix (powers of 1024). */
int str_parse_size(const char *s, uint64_t *value_r);

/* ASCII case-insensitive prefix test. */
bool str_istarts_with(const char *s, const char *prefix);

#endif
