/* test_addr.c: src/mail/addr.c, the RFC 5321 §4.1.2 Path and Mailbox parser. */
#include "test_util.h"

#include "mail/addr.h"

/* ---- helpers: each reports the input and the calling line on failure ---- */

#define PATH_OK(s, flags, local, domain) path_ok(__LINE__, (s), (flags), (local), (domain))
#define PATH_BAD(s, flags) path_bad(__LINE__, (s), (flags))
#define MAILBOX_OK(s, local, domain) mailbox_ok(__LINE__, (s), (local), (domain))
#define MAILBOX_BAD(s) mailbox_bad(__LINE__, (s))

static void
path_ok(int line, const char *s, unsigned flags, const char *local, const char *domain)
{
	struct mail_addr a;
	const char *end = NULL, *error = NULL;

	if (addr_parse_path(s, flags, &a, &end, &error) != 0)
		fail_msg("line %d: <%s> flags %u refused: %s", line, s, flags,
		    error != NULL ? error : "(no error set)");
	if (a.null)
		fail_msg("line %d: <%s> parsed as the null path", line, s);
	if (strcmp(a.local, local) != 0 || strcmp(a.domain, domain) != 0)
		fail_msg("line %d: <%s> gave local [%s] domain [%s], want [%s] [%s]", line, s,
		    a.local, a.domain, local, domain);
	/* The inputs here end at their '>': end_r is just past it. */
	if (end != s + strlen(s))
		fail_msg("line %d: <%s> end_r at offset %td, want %zu", line, s,
		    end != NULL ? end - s : -1, strlen(s));
}

static void
path_bad(int line, const char *s, unsigned flags)
{
	struct mail_addr a;
	const char *end = NULL, *error = NULL;

	if (addr_parse_path(s, flags, &a, &end, &error) != -1)
		fail_msg("line %d: [%s] flags %u accepted as local [%s] domain [%s]", line, s,
		    flags, a.local, a.domain);
	if (error == NULL || error[0] == '\0')
		fail_msg("line %d: [%s] refused without a reason", line, s);
}

static void
mailbox_ok(int line, const char *s, const char *local, const char *domain)
{
	struct mail_addr a;
	const char *error = NULL;

	if (addr_parse_mailbox(s, &a, &error) != 0)
		fail_msg("line %d: mailbox [%s] refused: %s", line, s, error);
	if (a.null || strcmp(a.local, local) != 0 || strcmp(a.domain, domain) != 0)
		fail_msg("line %d: mailbox [%s] gave [%s] [%s], want [%s] [%s]", line, s,
		    a.local, a.domain, local, domain);
}

static void
mailbox_bad(int line, const char *s)
{
	struct mail_addr a;
	const char *error = NULL;

	if (addr_parse_mailbox(s, &a, &error) != -1)
		fail_msg("line %d: mailbox [%s] accepted as [%s] [%s]", line, s, a.local, a.domain);
	if (error == NULL || error[0] == '\0')
		fail_msg("line %d: mailbox [%s] refused without a reason", line, s);
}

/* n copies of c into buf (NUL-terminated); returns buf. */
static char *
repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

/* A syntactically valid domain of exactly n octets (n >= 1): labels of 63. */
static char *
domain_of_len(char *buf, size_t n)
{
	size_t o = 0;

	while (o < n) {
		size_t left = n - o;
		size_t label = left > 63 ? 63 : left;
		/* never leave a remainder of 1 that would need a label after a dot */
		if (left > 63 && left - 63 == 1)
			label = 61;
		memset(buf + o, 'a', label);
		o += label;
		if (o < n)
			buf[o++] = '.';
	}
	buf[n] = '\0';
	return buf;
}

/* ---- Path: plain forms ---- */

