/* buf.h — a growable byte buffer for building responses and request bodies. */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stddef.h>

typedef struct {
    char *data;  /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    int oom;     /* set once an allocation failed; later appends are no-ops */
} buf_t;

int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *p, size_t n);
int buf_puts(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The one JSON string escaper: c as it stands inside a JSON string (" \\ \n and the other
 * C0 controls as \u00XX; every other byte as itself) written to out; returns 1, 2 or 6. */
size_t json_escape_byte(unsigned char c, char out[6]);
/* Length (1-4) of the well-formed UTF-8 sequence that starts s[0..n) and its code point in
 * *cp; 0 when there is none (stray or overlong bytes, surrogates, past U+10FFFF, cut off). */
size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp);
/* Append s as a JSON string body (no quotes), escaping what JSON requires. */
int buf_json_escape(buf_t *b, const char *s);
void buf_free(buf_t *b);

#endif
