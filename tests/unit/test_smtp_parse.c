/* test_smtp_parse.c: src/mail/smtp_parse.c, MAIL/RCPT argument parsing
 * (RFC 5321 §4.1.1.2, §4.1.1.3, esmtp-param of §4.1.2). */
#include "test_util.h"

#include "mail/smtp_parse.h"

/* The parser modifies its input: every case works on its own copy, which
 * must outlive the parameters pointing into it. */
struct parsed {
	char line[2048];
	struct smtp_path_args pa;
	const char *error;
	enum smtp_parse_result rc;
};

static struct parsed *
parse(const char *args, const char *prefix, unsigned flags)
{
	static struct parsed p;

	memset(&p, 0, sizeof(p));
	assert_true(strlen(args) < sizeof(p.line));
	snprintf(p.line, sizeof(p.line), "%s", args);
	p.error = NULL;
	p.rc = smtp_parse_path_args(p.line, prefix, flags, &p.pa, &p.error);
	return &p;
}

#define EXPECT_RC(args, prefix, flags, want) expect_rc(__LINE__, (args), (prefix), (flags), (want))

static struct parsed *
expect_rc(int line, const char *args, const char *prefix, unsigned flags,
    enum smtp_parse_result want)
{
	struct parsed *p = parse(args, prefix, flags);

	if (p->rc != want)
		fail_msg("line %d: [%s] with prefix %s gave %d, want %d (error: %s)", line, args,
		    prefix, (int)p->rc, (int)want, p->error != NULL ? p->error : "none");
	if (want != SMTP_PARSE_OK && (p->error == NULL || p->error[0] == '\0'))
		fail_msg("line %d: [%s] failed without a reason", line, args);
	return p;
}

/* ---- smtp_parse_verb ---- */

static void
test_verb(void **state)
{
	const char *args = NULL;
	static const char mail[] = "MAIL FROM:<a@b>";
	static const char quit[] = "QUIT";
	static const char noop[] = "NOOP ";
	static const char twospace[] = "RCPT  TO:<a@b>";
	static const char empty[] = "";
	static const char lead[] = " X";

	assert_int_equal(smtp_parse_verb(mail, &args), 4);
	assert_ptr_equal(args, mail + 5);
	assert_string_equal(args, "FROM:<a@b>");

	assert_int_equal(smtp_parse_verb(quit, &args), 4);
	assert_ptr_equal(args, quit + 4);
	assert_string_equal(args, "");

	assert_int_equal(smtp_parse_verb(noop, &args), 4);
	assert_ptr_equal(args, noop + 5);
	assert_string_equal(args, "");

	/* only one space is skipped: the second is the arguments' problem */
	assert_int_equal(smtp_parse_verb(twospace, &args), 4);
	assert_string_equal(args, " TO:<a@b>");

	assert_int_equal(smtp_parse_verb(empty, &args), 0);
	assert_ptr_equal(args, empty);

	assert_int_equal(smtp_parse_verb(lead, &args), 0);
	assert_string_equal(args, "X");

	/* a tab is not a separator (RFC 5321 uses SP) */
	assert_int_equal(smtp_parse_verb("EHLO\tx", &args), 6);
	assert_string_equal(args, "");
}

/* ---- MAIL FROM / RCPT TO ---- */

static void
test_from_with_params(void **state)
{
	struct parsed *p = EXPECT_RC("FROM:<a@b.example> SIZE=100 BODY=8BITMIME", "FROM:", 0,
	    SMTP_PARSE_OK);

	assert_false(p->pa.addr.null);
	assert_string_equal(p->pa.addr.local, "a");
	assert_string_equal(p->pa.addr.domain, "b.example");
	assert_int_equal(p->pa.nparams, 2);
	assert_string_equal(p->pa.params[0].keyword, "SIZE");
	assert_string_equal(p->pa.params[0].value, "100");
	assert_string_equal(p->pa.params[1].keyword, "BODY");
	assert_string_equal(p->pa.params[1].value, "8BITMIME");
	/* keywords and values point into the caller's line */
	assert_true(p->pa.params[0].keyword > p->line &&
	    p->pa.params[0].keyword < p->line + sizeof(p->line));

	const struct smtp_param *sz = smtp_param_find(&p->pa, "size");
	assert_ptr_equal(sz, &p->pa.params[0]);
	assert_ptr_equal(smtp_param_find(&p->pa, "SIZE"), &p->pa.params[0]);
	assert_ptr_equal(smtp_param_find(&p->pa, "Body"), &p->pa.params[1]);
	assert_null(smtp_param_find(&p->pa, "AUTH"));
	assert_null(smtp_param_find(&p->pa, "SIZ"));
	assert_null(smtp_param_find(&p->pa, "SIZE=100"));
}