static void
test_path_plain(void **state)
{
	PATH_OK("<user@example.com>", 0, "user", "example.com");
	PATH_OK("<first.last+tag@mail.sub.example.com>", 0, "first.last+tag", "mail.sub.example.com");
	PATH_OK("<a@b>", 0, "a", "b");
	PATH_OK("<x-y_z!#$%&'*+/=?^`{|}~@ex-ample.org>", 0, "x-y_z!#$%&'*+/=?^`{|}~", "ex-ample.org");
	PATH_OK("<User@EXAMPLE.Com>", 0, "User", "EXAMPLE.Com");         /* kept as written */
	PATH_OK("<u@123.example>", 0, "u", "123.example");
	PATH_OK("<u@a-b-c.d1>", 0, "u", "a-b-c.d1");
	/* all flags do not change how a normal path parses */
	PATH_OK("<user@example.com>", ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER, "user", "example.com");
}

static void
test_path_end_pointer(void **state)
{
	static const char line[] = "<a@b.c> SIZE=100";
	struct mail_addr a;
	const char *end = NULL, *error = NULL;

	assert_int_equal(addr_parse_path(line, 0, &a, &end, &error), 0);
	assert_ptr_equal(end, line + 7);
	assert_string_equal(end, " SIZE=100");

	/* junk after '>' is not the path parser's business: it stops there */
	static const char junk[] = "<a@b.c>junk";
	assert_int_equal(addr_parse_path(junk, 0, &a, &end, &error), 0);
	assert_string_equal(end, "junk");
	assert_string_equal(a.local, "a");
	assert_string_equal(a.domain, "b.c");
}

/* ---- Path: quoted local parts (RFC 5321 Quoted-string, quoted-pairSMTP) ---- */

static void
test_path_quoted(void **state)
{
	PATH_OK("<\"a b\"@x.org>", 0, "a b", "x.org");
	PATH_OK("<\"a\\\"b\"@x.org>", 0, "a\"b", "x.org");
	PATH_OK("<\"a\\\\b\"@x.org>", 0, "a\\b", "x.org");
	PATH_OK("<\"\\a\"@x.org>", 0, "a", "x.org");             /* any quoted-pair */
	PATH_OK("<\"a.b\"@x.org>", 0, "a.b", "x.org");           /* same as a.b@x.org */
	PATH_OK("<\"john..doe\"@x.org>", 0, "john..doe", "x.org");
	PATH_OK("<\".lead\"@x.org>", 0, ".lead", "x.org");
	PATH_OK("<\"@\"@x.org>", 0, "@", "x.org");
	PATH_OK("<\"<>\"@x.org>", 0, "<>", "x.org");
	PATH_OK("<\" \"@x.org>", 0, " ", "x.org");
	PATH_OK("<\"~!@#$%^&*()_+{}|:<>?,./;'[]\"@x.org>", 0, "~!@#$%^&*()_+{}|:<>?,./;'[]", "x.org");

	PATH_BAD("<\"\"@x.org>", 0);              /* empty quoted string */
	PATH_BAD("<\"abc@x.org>", 0);             /* unterminated */
	PATH_BAD("<\"abc\\", 0);                  /* backslash at the end */
	PATH_BAD("<\"a\tb\"@x.org>", 0);          /* HT is not qtextSMTP */
	PATH_BAD("<\"a\\\tb\"@x.org>", 0);        /* nor a quoted-pairSMTP */
	PATH_BAD("<\"a\rb\"@x.org>", 0);
	PATH_BAD("<\"a\x7f\"@x.org>", 0);
	PATH_BAD("<\"a\"b@x.org>", 0);            /* text after the closing quote */
	PATH_BAD("<a\"b\"@x.org>", 0);            /* quote inside an atom */
}

/* ---- Path: source routes are accepted and ignored (RFC 5321 Appendix C) ---- */

