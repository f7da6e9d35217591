/* fuzz_sasl: the SASL exchanges (mail/sasl.c) fed with client bytes, as SMTP
 * AUTH and POP3 AUTH deliver them. The first byte picks the mechanism and
 * whether an initial response is given; the rest is split at '\n' into the
 * client's lines. Checks: no crash or sanitizer report, and whatever the
 * exchange hands to the verifier is NUL-terminated and within its bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/sasl.h"

static void
check_verify(const struct sasl_exchange *x)
{
	if (strnlen(x->authcid, sizeof(x->authcid)) >= sizeof(x->authcid) ||
	    strnlen(x->password, sizeof(x->password)) >= sizeof(x->password) ||
	    strnlen(x->digest, sizeof(x->digest)) >= sizeof(x->digest))
		abort();
	if (x->authcid[0] == '\0')
		abort(); /* an exchange must not verify an empty identity */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_exchange x;
	char out[512];
	char *buf;

	if (size < 1 || size > 64 * 1024)
		return 0;
	enum sasl_mech mech = (enum sasl_mech)(data[0] % SASL_MECH_COUNT);
	bool with_initial = (data[0] & 0x80) != 0;
	buf = malloc(size);
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';

	char *line = buf, *next = strchr(line, '\n');
	if (next != NULL)
		*next++ = '\0';
	enum sasl_result r = sasl_start(&x, mech, with_initial ? line : NULL, "fuzz.example",
	    out, sizeof(out));
	if (with_initial)
		line = next;
	for (int steps = 0; r == SASL_CHALLENGE && line != NULL && steps < 8; steps++) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		r = sasl_continue(&x, line, out, sizeof(out));
		line = next;
	}
	if (r == SASL_VERIFY)
		check_verify(&x);
	sasl_exchange_clear(&x);
	free(buf);
	return 0;
}
