/* xmalloc.h: allocation that cannot fail. Out of memory is an unrecoverable
 * environment failure (STYLE.md), so these abort through fatal(). */
#ifndef TEGAMI_XMALLOC_H
#define TEGAMI_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
/* Resizes an array of nmemb elements of size bytes, checking the product. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