static void
test_path_source_route(void **state)
{
	PATH_OK("<@a.example,@b.example:u@d.example>", 0, "u", "d.example");
	PATH_OK("<@relay.example:user@dest.example>", 0, "user", "dest.example");
	PATH_OK("<@a,@b,@c:u@d>", 0, "u", "d");
	PATH_OK("<@a:\"q x\"@d>", 0, "q x", "d");

	PATH_BAD("<@:u@d>", 0);
	PATH_BAD("<@a,b:u@d>", 0);       /* every hop needs its '@' */
	PATH_BAD("<@a,xb:u@d>", 0);
	PATH_BAD("<@a u@d>", 0);
	PATH_BAD("<@a,@b u@d>", 0);
	PATH_BAD("<@a,:u@d>", 0);
	PATH_BAD("<@-a:u@d>", 0);
	PATH_BAD("<@a:>", 0);
	PATH_BAD("<@a.example>", 0);     /* a route and no mailbox */
	PATH_BAD("<@>", 0);
}

/* ---- Path: the null reverse-path and <Postmaster> ---- */

static void
test_path_null(void **state)
{
	static const char s[] = "<> BODY=7BIT";
	struct mail_addr a;
	const char *end = NULL, *error = NULL;

	memset(&a, 0x55, sizeof(a));
	assert_int_equal(addr_parse_path(s, ADDR_ALLOW_NULL, &a, &end, &error), 0);
	assert_true(a.null);
	assert_string_equal(a.local, "");
	assert_string_equal(a.domain, "");
	assert_ptr_equal(end, s + 2);

	assert_int_equal(addr_parse_path("<>", ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER, &a, &end,
	    &error), 0);
	assert_true(a.null);

	PATH_BAD("<>", 0);
	PATH_BAD("<>", ADDR_ALLOW_POSTMASTER);
	PATH_BAD("< >", ADDR_ALLOW_NULL);
	PATH_BAD("<", ADDR_ALLOW_NULL);
}

static void
test_path_postmaster(void **state)
{
	PATH_OK("<Postmaster>", ADDR_ALLOW_POSTMASTER, "postmaster", "");
	PATH_OK("<postmaster>", ADDR_ALLOW_POSTMASTER, "postmaster", "");
	PATH_OK("<POSTMASTER>", ADDR_ALLOW_POSTMASTER, "postmaster", "");
	PATH_OK("<PostMaster>", ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_NULL, "postmaster", "");
	/* postmaster with a domain is an ordinary mailbox, flag or not */
	PATH_OK("<Postmaster@example.com>", 0, "Postmaster", "example.com");
	PATH_OK("<Postmaster@example.com>", ADDR_ALLOW_POSTMASTER, "Postmaster", "example.com");

	PATH_BAD("<Postmaster>", 0);
	PATH_BAD("<Postmaster>", ADDR_ALLOW_NULL);
	PATH_BAD("<Postmaster >", ADDR_ALLOW_POSTMASTER);
	PATH_BAD("<Postmasters>", ADDR_ALLOW_POSTMASTER);
	PATH_BAD("<Postmaste>", ADDR_ALLOW_POSTMASTER);
	PATH_BAD("<Postmaster", ADDR_ALLOW_POSTMASTER);
	PATH_BAD("<user>", ADDR_ALLOW_POSTMASTER);
}

/* ---- Path: address literals (RFC 5321 §4.1.3) ---- */

