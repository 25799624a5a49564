/* stmt.c — recognises `INSERT INTO [db.]table [(cols)] [SETTINGS k=v, ...] FORMAT fmt` (fmt one
 * of formats.c's) and `... VALUES (...)`
 * the way ClickHouse's parser reads it, well enough to route: a match is logged by sluice,
 * anything else is passed through to ClickHouse unchanged. Bounded: every name, value and
 * the total output fit in proxy_stmt_t's fixed buffer. */
#include <string.h>
#include <strings.h>

#include "proxy/proxy_internal.h"

typedef struct {
    const char *s;
    size_t len, pos;
    proxy_stmt_t *st;
    int incomplete; /* set when the text ended where more was expected */
} lex_t;

static int is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_ident_char(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Skip whitespace and comments. Returns -1 on an unterminated block comment. */
static int skip_ws(lex_t *l)
{
    while (l->pos < l->len) {
        unsigned char c = (unsigned char)l->s[l->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            l->pos++;
        } else if (c == '-' && l->pos + 1 < l->len && l->s[l->pos + 1] == '-') {
            while (l->pos < l->len && l->s[l->pos] != '\n')
                l->pos++;
        } else if (c == '#' && l->pos + 1 < l->len &&
                   (l->s[l->pos + 1] == ' ' || l->s[l->pos + 1] == '!')) {
            while (l->pos < l->len && l->s[l->pos] != '\n')
                l->pos++;
        } else if (c == '/' && l->pos + 1 < l->len && l->s[l->pos + 1] == '*') {
            size_t i = l->pos + 2;
            while (i + 1 < l->len && !(l->s[i] == '*' && l->s[i + 1] == '/'))
                i++;
            if (i + 1 >= l->len) {
                l->incomplete = 1;
                return -1;
            }
            l->pos = i + 2;
        } else {
            break;
        }
    }
    return 0;
}

/* Match keyword kw (upper case) at the current position, followed by a non-identifier char. */
static int keyword(lex_t *l, const char *kw)
{
    if (skip_ws(l)) return 0;
    size_t n = strlen(kw);
    if (l->len - l->pos < n) {
        /* A prefix of the keyword at the very end: the text may continue. */
        size_t avail = l->len - l->pos, i;
        for (i = 0; i < avail && lower(l->s[l->pos + i]) == lower(kw[i]); i++) {
        }
        if (avail > 0 && i == avail) l->incomplete = 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)l->s[l->pos + i]) != lower(kw[i])) return 0;
    if (l->pos + n < l->len && is_ident_char((unsigned char)l->s[l->pos + n])) return 0;
    l->pos += n;
    return 1;
}

static int at_end(lex_t *l)
{
    skip_ws(l);
    return l->pos >= l->len;
}

static int peek(lex_t *l)
{
    if (skip_ws(l) || l->pos >= l->len) return -1;
    return (unsigned char)l->s[l->pos];
}

static int put(proxy_stmt_t *st, const char *p, size_t n)
{
    if (st->buf_len + n + 1 > sizeof st->buf) return -1;
    memcpy(st->buf + st->buf_len, p, n);
    st->buf_len += n;
    st->buf[st->buf_len] = '\0';
    return 0;
}

static int putc1(proxy_stmt_t *st, char c)
{
    return put(st, &c, 1);
}

/* A token quoted with q (` " or '): append its text, unescaped (\n \t \r, \x = x, and a
 * doubled quote), to st->buf, and move past it. A NUL byte, raw or escaped, is refused: it
 * would cut the C string short. -1 on error or an unterminated token (then incomplete). */
static int quoted(lex_t *l, unsigned char q)
{
    size_t i = l->pos + 1;
    for (;;) {
        if (i >= l->len) {
            l->incomplete = 1;
            return -1;
        }
        unsigned char ch = (unsigned char)l->s[i];
        if (ch == '\\') {
            if (i + 1 >= l->len) {
                l->incomplete = 1;
                return -1;
            }
            char e = l->s[i + 1];
            char out = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == '0' ? '\0' : e;
            if (out == '\0' || putc1(l->st, out)) return -1;
            i += 2;
        } else if (ch == q) {
            if (i + 1 < l->len && (unsigned char)l->s[i + 1] == q) {
                if (putc1(l->st, (char)q)) return -1;
                i += 2;
            } else {
                l->pos = i + 1;
                return 0;
            }
        } else {
            if (ch == '\0' || putc1(l->st, (char)ch)) return -1;
            i++;
        }
    }
}

/* Read an identifier (bare, `quoted` or "quoted", with \x and doubled-quote escapes) and
 * append its unescaped text to st->buf. 1 on success, 0 when none is there, -1 on error. */
