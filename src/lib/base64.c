#include "lib/base64.h"

#include <openssl/evp.h>
#include <string.h>

size_t
base64_encode(const void *in, size_t len, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

	return n < 0 ? 0 : (size_t)n;
}

static int
is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '+' || c == '/';
}

long
base64_decode(const char *in, unsigned char *out, size_t outsize)
{
	size_t len = strlen(in), pad = 0;

	/* EVP_DecodeBlock skips blanks and counts padding as data: check the
	 * alphabet and the shape here, then take the padding off its count. */
	if (len % 4 != 0 || len / 4 * 3 > outsize || len > (size_t)1 << 30)
		return -1;
	while (pad < 2 && len > pad && in[len - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++) {
		if (!is_b64(in[i]))
			return -1;
	}
	if (len == 0)
		return 0;
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n < pad)
		return -1;
	return (long)((size_t)n - pad);
}