static void
test_path_address_literal(void **state)
{
	PATH_OK("<u@[1.2.3.4]>", 0, "u", "[1.2.3.4]");
	PATH_OK("<u@[127.0.0.1]>", 0, "u", "[127.0.0.1]");
	PATH_OK("<u@[255.255.255.255]>", 0, "u", "[255.255.255.255]");
	PATH_OK("<u@[IPv6:::1]>", 0, "u", "[IPv6:::1]");
	PATH_OK("<u@[IPv6:2001:db8::1]>", 0, "u", "[IPv6:2001:db8::1]");
	PATH_OK("<u@[IPv6:2001:db8:0:0:0:0:0:1]>", 0, "u", "[IPv6:2001:db8:0:0:0:0:0:1]");
	PATH_OK("<u@[IPv6:::ffff:1.2.3.4]>", 0, "u", "[IPv6:::ffff:1.2.3.4]");

	PATH_BAD("<u@[x-tag:content]>", 0);        /* General-address-literal refused */
	PATH_BAD("<u@[tag:1.2.3.4]>", 0);
	PATH_BAD("<u@[::1]>", 0);                  /* IPv6 needs its tag */
	PATH_BAD("<u@[IPv6:1.2.3.4]>", 0);
	PATH_BAD("<u@[IPv6:]>", 0);
	PATH_BAD("<u@[IPv6:::g]>", 0);
	PATH_BAD("<u@[1.2.3]>", 0);
	PATH_BAD("<u@[1.2.3.4.5]>", 0);
	PATH_BAD("<u@[256.1.1.1]>", 0);
	PATH_BAD("<u@[1.2.3.4 ]>", 0);
	PATH_BAD("<u@[]>", 0);
	PATH_BAD("<u@[1.2.3.4>", 0);               /* unclosed */
	PATH_BAD("<u@[1.2.3.4]x>", 0);
	PATH_BAD("<u@1.2.3.4]>", 0);
	PATH_BAD("<u@[1.2.3.4]", 0);               /* no closing '>' */
}

/* ---- Path: RFC 5321 §4.5.3.1 lengths ---- */

static void
test_path_local_length(void **state)
{
	char local[128], path[512];

	repeat(local, 'l', ADDR_LOCAL_MAX);
	snprintf(path, sizeof(path), "<%s@x.org>", local);
	PATH_OK(path, 0, local, "x.org");
	snprintf(path, sizeof(path), "<\"%s\"@x.org>", local);
	PATH_OK(path, 0, local, "x.org");

	repeat(local, 'l', ADDR_LOCAL_MAX + 1);
	snprintf(path, sizeof(path), "<%s@x.org>", local);
	PATH_BAD(path, 0);
	snprintf(path, sizeof(path), "<\"%s\"@x.org>", local);
	PATH_BAD(path, 0);

	/* the limit counts unquoted octets: 32 quoted-pairs are 32 octets */
	char pairs[200];
	for (int i = 0; i < 32; i++) {
		pairs[2 * i] = '\\';
		pairs[2 * i + 1] = '"';
	}
	pairs[64] = '\0';
	snprintf(path, sizeof(path), "<\"%s\"@x.org>", pairs);
	repeat(local, '"', 32);
	PATH_OK(path, 0, local, "x.org");
}

static void
test_path_label_length(void **state)
{
	char label[128], path[512];

	repeat(label, 'd', 63);
	snprintf(path, sizeof(path), "<u@%s.example>", label);
	snprintf(label + 63, sizeof(label) - 63, ".example");
	PATH_OK(path, 0, "u", label);

	repeat(label, 'd', 64);
	snprintf(path, sizeof(path), "<u@%s.example>", label);
	PATH_BAD(path, 0);
	snprintf(path, sizeof(path), "<u@example.%s>", label);
	PATH_BAD(path, 0);
}

/* RFC 5321 §4.5.3.1.3: "The maximum total length of a reverse-path or
 * forward-path is 256 octets (including the punctuation and element
 * separators)". The Path production includes the angle brackets (RFC 5321
 * errata 1690: hence the 254-octet mailbox). */
static void
test_path_total_length(void **state)
{
	char local[128], domain[300], path[600];

	repeat(local, 'l', 64);
	/* "<" + 64 + "@" + domain + ">" == 256  =>  domain is 189 octets */
	domain_of_len(domain, 256 - 64 - 3);
	snprintf(path, sizeof(path), "<%s@%s>", local, domain);
	assert_int_equal(strlen(path), 256);
	PATH_OK(path, 0, local, domain);

	domain_of_len(domain, 257 - 64 - 3);
	snprintf(path, sizeof(path), "<%s@%s>", local, domain);
	assert_int_equal(strlen(path), 257);
	PATH_BAD(path, 0);

	domain_of_len(domain, 258 - 64 - 3);
	snprintf(path, sizeof(path), "<%s@%s>", local, domain);
	assert_int_equal(strlen(path), 258);
	PATH_BAD(path, 0);

	/* a long source route counts too */
	char route[300];
	domain_of_len(route, 200);
	snprintf(path, sizeof(path), "<@%s:%s@x.org>", route, local);
	assert_true(strlen(path) > 256);
	PATH_BAD(path, 0);
}

