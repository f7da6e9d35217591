#include "lib/strutil.h"

#include <string.h>
#include <strings.h>

char *
str_lower(char *s)
{
	for (char *p = s; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return s;
}

bool
str_copy(char *dst, const char *src, size_t dstsize)
{
	size_t len = strlen(src);

	if (dstsize == 0)
		return false;
	if (len >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return false;
	}
	memcpy(dst, src, len + 1);
	return true;
}

static int
parse_digits(const char *s, const char **end_r, uint64_t *value_r)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*end_r = p;
	*value_r = v;
	return 0;
}

int
str_parse_u64(const char *s, uint64_t *value_r)
{
	const char *end;

	if (parse_digits(s, &end, value_r) < 0 || *end != '\0')
		return -1;
	return 0;
}

int
str_parse_size(const char *s, uint64_t *value_r)
{
	const char *end;
	uint64_t v, mult = 1;

	if (parse_digits(s, &end, &v) < 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mult = 1024ULL; end++; break;
	case 'm': case 'M': mult = 1024ULL * 1024; end++; break;
	case 'g': case 'G': mult = 1024ULL * 1024 * 1024; end++; break;
	default: return -1;
	}
	if (*end != '\0' || (v != 0 && mult > UINT64_MAX / v))
		return -1;
	*value_r = v * mult;
	return 0;
}

bool
str_istarts_with(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}