static void
test_param_without_value(void **state)
{
	struct parsed *p = EXPECT_RC("FROM:<a@b> SMTPUTF8 X-Vendor-Flag=on", "FROM:", 0,
	    SMTP_PARSE_OK);

	assert_int_equal(p->pa.nparams, 2);
	assert_string_equal(p->pa.params[0].keyword, "SMTPUTF8");
	assert_null(p->pa.params[0].value);
	assert_string_equal(p->pa.params[1].keyword, "X-Vendor-Flag");
	assert_string_equal(p->pa.params[1].value, "on");
	assert_non_null(smtp_param_find(&p->pa, "smtputf8"));
	assert_null(smtp_param_find(&p->pa, "smtputf8")->value);

	/* every printable value octet except '=' (esmtp-value = 1*(%d33-60 / %d62-126)) */
	p = EXPECT_RC("FROM:<a@b> ENVID=!\"#$%&'()*+,-./0-9:;<>?@[\\]^_`{|}~", "FROM:", 0,
	    SMTP_PARSE_OK);
	assert_string_equal(p->pa.params[0].value, "!\"#$%&'()*+,-./0-9:;<>?@[\\]^_`{|}~");
}

static void
test_prefix_case_and_space(void **state)
{
	struct parsed *p;

	p = EXPECT_RC("from:<a@b>", "FROM:", 0, SMTP_PARSE_OK);
	assert_string_equal(p->pa.addr.local, "a");
	p = EXPECT_RC("FrOm:<a@b>", "FROM:", 0, SMTP_PARSE_OK);
	assert_int_equal(p->pa.nparams, 0);
	p = EXPECT_RC("to:<c@d>", "TO:", 0, SMTP_PARSE_OK);
	assert_string_equal(p->pa.addr.domain, "d");

	/* "MAIL FROM: <a@b>" is common in the wild and accepted */
	p = EXPECT_RC("FROM: <a@b>", "FROM:", 0, SMTP_PARSE_OK);
	assert_string_equal(p->pa.addr.local, "a");
	p = EXPECT_RC("FROM:   <a@b> SIZE=1", "FROM:", 0, SMTP_PARSE_OK);
	assert_int_equal(p->pa.nparams, 1);

	/* trailing and repeated spaces between parameters */
	p = EXPECT_RC("FROM:<a@b>   ", "FROM:", 0, SMTP_PARSE_OK);
	assert_int_equal(p->pa.nparams, 0);
	p = EXPECT_RC("FROM:<a@b>  SIZE=1   BODY=7BIT  ", "FROM:", 0, SMTP_PARSE_OK);
	assert_int_equal(p->pa.nparams, 2);
	assert_string_equal(p->pa.params[0].value, "1");
	assert_string_equal(p->pa.params[1].keyword, "BODY");
	assert_string_equal(p->pa.params[1].value, "7BIT");
}