/* ---- Path: refused shapes ---- */

static void
test_path_bad_syntax(void **state)
{
	/* brackets */
	PATH_BAD("user@example.com", 0);
	PATH_BAD("<user@example.com", 0);
	PATH_BAD("user@example.com>", 0);
	PATH_BAD(" <user@example.com>", 0);
	PATH_BAD("", 0);
	PATH_BAD("<", 0);
	PATH_BAD("<<a@b>>", 0);
	/* local part */
	PATH_BAD("<@example.com>", 0);
	PATH_BAD("<.user@example.com>", 0);
	PATH_BAD("<user.@example.com>", 0);
	PATH_BAD("<us..er@example.com>", 0);
	PATH_BAD("<.@example.com>", 0);
	PATH_BAD("<us er@example.com>", 0);
	PATH_BAD("<us(er@example.com>", 0);
	PATH_BAD("<us,er@example.com>", 0);
	PATH_BAD("<us;er@example.com>", 0);
	PATH_BAD("<us[er@example.com>", 0);
	PATH_BAD("<us\\er@example.com>", 0);
	/* missing parts */
	PATH_BAD("<user>", 0);
	PATH_BAD("<user@>", 0);
	PATH_BAD("<user@@example.com>", 0);
	PATH_BAD("<a@b@example.com>", 0);
	/* domain */
	PATH_BAD("<user@.example.com>", 0);
	PATH_BAD("<user@example.com.>", 0);
	PATH_BAD("<user@example..com>", 0);
	PATH_BAD("<user@-example.com>", 0);
	PATH_BAD("<user@example-.com>", 0);
	PATH_BAD("<user@example.-com>", 0);
	PATH_BAD("<user@example.com->", 0);
	PATH_BAD("<user@exa_mple.com>", 0);
	PATH_BAD("<user@exa mple.com>", 0);
	PATH_BAD("<user@example.com >", 0);
	PATH_BAD("<user@example.com x>", 0);
	PATH_BAD("<user@example.com:25>", 0);
	/* 8-bit bytes: SMTPUTF8 is not offered */
	PATH_BAD("<\xc3\xa9t\xc3\xa9@example.com>", 0);
	PATH_BAD("<user@\xc3\xa9xample.com>", 0);
	PATH_BAD("<user@example.c\xc3\xb3m>", 0);
	PATH_BAD("<\"\xc3\xa9\"@example.com>", 0);
	PATH_BAD("<\"\\\xc3\"@example.com>", 0);
	PATH_BAD("<u\x80@example.com>", 0);
	PATH_BAD("<u@example.com\xff>", 0);
	/* control characters */
	PATH_BAD("<u\r\n@example.com>", 0);
	PATH_BAD("<u@exam\tple.com>", 0);
}

/* ---- Mailbox (the admin command's form) ---- */

