/* json.h — JSON syntax scanning shared by the proxy (row validation) and the sinks (format
 * conversion): one scanner, bounded and allocation-free. */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stddef.h>

#define JSON_MAX_DEPTH 128

/* Validate one JSON value at in[*pos..len) (strict RFC 8259 syntax, depth-bounded) and
 * advance *pos past it. *has_nl is set when whitespace inside it held CR or LF. 0 or
 * -EINVAL with err filled. */
int json_skip_value(const char *in, size_t len, size_t *pos, int *has_nl, char *err,
                    size_t errlen);

/* in[i] == '"': index after the closing quote of a valid string, 0 when invalid. */
size_t json_scan_string(const char *in, size_t len, size_t i);

#endif