static void
test_null_and_postmaster(void **state)
{
	struct parsed *p;

	p = EXPECT_RC("FROM:<>", "FROM:", ADDR_ALLOW_NULL, SMTP_PARSE_OK);
	assert_true(p->pa.addr.null);
	p = EXPECT_RC("FROM:<> BODY=8BITMIME", "FROM:", ADDR_ALLOW_NULL, SMTP_PARSE_OK);
	assert_true(p->pa.addr.null);
	assert_int_equal(p->pa.nparams, 1);
	EXPECT_RC("FROM:<>", "FROM:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("TO:<>", "TO:", ADDR_ALLOW_POSTMASTER, SMTP_PARSE_ADDRESS);

	p = EXPECT_RC("TO:<Postmaster>", "TO:", ADDR_ALLOW_POSTMASTER, SMTP_PARSE_OK);
	assert_string_equal(p->pa.addr.local, "postmaster");
	assert_string_equal(p->pa.addr.domain, "");
	EXPECT_RC("TO:<Postmaster>", "TO:", 0, SMTP_PARSE_ADDRESS);
	p = EXPECT_RC("TO:<@relay.example:u@d.example>", "TO:", 0, SMTP_PARSE_OK);
	assert_string_equal(p->pa.addr.local, "u");
	assert_string_equal(p->pa.addr.domain, "d.example");
}

static void
test_syntax_errors(void **state)
{
	EXPECT_RC("", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM:", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM: ", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM <a@b>", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM:a@b", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FRO:<a@b>", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC(" FROM:<a@b>", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("TO:<a@b>", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM:<a@b>", "TO:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM:\t<a@b>", "FROM:", 0, SMTP_PARSE_SYNTAX);
	/* junk right after '>' */
	EXPECT_RC("FROM:<a@b>x", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM:<a@b>SIZE=100", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM:<a@b>>", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM:<a@b>\tSIZE=100", "FROM:", 0, SMTP_PARSE_SYNTAX);
	EXPECT_RC("FROM:<>x", "FROM:", ADDR_ALLOW_NULL, SMTP_PARSE_SYNTAX);
}

static void
test_address_errors(void **state)
{
	EXPECT_RC("FROM:<a@>", "FROM:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("FROM:<a b@c>", "FROM:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("FROM:<a@b x>", "FROM:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("FROM:<a@b", "FROM:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("FROM:<a@b SIZE=1", "FROM:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("FROM:<a..b@c>", "FROM:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("FROM:<a@[x:y]>", "FROM:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("TO:<\xc3\xa9@c>", "TO:", 0, SMTP_PARSE_ADDRESS);
	EXPECT_RC("TO:<>", "TO:", 0, SMTP_PARSE_ADDRESS);
}

static void
test_param_errors(void **state)
{
	EXPECT_RC("FROM:<a@b> SIZE=", "FROM:", 0, SMTP_PARSE_PARAM);          /* empty value */
	EXPECT_RC("FROM:<a@b> SIZE=1=2", "FROM:", 0, SMTP_PARSE_PARAM);       /* '=' in value */
	EXPECT_RC("FROM:<a@b> SIZE==", "FROM:", 0, SMTP_PARSE_PARAM);
	EXPECT_RC("FROM:<a@b> =100", "FROM:", 0, SMTP_PARSE_PARAM);           /* no keyword */
	EXPECT_RC("FROM:<a@b> =", "FROM:", 0, SMTP_PARSE_PARAM);
	EXPECT_RC("FROM:<a@b> -SIZE=1", "FROM:", 0, SMTP_PARSE_PARAM);        /* starts with '-' */
	EXPECT_RC("FROM:<a@b> SI_ZE=1", "FROM:", 0, SMTP_PARSE_PARAM);
	EXPECT_RC("FROM:<a@b> SI.ZE=1", "FROM:", 0, SMTP_PARSE_PARAM);
	EXPECT_RC("FROM:<a@b> SIZE:1", "FROM:", 0, SMTP_PARSE_PARAM);
	EXPECT_RC("FROM:<a@b> \xc3\xa9=1", "FROM:", 0, SMTP_PARSE_PARAM);
	EXPECT_RC("FROM:<a@b> X=\xc3\xa9", "FROM:", 0, SMTP_PARSE_PARAM);    /* 8-bit value */
	EXPECT_RC("FROM:<a@b> X=a\tb", "FROM:", 0, SMTP_PARSE_PARAM);         /* control */
	EXPECT_RC("FROM:<a@b> X=a\x7f", "FROM:", 0, SMTP_PARSE_PARAM);
	EXPECT_RC("FROM:<a@b> SIZE=1 BAD_ONE", "FROM:", 0, SMTP_PARSE_PARAM); /* later one bad */
}

static void
test_param_count(void **state)
{
	char line[1024];
	size_t o;
	struct parsed *p;

	o = (size_t)snprintf(line, sizeof(line), "FROM:<a@b>");
	for (int i = 0; i < SMTP_PARAMS_MAX; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, " P%d=v%d", i, i);
	p = EXPECT_RC(line, "FROM:", 0, SMTP_PARSE_OK);
	assert_int_equal(p->pa.nparams, SMTP_PARAMS_MAX);
	assert_string_equal(p->pa.params[SMTP_PARAMS_MAX - 1].keyword, "P15");
	assert_string_equal(p->pa.params[SMTP_PARAMS_MAX - 1].value, "v15");
	assert_ptr_equal(smtp_param_find(&p->pa, "p7"), &p->pa.params[7]);

	snprintf(line + o, sizeof(line) - o, " ONE-TOO-MANY");
	EXPECT_RC(line, "FROM:", 0, SMTP_PARSE_PARAM);
}

static void
test_param_find_empty(void **state)
{
	struct smtp_path_args pa;

	memset(&pa, 0, sizeof(pa));
	assert_null(smtp_param_find(&pa, "SIZE"));
	assert_null(smtp_param_find(&pa, ""));
}

/* The first of two equal keywords is the one found. */
static void
test_param_find_first(void **state)
{
	struct parsed *p = EXPECT_RC("TO:<a@b> NOTIFY=NEVER notify=SUCCESS", "TO:", 0,
	    SMTP_PARSE_OK);

	assert_int_equal(p->pa.nparams, 2);
	assert_string_equal(smtp_param_find(&p->pa, "NOTIFY")->value, "NEVER");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verb),
		cmocka_unit_test(test_from_with_params),
		cmocka_unit_test(test_param_without_value),
		cmocka_unit_test(test_prefix_case_and_space),
		cmocka_unit_test(test_null_and_postmaster),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_address_errors),
		cmocka_unit_test(test_param_errors),
		cmocka_unit_test(test_param_count),
		cmocka_unit_test(test_param_find_empty),
		cmocka_unit_test(test_param_find_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
