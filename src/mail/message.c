#include "mail/message.h"

#include <event2/buffer.h>
#include <gmime/gmime.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "lib/strutil.h"
#include "lib/xmalloc.h"

/* The header block we look at: a From: further in is not believable. */
#define HEADER_SCAN_MAX (256 * 1024)

void
message_init(void)
{
	static bool done;

	if (!done) {
		g_mime_init();
		done = true;
	}
}

/* The unfolded value of the first From: header in the header block of
 * text[0..len), or NULL. Caller frees. */
static char *
find_from(const char *text, size_t len)
{
	const char *p = text, *end = text + len;

	while (p < end && *p != '\n') { /* a blank line ends the header block */
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end;
		if ((size_t)(eol - p) >= 5 && strncasecmp(p, "From:", 5) == 0) {
			GString *v = g_string_new_len(p + 5, eol - p - 5);
			for (p = eol + (nl != NULL); p < end && (*p == ' ' || *p == '\t');) {
				nl = memchr(p, '\n', (size_t)(end - p));
				eol = nl != NULL ? nl : end;
				g_string_append_len(v, p, eol - p);
				p = eol + (nl != NULL);
			}
			char *out = xstrdup(v->str);
			g_string_free(v, TRUE);
			return out;
		}
		p = eol + (nl != NULL);
	}
	return NULL;
}

int
message_from_address(struct evbuffer *body, char *out, size_t outsize)
{
	size_t len = evbuffer_get_length(body);

	if (len > HEADER_SCAN_MAX)
		len = HEADER_SCAN_MAX;
	const char *text = (const char *)evbuffer_pullup(body, (ev_ssize_t)len);
	char *value = text != NULL ? find_from(text, len) : NULL;
	if (value == NULL)
		return 0;
	message_init();
	InternetAddressList *list = internet_address_list_parse(NULL, value);
	free(value);
	int rc = -1;
	if (list != NULL && internet_address_list_length(list) == 1) {
		InternetAddress *ia = internet_address_list_get_address(list, 0);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
			if (addr != NULL && strchr(addr, '@') != NULL && str_copy(out, addr, outsize)) {
				str_lower(out);
				rc = 1;
			}
		}
	}
	if (list != NULL)
		g_object_unref(list);
	return rc;
}
