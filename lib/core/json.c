/* json.c — strict recursive-descent JSON parser building a compact tree.
 *
 * Nodes live in one array (doc->nodes); the children of a container are a
 * contiguous run of node indices in doc->kids, appended when the container
 * closes (children are collected on a stack while it is open).  Decoded
 * strings and keys go into one byte buffer, each NUL-terminated; its size is
 * bounded by twice the input (decoding never grows a string). */
#include "core/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

struct dv2_json {
    int type;
    int is_int;
    int64_t ival;
    double num;
    size_t str_off, str_len; /* string value */
    size_t key_off, key_len; /* member key when the parent is an object */
    size_t kids_off, n;      /* containers: children in doc->kids[kids_off..+n) */
    const dv2_json_doc *doc;
};

struct dv2_json_doc {
    dv2_json *nodes;
    size_t nnodes, max_nodes;
    size_t *kids, nkids;
    size_t *stack, nstack; /* children of open containers */
    char *buf;
    size_t nbuf;
};

typedef struct {
    const char *s;
    size_t n, i;
    dv2_json_doc *d;
    dv2_error *err;
} parser;

static int fail(parser *p, const char *what) {
    return dv2_error_set(p->err, DV2_ECORRUPT, "json: offset %zu: %s", p->i, what);
}

static void skip_ws(parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

static long new_node(parser *p, int type) {
    if (p->d->nnodes >= p->d->max_nodes) {
        dv2_error_set(p->err, DV2_ENOMEM, "json: offset %zu: more than %zu values", p->i,
                      p->d->max_nodes);
        return -1;
    }
    dv2_json *v = &p->d->nodes[p->d->nnodes];
    memset(v, 0, sizeof *v);
    v->type = type;
    v->doc = p->d;
    return (long)p->d->nnodes++;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_u4(parser *p, unsigned *out) {
    if (p->n - p->i < 4) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval((unsigned char)p->s[p->i + k]);
        if (h < 0) return fail(p, "bad hex digit in \\u escape");
        v = v * 16 + (unsigned)h;
    }
    p->i += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* Length of a valid UTF-8 sequence at s[0..n) (1..4) or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Parses a string at p->i (on the opening quote) into the buffer. */
static int parse_string(parser *p, size_t *off, size_t *len) {
    p->i++; /* opening quote */
    size_t start = p->d->nbuf;
    char *o = p->d->buf;
    for (;;) {
        if (p->i >= p->n) return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) return fail(p, "control character in string");
        if (c == '\\') {
            p->i++;
            if (p->i >= p->n) return fail(p, "unterminated escape");
            char e = p->s[p->i++];
            switch (e) {
            case '"': o[p->d->nbuf++] = '"'; break;
            case '\\': o[p->d->nbuf++] = '\\'; break;
            case '/': o[p->d->nbuf++] = '/'; break;
            case 'b': o[p->d->nbuf++] = '\b'; break;
            case 'f': o[p->d->nbuf++] = '\f'; break;
            case 'n': o[p->d->nbuf++] = '\n'; break;
            case 'r': o[p->d->nbuf++] = '\r'; break;
            case 't': o[p->d->nbuf++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (read_u4(p, &cp) < 0) return DV2_ECORRUPT;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, "lone low surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        return fail(p, "high surrogate without low surrogate");
                    p->i += 2;
                    if (read_u4(p, &lo) < 0) return DV2_ECORRUPT;
                    if (lo < 0xDC00 || lo > 0xDFFF) return fail(p, "bad low surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                /* a \u escape is 6 (or 12) input bytes and yields at most 3 (4) */
                p->d->nbuf += put_utf8(o + p->d->nbuf, cp);
                break;
            }
            default: p->i--; return fail(p, "bad escape");
            }
            continue;
        }
        size_t l = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
        if (!l) return fail(p, "invalid UTF-8 in string");
        memcpy(o + p->d->nbuf, p->s + p->i, l);
        p->d->nbuf += l;
        p->i += l;
    }
    *off = start;
    *len = p->d->nbuf - start;
    o[p->d->nbuf++] = '\0';
    return 0;
}

static int parse_number(parser *p, dv2_json *v) {
    size_t st = p->i;
    int is_int = 1;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i >= p->n) return fail(p, "truncated number");
    if (p->s[p->i] == '0') p->i++;
    else if (p->s[p->i] >= '1' && p->s[p->i] <= '9')
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    else return fail(p, "bad number");
    if (p->i < p->n && p->s[p->i] == '.') {
        is_int = 0;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad fraction");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        is_int = 0;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad exponent");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    char tmp[512];
    size_t len = p->i - st;
    if (len >= sizeof tmp) { p->i = st; return fail(p, "number too long"); }
    memcpy(tmp, p->s + st, len);
    tmp[len] = '\0';
    v->num = strtod(tmp, NULL);
    if (!isfinite(v->num)) { p->i = st; return fail(p, "number out of range"); }
    if (is_int) {
        errno = 0;
        long long ll = strtoll(tmp, NULL, 10);
        if (errno == 0) { v->is_int = 1; v->ival = ll; }
    }
    return 0;
}

static int lit(parser *p, const char *w) {
    size_t l = strlen(w);
    if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0) return fail(p, "invalid literal");
    p->i += l;
    return 0;
}