static void
test_mailbox(void **state)
{
	char local[128], domain[300], s[600];

	MAILBOX_OK("user@example.com", "user", "example.com");
	MAILBOX_OK("First.Last@Example.COM", "First.Last", "Example.COM");
	MAILBOX_OK("\"a b\"@example.com", "a b", "example.com");
	MAILBOX_OK("u@[192.0.2.1]", "u", "[192.0.2.1]");
	MAILBOX_OK("u@[IPv6:2001:db8::2]", "u", "[IPv6:2001:db8::2]");

	MAILBOX_BAD("<user@example.com>");
	MAILBOX_BAD("user@example.com ");
	MAILBOX_BAD(" user@example.com");
	MAILBOX_BAD("user@example.com>");
	MAILBOX_BAD("user@example.com,x@y");
	MAILBOX_BAD("user");
	MAILBOX_BAD("Postmaster");
	MAILBOX_BAD("");
	MAILBOX_BAD("@example.com");
	MAILBOX_BAD("user@");
	MAILBOX_BAD("user@example..com");
	MAILBOX_BAD("@a:user@example.com");     /* no source route in a mailbox */
	MAILBOX_BAD("u@[x:y]");

	/* the limits are 64 octets of local part and 255 of domain (RFC 5321
	 * §4.5.3.1.1, §4.5.3.1.2) */
	repeat(local, 'u', 64);
	snprintf(s, sizeof(s), "%s@x.org", local);
	MAILBOX_OK(s, local, "x.org");
	domain_of_len(domain, 256);
	snprintf(s, sizeof(s), "u@%s", domain);
	MAILBOX_BAD(s);
	repeat(local, 'u', 65);
	snprintf(s, sizeof(s), "%s@x.org", local);
	MAILBOX_BAD(s);
}

/* ---- addr_domain_valid / addr_is_dot_string ---- */

static void
test_domain_valid(void **state)
{
	char d[400];

	assert_true(addr_domain_valid("example.com"));
	assert_true(addr_domain_valid("a"));
	assert_true(addr_domain_valid("A-B.c0m"));
	assert_true(addr_domain_valid("123"));
	assert_true(addr_domain_valid("x--y.example"));
	assert_true(addr_domain_valid(domain_of_len(d, 255)));
	repeat(d, 'a', 63);
	assert_true(addr_domain_valid(d));

	assert_false(addr_domain_valid(""));
	assert_false(addr_domain_valid("."));
	assert_false(addr_domain_valid(".example.com"));
	assert_false(addr_domain_valid("example.com."));
	assert_false(addr_domain_valid("example..com"));
	assert_false(addr_domain_valid("-example.com"));
	assert_false(addr_domain_valid("example-.com"));
	assert_false(addr_domain_valid("example.-com"));
	assert_false(addr_domain_valid("example.com-"));
	assert_false(addr_domain_valid("exa_mple.com"));
	assert_false(addr_domain_valid("exa mple.com"));
	assert_false(addr_domain_valid("example.com "));
	assert_false(addr_domain_valid("[1.2.3.4]"));
	assert_false(addr_domain_valid("\xc3\xa9.com"));
	assert_false(addr_domain_valid(domain_of_len(d, 256)));
	repeat(d, 'a', 64);
	assert_false(addr_domain_valid(d));
}

static void
test_dot_string(void **state)
{
	assert_true(addr_is_dot_string("a"));
	assert_true(addr_is_dot_string("a.b.c"));
	assert_true(addr_is_dot_string("!#$%&'*+-/=?^_`{|}~"));
	assert_false(addr_is_dot_string(""));
	assert_false(addr_is_dot_string("."));
	assert_false(addr_is_dot_string(".a"));
	assert_false(addr_is_dot_string("a."));
	assert_false(addr_is_dot_string("a..b"));
	assert_false(addr_is_dot_string("a b"));
	assert_false(addr_is_dot_string("a\"b"));
	assert_false(addr_is_dot_string("a@b"));
	assert_false(addr_is_dot_string("a\\b"));
	assert_false(addr_is_dot_string("\xc3\xa9"));
}

/* ---- addr_format ---- */

static void
format_is(const struct mail_addr *a, const char *want)
{
	char buf[600];
	size_t n = addr_format(a, buf, sizeof(buf));

	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
}

static void
set_addr(struct mail_addr *a, const char *local, const char *domain)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->local, sizeof(a->local), "%s", local);
	snprintf(a->domain, sizeof(a->domain), "%s", domain);
}

