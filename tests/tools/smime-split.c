/*
 * smime-split -- split a multipart/signed S/MIME message into its signed
 * content and its detached signature (test helper, libc only).
 *
 *   smime-split [--canon] MSGFILE CONTENT_OUT SIG_OUT
 *
 * CONTENT_OUT receives the exact bytes of the first body part: everything
 * after the line ending of the first "--boundary" delimiter line, up to but
 * not including the line ending (CRLF or LF) that precedes the next
 * delimiter line.  No conversion is done unless --canon is given, in which
 * case every bare LF is written as CRLF (for messages captured with LF line
 * ends).
 *
 * SIG_OUT receives the second body part's body, base64-decoded (whitespace,
 * CR and LF are ignored).  If that part declares Content-Transfer-Encoding
 * binary or 8bit, its body is written unchanged instead.
 *
 * Exit status: 0 success, 2 parse failure (message on stderr), 1 I/O error.
 *
 * Build: gcc -Wall -Wextra -O2 -o smime-split smime-split.c
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *prog = "smime-split";

static void fail(int, const char *, const char *) __attribute__((noreturn));

static void
fail(int code, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	fprintf(stderr, fmt, arg ? arg : "");
#pragma GCC diagnostic pop
	fputc('\n', stderr);
	exit(code);
}

static char *
read_file(const char *path, size_t *lenp)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		fail(1, "cannot open %s", path);
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 131072;
			buf = realloc(buf, cap + 1);
			if (buf == NULL)
				fail(1, "out of memory%s", NULL);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
		fail(1, "read error on %s", path);
	if (f != stdin)
		fclose(f);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

static void
write_file(const char *path, const char *data, size_t len, int canon)
{
	FILE *f = fopen(path, "wb");
	size_t i, start = 0;

	if (f == NULL)
		fail(1, "cannot create %s", path);
	if (!canon) {
		if (len && fwrite(data, 1, len, f) != len)
			fail(1, "write error on %s", path);
	} else {
		for (i = 0; i < len; i++) {
			if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) {
				if (i > start &&
				    fwrite(data + start, 1, i - start, f) != i - start)
					fail(1, "write error on %s", path);
				if (fwrite("\r\n", 1, 2, f) != 2)
					fail(1, "write error on %s", path);
				start = i + 1;
			}
		}
		if (len > start &&
		    fwrite(data + start, 1, len - start, f) != len - start)
			fail(1, "write error on %s", path);
	}
	if (fclose(f) != 0)
		fail(1, "write error on %s", path);
}

/* Length of the line starting at p (excluding its line ending), and the
 * offset of the next line via *next. */
static size_t
line_len(const char *buf, size_t len, size_t p, size_t *next)
{
	const char *nl = memchr(buf + p, '\n', len - p);
	size_t e = nl ? (size_t)(nl - buf) : len;

	*next = nl ? e + 1 : len;
	if (e > p && buf[e - 1] == '\r')
		e--;
	return e - p;
}

/*
 * Header block [start, end) (end = offset of the empty line).  Find field
 * NAME (case-insensitive) and return its unfolded value (malloc'd) or NULL.
 * *body receives the offset of the body (after the empty line).
 */
static char *
find_header(const char *buf, size_t len, size_t start, const char *name,
    size_t *body)
{
	size_t p = start, next, ll, nlen = strlen(name);
	char *val = NULL;
	size_t vlen = 0;
	int in_field = 0;

	*body = len;
	while (p < len) {
		ll = line_len(buf, len, p, &next);
		if (ll == 0) {	/* empty line: end of header */
			*body = next;
			break;
		}
		if (buf[p] == ' ' || buf[p] == '\t') {
			if (in_field) {
				val = realloc(val, vlen + ll + 1);
				if (val == NULL)
					fail(1, "out of memory%s", NULL);
				memcpy(val + vlen, buf + p, ll);
				vlen += ll;
				val[vlen] = '\0';
			}
		} else {
			if (in_field)	/* first occurrence wins */
				in_field = -1;
			if (in_field == 0 && ll > nlen &&
			    strncasecmp(buf + p, name, nlen) == 0) {
				size_t q = p + nlen;
				while (q < p + ll && (buf[q] == ' ' || buf[q] == '\t'))
					q++;
				if (q < p + ll && buf[q] == ':') {
					q++;
					vlen = p + ll - q;
					val = malloc(vlen + 1);
					if (val == NULL)
						fail(1, "out of memory%s", NULL);
					memcpy(val, buf + q, vlen);
					val[vlen] = '\0';
					in_field = 1;
				}
			}
		}
		p = next;
	}
	return val;
}

