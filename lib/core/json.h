/* json.h — a small strict JSON parser (RFC 8259) into a read-only tree.
 *
 * Strict: one value with optional surrounding whitespace, no comments, no
 * trailing commas, no NaN/Infinity, strings in valid UTF-8 without raw control
 * characters, \u escapes with proper surrogate pairs, nesting depth <= 64,
 * duplicate keys in one object rejected.  Integers that fit in int64 are also
 * kept exactly (dv2_json_int), so 64-bit offsets survive.
 *
 * The whole tree lives in one document object: nodes in one array, decoded
 * strings in one buffer; dv2_json_free releases everything.  Errors name the
 * byte offset ("json: offset 17: expected ':'"). */
#ifndef DV2_JSON_H
#define DV2_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/dv2.h"

enum { DV2_JSON_NULL, DV2_JSON_FALSE, DV2_JSON_TRUE, DV2_JSON_NUMBER, DV2_JSON_STRING,
       DV2_JSON_ARRAY, DV2_JSON_OBJECT };

typedef struct dv2_json_doc dv2_json_doc;
typedef struct dv2_json dv2_json; /* a node; valid while its document lives */

/* Parses text[0..n) (need not be NUL-terminated).  max_nodes bounds the number
 * of values (0 = n/2+16, always enough); past it DV2_ENOMEM. */
int dv2_json_parse(dv2_json_doc **doc, const char *text, size_t n, size_t max_nodes, dv2_error *err);
void dv2_json_free(dv2_json_doc *doc);
const dv2_json *dv2_json_root(const dv2_json_doc *doc);

int dv2_json_type(const dv2_json *v);
size_t dv2_json_len(const dv2_json *v);              /* members/elements; string length in bytes */
const dv2_json *dv2_json_at(const dv2_json *v, size_t i);   /* i-th element or member value */
const char *dv2_json_key(const dv2_json *v, size_t i);      /* i-th member key (objects) */
const dv2_json *dv2_json_get(const dv2_json *obj, const char *key); /* NULL if absent */
const char *dv2_json_str(const dv2_json *v);         /* NUL-terminated (may hold \0 inside: use len) */
double dv2_json_num(const dv2_json *v);
/* 1 and *out set if v is a number written as an integer that fits int64. */
int dv2_json_int(const dv2_json *v, int64_t *out);

/* Writes s as a JSON string (quotes, and the escapes RFC 8259 requires). */
void dv2_json_write_string(FILE *f, const char *s);

#endif