static void
test_format(void **state)
{
	struct mail_addr a;

	set_addr(&a, "user", "example.com");
	format_is(&a, "user@example.com");
	set_addr(&a, "first.last+tag", "example.com");
	format_is(&a, "first.last+tag@example.com");
	set_addr(&a, "a b", "x.org");
	format_is(&a, "\"a b\"@x.org");
	set_addr(&a, "a\"b", "x.org");
	format_is(&a, "\"a\\\"b\"@x.org");
	set_addr(&a, "a\\b", "x.org");
	format_is(&a, "\"a\\\\b\"@x.org");
	set_addr(&a, ".lead", "x.org");
	format_is(&a, "\".lead\"@x.org");
	set_addr(&a, "john..doe", "x.org");
	format_is(&a, "\"john..doe\"@x.org");
	set_addr(&a, "u", "[IPv6:::1]");
	format_is(&a, "u@[IPv6:::1]");
	set_addr(&a, "postmaster", "");          /* bare <Postmaster> */
	format_is(&a, "postmaster");

	set_addr(&a, "ignored", "ignored.example");
	a.null = true;
	format_is(&a, "");
}

static void
test_format_truncation(void **state)
{
	struct mail_addr a;
	char buf[8];

	set_addr(&a, "user", "example.com");
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(addr_format(&a, buf, 5), 4);
	assert_string_equal(buf, "user");
	assert_int_equal(buf[5], 'X');              /* nothing past size */

	assert_int_equal(addr_format(&a, buf, 1), 0);
	assert_string_equal(buf, "");

	memset(buf, 'X', sizeof(buf));
	assert_int_equal(addr_format(&a, buf, 0), 0);
	assert_int_equal(buf[0], 'X');              /* size 0: untouched */

	set_addr(&a, "a b", "x");
	assert_int_equal(addr_format(&a, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "\"a b\"@x");
}

/* Parse, format, parse again: same address. */
static void
test_format_round_trip(void **state)
{
	static const char *const paths[] = {
		"<user@example.com>",
		"<\"a b\"@x.org>",
		"<\"a\\\"b\"@x.org>",
		"<\"a\\\\b\"@x.org>",
		"<\"\\a\\b\\c\"@x.org>",
		"<\"a.b\"@x.org>",
		"<\"..\"@x.org>",
		"<\"\\\\\\\"\"@x.org>",
		"<@r1,@r2:u@[1.2.3.4]>",
		"<u@[IPv6:2001:db8::1]>",
		"<\"~!@#$%^&*()_+{}|:<>?,./;'[]\"@x.org>",
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct mail_addr a, b;
		const char *end, *error = NULL;
		char text[600], again[sizeof(text) + 2];

		if (addr_parse_path(paths[i], 0, &a, &end, &error) != 0)
			fail_msg("%s: %s", paths[i], error);
		addr_format(&a, text, sizeof(text));
		snprintf(again, sizeof(again), "<%s>", text);
		if (addr_parse_path(again, 0, &b, &end, &error) != 0)
			fail_msg("%s formatted as %s does not parse: %s", paths[i], again, error);
		assert_string_equal(a.local, b.local);
		assert_string_equal(a.domain, b.domain);
		assert_int_equal(*end, '\0');

		/* and the mailbox form too */
		if (addr_parse_mailbox(text, &b, &error) != 0)
			fail_msg("%s formatted as %s is not a mailbox: %s", paths[i], text, error);
		assert_string_equal(a.local, b.local);
		assert_string_equal(a.domain, b.domain);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_plain),
		cmocka_unit_test(test_path_end_pointer),
		cmocka_unit_test(test_path_quoted),
		cmocka_unit_test(test_path_source_route),
		cmocka_unit_test(test_path_null),
		cmocka_unit_test(test_path_postmaster),
		cmocka_unit_test(test_path_address_literal),
		cmocka_unit_test(test_path_local_length),
		cmocka_unit_test(test_path_label_length),
		cmocka_unit_test(test_path_total_length),
		cmocka_unit_test(test_path_bad_syntax),
		cmocka_unit_test(test_mailbox),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_dot_string),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_truncation),
		cmocka_unit_test(test_format_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
