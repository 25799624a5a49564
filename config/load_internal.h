/* load_internal.h — what load.c (the document walk, interpolation, messages) and load_value.c
 * (one typed value) share and nothing else in config/ includes: the walk's context and the
 * helpers that turn a node into a checked string or a "FILE:LINE: KEY: ..." error. */
#ifndef SLUICE_LOAD_INTERNAL_H
#define SLUICE_LOAD_INTERNAL_H

#include <stddef.h>
#include <yaml.h>

#include "config/cfg_internal.h"

#define MAX_FILE_BYTES (4u << 20)
#define MAX_FIELDS 32
#define PATH_LEN 192
#define MAX_DEPTH 32

typedef struct {
    yaml_document_t *doc;
    const char *name;
    char *err;
    size_t errlen;
} ld_t;

/* Build a dotted key path (PATH_LEN) for messages; a too-long path is cut. */
__attribute__((format(printf, 2, 3))) void ld_pathf(char *out, const char *fmt, ...);
/* Every error goes through here; returns code so callers can `return ld_fail(...)`. */
__attribute__((format(printf, 5, 6))) int ld_fail(ld_t *ld, const yaml_node_t *n, const char *key,
                                                  int code, const char *fmt, ...);
int ld_oom(ld_t *ld, const yaml_node_t *n, const char *key);
yaml_node_t *ld_node(ld_t *ld, int index);
int ld_is_null(const yaml_node_t *n);
int ld_expect(ld_t *ld, const yaml_node_t *n, const char *key, yaml_node_type_t t);
/* The interpolated value of a scalar node (caller frees); *null tells YAML null apart. */
int ld_scalar(ld_t *ld, const yaml_node_t *n, const char *key, char **out, int *null);
/* A mapping key: a plain string, never interpolated; NULL with the error recorded. */
const char *ld_map_key(ld_t *ld, const yaml_node_t *k, const char *path);
/* "unknown key", with a "did you mean" when one known key is close. */
int ld_unknown_key(ld_t *ld, const yaml_node_t *k, const char *path, const char *key,
                   const char *const *known, size_t nknown);
/* The keys of mapping n into base per fields (load.c); lines[i] = line fields[i] was set. */
int ld_parse_fields(ld_t *ld, const yaml_node_t *n, const char *path, void *base,
                    const cfg_field_t *fields, size_t *lines);
/* One key's value into its field, interpolated before any conversion (load_value.c). */
int ld_parse_value(ld_t *ld, const yaml_node_t *n, const char *key, void *base,
                   const cfg_field_t *f);

#endif