static int ident(lex_t *l, size_t max)
{
    if (skip_ws(l)) return -1;
    if (l->pos >= l->len) {
        l->incomplete = 1;
        return 0;
    }
    size_t start = l->st->buf_len;
    unsigned char c = (unsigned char)l->s[l->pos];
    if (c == '`' || c == '"') {
        if (quoted(l, c)) return -1;
        if (l->st->buf_len == start) return -1; /* `` is not a name */
    } else if (is_ident_start(c)) {
        size_t i = l->pos;
        while (i < l->len && is_ident_char((unsigned char)l->s[i]))
            i++;
        if (put(l->st, l->s + l->pos, i - l->pos)) return -1;
        l->pos = i;
    } else {
        return 0;
    }
    if (l->st->buf_len - start > max) return -1;
    l->st->buf_len++; /* keep the terminating NUL: the next string starts after it */
    return 1;
}

static int fail(lex_t *l, const char *msg)
{
    if (!l->st->err[0]) {
        size_t n = strlen(msg);
        if (n >= sizeof l->st->err) n = sizeof l->st->err - 1;
        memcpy(l->st->err, msg, n);
        l->st->err[n] = '\0';
    }
    return l->incomplete ? PROXY_STMT_INCOMPLETE : PROXY_STMT_ESYNTAX;
}

static int bare_safe(const char *s)
{
    if (!is_ident_start((unsigned char)s[0])) return 0;
    for (; *s; s++)
        if (!is_ident_char((unsigned char)*s) && *s != '.') return 0;
    return 1;
}

/* Append name to the normalised column list, backtick-quoted when it is not bare-safe. */
static int put_column(proxy_stmt_t *st, const char *name)
{
    if (bare_safe(name)) return put(st, name, strlen(name));
    if (putc1(st, '`')) return -1;
    for (const char *p = name; *p; p++) {
        if ((*p == '`' || *p == '\\') && putc1(st, '\\')) return -1;
        if (putc1(st, *p)) return -1;
    }
    return putc1(st, '`');
}

/* Column list after '(' : names (possibly dotted, for Nested) separated by commas. The raw
 * names go into a scratch area at the end of buf, the normalised list is built after. */
static int columns(lex_t *l)
{
    proxy_stmt_t *st = l->st;
    char names[PROXY_STMT_BUF / 2];
    size_t nlen = 0;
    for (;;) {
        /* name := ident ('.' ident)* */
        size_t mark = st->buf_len;
        for (;;) {
            int r = ident(l, PROXY_NAME_MAX);
            if (r <= 0) return r == 0 && peek(l) == '*' ? 0 : -1;
            size_t n = strlen(st->buf + mark);
            if (nlen + n + 2 > sizeof names) return -1;
            memcpy(names + nlen, st->buf + mark, n);
            nlen += n;
            st->buf_len = mark;
            st->buf[mark] = '\0';
            if (peek(l) == '.') {
                l->pos++;
                names[nlen++] = '.';
                continue;
            }
            break;
        }
        names[nlen++] = '\0';
        int c = peek(l);
        if (c == ',') {
            l->pos++;
            continue;
        }
        if (c == ')') {
            l->pos++;
            break;
        }
        if (c < 0) l->incomplete = 1;
        return -1;
    }
    st->columns = st->buf + st->buf_len;
    for (size_t i = 0; i < nlen; i += strlen(names + i) + 1) {
        if (i && put(st, ", ", 2)) return -1;
        if (put_column(st, names + i)) return -1;
    }
    st->buf_len++;
    return 1;
}

/* A setting value: number, 'string', identifier (true/false/...), or NULL. Appends text. */
static int setting_value(lex_t *l)
{
    proxy_stmt_t *st = l->st;
    int c = peek(l);
    if (c < 0) {
        l->incomplete = 1;
        return -1;
    }
    if (c == '\'') {
        if (quoted(l, '\'')) return -1;
        st->buf_len++;
        return 0;
    }
    size_t i = l->pos;
    if (c == '-' || c == '+') i++;
    if (i < l->len && ((l->s[i] >= '0' && l->s[i] <= '9') || l->s[i] == '.')) {
        while (i < l->len &&
               (is_ident_char((unsigned char)l->s[i]) || l->s[i] == '.' ||
                ((l->s[i] == '-' || l->s[i] == '+') && (l->s[i - 1] == 'e' || l->s[i - 1] == 'E'))))
            i++;
        if (put(st, l->s + l->pos, i - l->pos)) return -1;
        l->pos = i;
        st->buf_len++;
        return 0;
    }
    if (is_ident_start((unsigned char)c)) {
        while (i < l->len && is_ident_char((unsigned char)l->s[i]))
            i++;
        if (put(st, l->s + l->pos, i - l->pos)) return -1;
        l->pos = i;
        st->buf_len++;
        return 0;
    }
    return -1;
}