static int push_kid(parser *p, size_t idx) {
    p->d->stack[p->d->nstack++] = idx; /* stack has max_nodes slots */
    return 0;
}

static int cmp_keys(const void *a, const void *b, void *ctx) {
    const dv2_json_doc *d = ctx;
    const dv2_json *x = &d->nodes[*(const size_t *)a], *y = &d->nodes[*(const size_t *)b];
    size_t l = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(d->buf + x->key_off, d->buf + y->key_off, l);
    if (c) return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Moves the children pushed since `base` into kids; checks duplicate keys. */
static int close_container(parser *p, size_t idx, size_t base) {
    dv2_json_doc *d = p->d;
    size_t n = d->nstack - base;
    dv2_json *v = &d->nodes[idx];
    v->kids_off = d->nkids;
    v->n = n;
    memcpy(d->kids + d->nkids, d->stack + base, n * sizeof(size_t));
    d->nkids += n;
    d->nstack = base;
    if (v->type == DV2_JSON_OBJECT && n > 1) {
        size_t *tmp = malloc(n * sizeof *tmp);
        if (!tmp) return dv2_error_set(p->err, DV2_ENOMEM, "json: out of memory");
        memcpy(tmp, d->kids + v->kids_off, n * sizeof *tmp);
        qsort_r(tmp, n, sizeof *tmp, cmp_keys, d);
        for (size_t k = 1; k < n; k++)
            if (cmp_keys(&tmp[k - 1], &tmp[k], d) == 0) {
                dv2_error_set(p->err, DV2_ECORRUPT, "json: offset %zu: duplicate key \"%.200s\" in object", p->i,
                              d->buf + d->nodes[tmp[k]].key_off);
                free(tmp);
                return DV2_ECORRUPT;
            }
        free(tmp);
    }
    return 0;
}

static int parse_value(parser *p, int depth, long *out);

static int parse_container(parser *p, int depth, int type, long *out) {
    long idx = new_node(p, type);
    if (idx < 0) return DV2_ENOMEM;
    size_t base = p->d->nstack;
    char close = type == DV2_JSON_OBJECT ? '}' : ']';
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        *out = idx;
        return close_container(p, (size_t)idx, base);
    }
    for (;;) {
        size_t koff = 0, klen = 0;
        skip_ws(p);
        if (type == DV2_JSON_OBJECT) {
            if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected string key");
            int rc = parse_string(p, &koff, &klen);
            if (rc < 0) return rc;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return fail(p, "expected ':'");
            p->i++;
        }
        long kid;
        int rc = parse_value(p, depth + 1, &kid);
        if (rc < 0) return rc;
        p->d->nodes[kid].key_off = koff;
        p->d->nodes[kid].key_len = klen;
        push_kid(p, (size_t)kid);
        skip_ws(p);
        if (p->i >= p->n) return fail(p, type == DV2_JSON_OBJECT ? "unterminated object" : "unterminated array");
        if (p->s[p->i] == ',') { p->i++; continue; }
        if (p->s[p->i] == close) { p->i++; break; }
        return fail(p, type == DV2_JSON_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    *out = idx;
    return close_container(p, (size_t)idx, base);
}

static int parse_value(parser *p, int depth, long *out) {
    if (depth > MAX_DEPTH) return fail(p, "nesting too deep");
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end of input");
    char c = p->s[p->i];
    long idx;
    int rc;
    switch (c) {
    case '{': return parse_container(p, depth, DV2_JSON_OBJECT, out);
    case '[': return parse_container(p, depth, DV2_JSON_ARRAY, out);
    case '"':
        if ((idx = new_node(p, DV2_JSON_STRING)) < 0) return DV2_ENOMEM;
        rc = parse_string(p, &p->d->nodes[idx].str_off, &p->d->nodes[idx].str_len);
        break;
    case 't': if ((idx = new_node(p, DV2_JSON_TRUE)) < 0) return DV2_ENOMEM; rc = lit(p, "true"); break;
    case 'f': if ((idx = new_node(p, DV2_JSON_FALSE)) < 0) return DV2_ENOMEM; rc = lit(p, "false"); break;
    case 'n': if ((idx = new_node(p, DV2_JSON_NULL)) < 0) return DV2_ENOMEM; rc = lit(p, "null"); break;
    default:
        if (c != '-' && (c < '0' || c > '9')) return fail(p, "unexpected character");
        if ((idx = new_node(p, DV2_JSON_NUMBER)) < 0) return DV2_ENOMEM;
        rc = parse_number(p, &p->d->nodes[idx]);
    }
    if (rc < 0) return rc;
    *out = idx;
    return 0;
}

int dv2_json_parse(dv2_json_doc **doc, const char *text, size_t n, size_t max_nodes, dv2_error *err) {
    *doc = NULL;
    size_t cap = n / 2 + 16;
    if (max_nodes == 0 || max_nodes > cap) max_nodes = cap;
    if (n > ((size_t)1 << 40)) return dv2_error_set(err, DV2_ENOMEM, "json: input too large");
    dv2_json_doc *d = calloc(1, sizeof *d);
    if (!d) return dv2_error_set(err, DV2_ENOMEM, "json: out of memory");
    d->max_nodes = max_nodes;
    d->nodes = dv2_malloc_array(max_nodes, sizeof *d->nodes);
    d->kids = dv2_malloc_array(max_nodes, sizeof *d->kids);
    d->stack = dv2_malloc_array(max_nodes, sizeof *d->stack);
    d->buf = malloc(n * 2 + 16);
    if (!d->nodes || !d->kids || !d->stack || !d->buf) {
        dv2_json_free(d);
        return dv2_error_set(err, DV2_ENOMEM, "json: out of memory for %zu bytes", n);
    }
    parser p = {text, n, 0, d, err};
    long root;
    int rc = parse_value(&p, 0, &root);
    if (rc == 0) {
        skip_ws(&p);
        if (p.i != n) rc = fail(&p, "trailing characters after the value");
    }
    free(d->stack);
    d->stack = NULL;
    if (rc < 0) { dv2_json_free(d); return rc; }
    *doc = d;
    return DV2_OK;
}

void dv2_json_free(dv2_json_doc *doc) {
    if (!doc) return;
    free(doc->nodes);
    free(doc->kids);
    free(doc->stack);
    free(doc->buf);
    free(doc);
}

/* The root is always node 0 (the first value created). */
const dv2_json *dv2_json_root(const dv2_json_doc *doc) { return doc && doc->nnodes ? &doc->nodes[0] : NULL; }
int dv2_json_type(const dv2_json *v) { return v ? v->type : -1; }

size_t dv2_json_len(const dv2_json *v) {
    if (!v) return 0;
    if (v->type == DV2_JSON_STRING) return v->str_len;
    return (v->type == DV2_JSON_ARRAY || v->type == DV2_JSON_OBJECT) ? v->n : 0;
}

const dv2_json *dv2_json_at(const dv2_json *v, size_t i) {
    if (!v || (v->type != DV2_JSON_ARRAY && v->type != DV2_JSON_OBJECT) || i >= v->n) return NULL;
    return &v->doc->nodes[v->doc->kids[v->kids_off + i]];
}

const char *dv2_json_key(const dv2_json *v, size_t i) {
    if (!v || v->type != DV2_JSON_OBJECT) return NULL;
    const dv2_json *k = dv2_json_at(v, i);
    return k ? v->doc->buf + k->key_off : NULL;
}

const dv2_json *dv2_json_get(const dv2_json *obj, const char *key) {
    if (!obj || obj->type != DV2_JSON_OBJECT) return NULL;
    size_t l = strlen(key);
    for (size_t i = 0; i < obj->n; i++) {
        const dv2_json *k = &obj->doc->nodes[obj->doc->kids[obj->kids_off + i]];
        if (k->key_len == l && memcmp(obj->doc->buf + k->key_off, key, l) == 0) return k;
    }
    return NULL;
}

const char *dv2_json_str(const dv2_json *v) {
    return v && v->type == DV2_JSON_STRING ? v->doc->buf + v->str_off : NULL;
}

double dv2_json_num(const dv2_json *v) { return v && v->type == DV2_JSON_NUMBER ? v->num : NAN; }

int dv2_json_int(const dv2_json *v, int64_t *out) {
    if (!v || v->type != DV2_JSON_NUMBER || !v->is_int) return 0;
    *out = v->ival;
    return 1;
}

void dv2_json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}
