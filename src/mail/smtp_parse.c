#include "mail/smtp_parse.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

size_t
smtp_parse_verb(const char *line, const char **args_r)
{
	size_t n = strcspn(line, " ");

	*args_r = line[n] == ' ' ? line + n + 1 : line + n;
	return n;
}

static int
is_keychar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value]
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 * esmtp-value = 1*(%d33-60 / %d62-126) */
static int
parse_param(char *p, struct smtp_param *param)
{
	char *eq = strchr(p, '=');

	if (!is_keychar(*p))
		return -1;
	for (char *k = p + 1; *k != '\0' && k != eq; k++) {
		if (!is_keychar(*k) && *k != '-')
			return -1;
	}
	param->keyword = p;
	param->value = NULL;
	if (eq == NULL)
		return 0;
	*eq = '\0';
	char *v = eq + 1;
	if (*v == '\0')
		return -1;
	for (char *c = v; *c != '\0'; c++) {
		unsigned char u = (unsigned char)*c;
		if (u < 33 || u > 126 || u == '=')
			return -1;
	}
	param->value = v;
	return 0;
}

enum smtp_parse_result
smtp_parse_path_args(char *args, const char *prefix, unsigned addr_flags,
    struct smtp_path_args *out, const char **error_r)
{
	size_t plen = strlen(prefix);
	const char *end;

	memset(out, 0, sizeof(*out));
	if (strncasecmp(args, prefix, plen) != 0) {
		*error_r = "syntax";
		return SMTP_PARSE_SYNTAX;
	}
	char *p = args + plen;
	while (*p == ' ') /* common, if not RFC: "MAIL FROM: <a@b>" */
		p++;
	if (*p != '<') {
		*error_r = "syntax";
		return SMTP_PARSE_SYNTAX;
	}
	if (addr_parse_path(p, addr_flags, &out->addr, &end, error_r) < 0)
		return SMTP_PARSE_ADDRESS;
	p = (char *)(uintptr_t)end;
	if (*p != '\0' && *p != ' ') {
		*error_r = "junk after address";
		return SMTP_PARSE_SYNTAX;
	}
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		char *tok = p;
		p += strcspn(p, " ");
		if (*p != '\0')
			*p++ = '\0';
		if (out->nparams >= SMTP_PARAMS_MAX) {
			*error_r = "too many parameters";
			return SMTP_PARSE_PARAM;
		}
		if (parse_param(tok, &out->params[out->nparams]) < 0) {
			*error_r = "bad parameter syntax";
			return SMTP_PARSE_PARAM;
		}
		out->nparams++;
	}
	return SMTP_PARSE_OK;
}

const struct smtp_param *
smtp_param_find(const struct smtp_path_args *args, const char *keyword)
{
	for (size_t i = 0; i < args->nparams; i++) {
		if (strcasecmp(args->params[i].keyword, keyword) == 0)
			return &args->params[i];
	}
	return NULL;
}