static int settings(lex_t *l)
{
    proxy_stmt_t *st = l->st;
    for (;;) {
        const char *key = st->buf + st->buf_len;
        int r = ident(l, PROXY_NAME_MAX);
        if (r <= 0) return -1;
        if (peek(l) != '=') {
            if (peek(l) < 0) l->incomplete = 1;
            return -1;
        }
        l->pos++;
        const char *val = st->buf + st->buf_len;
        if (setting_value(l)) return -1;
        /* A key given twice: the later one wins, as in ClickHouse. */
        size_t i;
        for (i = 0; i < st->n_settings; i++)
            if (strcmp(st->settings[i].key, key) == 0) break;
        if (i == st->n_settings) {
            if (st->n_settings == PROXY_STMT_MAX_SETTINGS) return -1;
            st->n_settings++;
        }
        st->settings[i].key = key;
        st->settings[i].value = val;
        if (peek(l) == ',') {
            l->pos++;
            continue;
        }
        return 0;
    }
}

int proxy_stmt_parse(const char *text, size_t len, proxy_stmt_t *st)
{
    lex_t l = {text, len, 0, st, 0};
    st->db = st->table = st->columns = NULL;
    st->n_settings = 0;
    st->data_off = 0;
    st->format = NULL;
    st->unbuffered = NULL;
    st->err[0] = '\0';
    st->buf_len = 0;
    st->buf[0] = '\0';

    if (!keyword(&l, "INSERT")) return l.incomplete ? PROXY_STMT_INCOMPLETE : PROXY_STMT_OTHER;
    if (!keyword(&l, "INTO")) {
        if (l.incomplete || at_end(&l)) {
            l.incomplete = 1;
            return fail(&l, "expected INTO after INSERT");
        }
        return PROXY_STMT_OTHER;
    }
    if (keyword(&l, "FUNCTION")) return PROXY_STMT_OTHER;
    size_t save = l.pos;
    if (keyword(&l, "TABLE")) {
        /* "INSERT INTO TABLE t" (TABLE is optional), unless the table is named TABLE. */
        int c = peek(&l);
        if (c == '(' || c < 0 || keyword(&l, "FORMAT") || keyword(&l, "SETTINGS") ||
            keyword(&l, "VALUES") || keyword(&l, "SELECT"))
            l.pos = save;
        if (keyword(&l, "FUNCTION")) return PROXY_STMT_OTHER;
    }
    /* [db.]table */
    const char *first = st->buf + st->buf_len;
    int r = ident(&l, PROXY_NAME_MAX);
    if (r <= 0) return fail(&l, "missing table name after INSERT INTO");
    if (peek(&l) == '.') {
        l.pos++;
        const char *second = st->buf + st->buf_len;
        r = ident(&l, PROXY_NAME_MAX);
        if (r <= 0) return fail(&l, "missing table name after database name");
        st->db = first;
        st->table = second;
    } else {
        st->table = first;
        /* "INSERT INTO FORMAT JSONEachRow": FORMAT is the keyword, the name is missing. */
        int c = peek(&l);
        if (strcasecmp(first, "FORMAT") == 0 && c >= 0 && is_ident_start((unsigned char)c))
            return fail(&l, "missing table name after INSERT INTO");
    }
    if (peek(&l) == '(') {
        l.pos++;
        r = columns(&l);
        if (r == 0) return PROXY_STMT_OTHER; /* (*), (* EXCEPT ...) and the like */
        if (r < 0) return fail(&l, "bad column list");
    }
    if (keyword(&l, "SETTINGS")) {
        if (settings(&l)) return fail(&l, "bad SETTINGS clause");
    }
    if (keyword(&l, "FORMAT")) {
        size_t mark = st->buf_len;
        r = ident(&l, 64);
        if (r <= 0) return fail(&l, "missing format name after FORMAT");
        st->format = proxy_format_find(st->buf + mark);
        if (!st->format) {
            st->unbuffered = "format not buffered";
            return PROXY_STMT_OTHER;
        }
        /* As ClickHouse's ParserInsertQuery: data starts after the first newline if there is
         * one, else after the whitespace (matters for CSV/TSV, where a blank line is a row). */
        size_t d = l.pos;
        while (d < len && (text[d] == ' ' || text[d] == '\t' || text[d] == '\f'))
            d++;
        if (d < len && text[d] == '\r') d++;
        if (d < len && text[d] == '\n') d++;
        st->data_off = d;
        return PROXY_STMT_INSERT;
    }
    if (keyword(&l, "VALUES")) {
        st->format = proxy_format_find("Values");
        st->data_off = l.pos;
        return PROXY_STMT_INSERT;
    }
    if (l.incomplete || at_end(&l)) {
        l.incomplete = 1;
        return fail(&l, "expected FORMAT or VALUES");
    }
    /* SELECT, WITH, (SELECT ...), anything else: ClickHouse's business. */
    st->unbuffered = "INSERT ... SELECT";
    return PROXY_STMT_OTHER;
}