/* Skip whitespace and RFC 822 comments. */
static const char *
skip_cfws(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (*s != '(')
			return s;
		{
			int depth = 0;
			do {
				if (*s == '\\' && s[1])
					s++;
				else if (*s == '(')
					depth++;
				else if (*s == ')')
					depth--;
				s++;
			} while (*s && depth > 0);
		}
	}
}

/*
 * Parse a Content-Type value.  Copies the lower-cased "type/subtype" into
 * mtype (size msz) and, if pname != NULL, the value of parameter pname into
 * *pval (malloc'd; NULL if absent).
 */
static void
parse_ctype(const char *v, char *mtype, size_t msz, const char *pname,
    char **pval)
{
	size_t i = 0;
	const char *s = skip_cfws(v);

	while (*s && *s != ';' && *s != ' ' && *s != '\t' && *s != '(' &&
	    i + 1 < msz)
		mtype[i++] = (char)tolower((unsigned char)*s++);
	mtype[i] = '\0';
	if (pval)
		*pval = NULL;
	while (*s && *s != ';')
		s++;
	while (*s == ';') {
		const char *n0, *n1;
		char *out;
		size_t olen = 0;

		s = skip_cfws(s + 1);
		n0 = s;
		while (*s && *s != '=' && *s != ';' && *s != ' ' && *s != '\t' &&
		    *s != '(')
			s++;
		n1 = s;
		s = skip_cfws(s);
		if (*s != '=') {
			while (*s && *s != ';')
				s++;
			continue;
		}
		s = skip_cfws(s + 1);
		out = malloc(strlen(s) + 1);
		if (out == NULL)
			fail(1, "out of memory%s", NULL);
		if (*s == '"') {
			s++;
			while (*s && *s != '"') {
				if (*s == '\\' && s[1])
					s++;
				out[olen++] = *s++;
			}
			if (*s == '"')
				s++;
		} else {
			while (*s && *s != ';' && *s != ' ' && *s != '\t' &&
			    *s != '(')
				out[olen++] = *s++;
		}
		out[olen] = '\0';
		if (pname && pval && *pval == NULL &&
		    (size_t)(n1 - n0) == strlen(pname) &&
		    strncasecmp(n0, pname, n1 - n0) == 0)
			*pval = out;
		else
			free(out);
		s = skip_cfws(s);
		while (*s && *s != ';')
			s++;
	}
}

/*
 * Is the line at p a delimiter for boundary b?  Returns 0 if not, 1 for a
 * delimiter, 2 for the close delimiter.  Trailing linear white space
 * (transport padding) is allowed.
 */
static int
is_delim(const char *buf, size_t len, size_t p, const char *b, size_t blen)
{
	size_t next, ll = line_len(buf, len, p, &next), i;
	int ret = 1;

	if (ll < blen + 2 || buf[p] != '-' || buf[p + 1] != '-' ||
	    memcmp(buf + p + 2, b, blen) != 0)
		return 0;
	i = p + 2 + blen;
	if (i + 1 < p + ll + 1 && ll >= blen + 4 && buf[i] == '-' &&
	    buf[i + 1] == '-') {
		ret = 2;
		i += 2;
	}
	for (; i < p + ll; i++)
		if (buf[i] != ' ' && buf[i] != '\t')
			return 0;
	return ret;
}

/* Offset of the next delimiter line at or after p, or len if none. */
static size_t
find_delim(const char *buf, size_t len, size_t p, const char *b, size_t blen,
    int *kind)
{
	size_t next;

	*kind = 0;
	while (p < len) {
		if ((*kind = is_delim(buf, len, p, b, blen)) != 0)
			return p;
		(void)line_len(buf, len, p, &next);
		p = next;
	}
	return len;
}

/* Start offset of the line ending that precedes offset d (d > start). */
static size_t
strip_eol_before(const char *buf, size_t start, size_t d)
{
	if (d > start && buf[d - 1] == '\n') {
		d--;
		if (d > start && buf[d - 1] == '\r')
			d--;
	}
	return d;
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode base64 in place-ish into out (size >= len); returns length or -1. */
static long
b64decode(const char *in, size_t len, unsigned char *out)
{
	unsigned long acc = 0;
	int bits = 0, pad = 0;
	long o = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)in[i], v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad)	/* data after padding */
			return -1;
		if ((v = b64val(c)) < 0)
			return -1;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)((acc >> bits) & 0xff);
		}
	}
	if (pad > 2 || bits >= 6)
		return -1;
	return o;
}

