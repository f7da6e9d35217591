/* smtp_parse.h: pure parsing of SMTP command lines (RFC 5321 §4.1.1, §4.1.2,
 * RFC 1869 esmtp-param). No I/O, no session: the fuzz target and the unit
 * tests drive these directly. */
#ifndef TEGAMI_SMTP_PARSE_H
#define TEGAMI_SMTP_PARSE_H

#include <stddef.h>

#include "mail/addr.h"

#define SMTP_PARAMS_MAX 16

struct smtp_param {
	const char *keyword; /* points into the caller's line */
	const char *value;   /* NULL when the parameter has no "=value" */
};

struct smtp_path_args {
	struct mail_addr addr;
	struct smtp_param params[SMTP_PARAMS_MAX];
	size_t nparams;
};

enum smtp_parse_result {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_SYNTAX = -1,  /* wrong shape: "Syntax: MAIL FROM:<address>" */
	SMTP_PARSE_ADDRESS = -2, /* bad mailbox inside the brackets */
	SMTP_PARSE_PARAM = -3,   /* malformed esmtp-param */
};

/* Splits a command line (without CRLF) into verb and arguments: the verb is
 * the text up to the first space, *args_r points past one space (or at the
 * terminating NUL). Returns the verb length. */
size_t smtp_parse_verb(const char *line, const char **args_r);

/* Parses the arguments of MAIL ("FROM:<path> [params]") or RCPT
 * ("TO:<path> [params]"). prefix is "FROM:" or "TO:". args is modified in
 * place (parameters are NUL-terminated inside it). On error *error_r names
 * the problem for the reply text. */
enum smtp_parse_result smtp_parse_path_args(char *args, const char *prefix,
    unsigned addr_flags, struct smtp_path_args *out, const char **error_r);

/* Looks a parameter up by keyword, case-insensitively; NULL when absent. */
const struct smtp_param *smtp_param_find(const struct smtp_path_args *args,
    const char *keyword);

#endif