int
main(int argc, char **argv)
{
	int canon = 0, kind;
	const char *msgfile, *cout, *sout;
	char *buf, *ct, *boundary, *pct, *cte;
	char mtype[128];
	size_t len, body, blen, d1, c0, d2, s0, d3, pbody, send;

	if (argc > 1 && strcmp(argv[1], "--canon") == 0) {
		canon = 1;
		argv++;
		argc--;
	}
	if (argc != 4) {
		fprintf(stderr,
		    "usage: %s [--canon] MSGFILE CONTENT_OUT SIG_OUT\n", prog);
		return 2;
	}
	msgfile = argv[1];
	cout = argv[2];
	sout = argv[3];

	buf = read_file(msgfile, &len);

	ct = find_header(buf, len, 0, "Content-Type", &body);
	if (ct == NULL)
		fail(2, "%s: no Content-Type header", msgfile);
	parse_ctype(ct, mtype, sizeof mtype, "boundary", &boundary);
	if (strcmp(mtype, "multipart/signed") != 0)
		fail(2, "not multipart/signed (Content-Type: %s)", mtype);
	if (boundary == NULL || *boundary == '\0')
		fail(2, "%s: multipart/signed without boundary parameter",
		    msgfile);
	blen = strlen(boundary);

	/* first delimiter (anything before it is the preamble) */
	d1 = find_delim(buf, len, body, boundary, blen, &kind);
	if (d1 >= len || kind != 1)
		fail(2, "%s: first body part not found", msgfile);
	(void)line_len(buf, len, d1, &c0);

	/* second delimiter ends the signed content */
	d2 = find_delim(buf, len, c0, boundary, blen, &kind);
	if (d2 >= len || kind != 1)
		fail(2, "%s: signature part not found", msgfile);

	/* third delimiter (normally the close delimiter) ends the signature */
	(void)line_len(buf, len, d2, &s0);
	d3 = find_delim(buf, len, s0, boundary, blen, &kind);
	if (d3 >= len)
		fail(2, "%s: missing close delimiter after signature part",
		    msgfile);

	/* signature part: header, empty line, body */
	pct = find_header(buf, d3, s0, "Content-Type", &pbody);
	if (pct == NULL)
		fail(2, "%s: signature part has no Content-Type", msgfile);
	parse_ctype(pct, mtype, sizeof mtype, NULL, NULL);
	if (strcmp(mtype, "application/pkcs7-signature") != 0 &&
	    strcmp(mtype, "application/x-pkcs7-signature") != 0)
		fail(2, "second part is not a PKCS#7 signature (%s)", mtype);
	cte = find_header(buf, d3, s0, "Content-Transfer-Encoding", &pbody);
	send = strip_eol_before(buf, pbody, d3);
	if (pbody > send)
		fail(2, "%s: signature part has no body", msgfile);

	/* content */
	write_file(cout, buf + c0, strip_eol_before(buf, c0, d2) - c0, canon);

	/* signature */
	{
		const char *t = cte ? skip_cfws(cte) : "base64";
		size_t tl = 0;

		while (t[tl] && t[tl] != ' ' && t[tl] != '\t' && t[tl] != ';'
		    && t[tl] != '(')
			tl++;
		if ((tl == 6 && strncasecmp(t, "binary", 6) == 0) ||
		    (tl == 4 && strncasecmp(t, "8bit", 4) == 0)) {
			write_file(sout, buf + pbody, send - pbody, 0);
		} else {
			unsigned char *der = malloc(send - pbody + 1);
			long n;

			if (der == NULL)
				fail(1, "out of memory%s", NULL);
			n = b64decode(buf + pbody, send - pbody, der);
			if (n < 0)
				fail(2, "%s: invalid base64 in signature part",
				    msgfile);
			if (n == 0)
				fail(2, "%s: empty signature part", msgfile);
			write_file(sout, (const char *)der, (size_t)n, 0);
			free(der);
		}
	}
	free(buf);
	free(ct);
	free(boundary);
	free(pct);
	free(cte);
	return 0;
}
