/* cpu_vec_body.h — the vector math of cpu_vec.c, included once per
 * instruction set with VEC_ATTR (the target attribute), VEC(name) (the name
 * with the variant's suffix), VEC_NAME and VW (floats per register: 4, 8 or
 * 16) defined.  Each step handles 16 elements as 16/VW registers, so sums
 * keep 16 lanes in every variant.  Not a header of its own: no guard. */

typedef float VEC(vf) __attribute__((vector_size(VW * 4)));
typedef int32_t VEC(vi) __attribute__((vector_size(VW * 4)));
/* the same, at any float's address */
typedef float VEC(vu) __attribute__((vector_size(VW * 4), aligned(4), may_alias));
#define vf VEC(vf)
#define vi VEC(vi)
#define NV (16 / VW)
#define VI static inline VEC_ATTR __attribute__((always_inline))
#define LOAD(p) ((vf) * (const VEC(vu) *)(const void *)(p))
#define STORE(p, v) (*(VEC(vu) *)(void *)(p) = (v))
#define SPLAT(c) ((vf){0} + (c))
/* lanes of a where m is set, of b elsewhere */
#define SEL(m, a, b) ((vf)(((vi)(a) & (m)) | ((vi)(b) & ~(m))))

/* exp(x) for x ≤ 88: Cody-Waite reduction by ln 2 and a degree-6 Taylor
 * polynomial; x < −87 is taken as −87 (2^-126, the smallest normal), a NaN
 * stays NaN. */
VI vf VEC(exp)(vf x) {
    x = SEL(x < -87.0f, SPLAT(-87.0f), x);
    vf n = (x * EXP_LOG2E + EXP_MAGIC) - EXP_MAGIC;
    vf r = x - n * EXP_LN2_HI;
    r = r - n * EXP_LN2_LO;
    vf p = SPLAT(0.0013888888889f);
    p = 0.0083333333333f + r * p;
    p = 0.041666666666f + r * p;
    p = 0.16666666666f + r * p;
    p = 0.5f + r * p;
    p = 1.0f + r * p;
    p = 1.0f + r * p;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)e;
}

/* 2Φ(x) = erfc(−x/√2), the Numerical Recipes erfcc of |x|/√2 */
VI vf VEC(phi2)(vf x) {
    vf u = x * 0.70710678118654752f;
    vi neg = u < 0.0f;
    vf z = SEL(neg, 0.0f - u, u);
    vf t = 1.0f / (1.0f + 0.5f * z);
    vf p = SPLAT(0.17087277f);
    p = -0.82215223f + t * p;
    p = 1.48851587f + t * p;
    p = -1.13520398f + t * p;
    p = 0.27886807f + t * p;
    p = -0.18628806f + t * p;
    p = 0.09678418f + t * p;
    p = 0.37409196f + t * p;
    p = 1.00002368f + t * p;
    p = -1.26551223f + t * p;
    vf c = t * VEC(exp)(p - z * z);
    return SEL(neg, c, 2.0f - c);
}

/* 16 elements: out = x·Φ(x) */
VI void VEC(gelu16)(float *out, const float *in) {
    for (int k = 0; k < NV; k++) {
        vf x = LOAD(in + k * VW);
        STORE(out + k * VW, (0.5f * x) * VEC(phi2)(x));
    }
}

/* 16 elements: din (+)= dout·(Φ(x) + x·φ(x)) */
VI void VEC(dgelu16)(float *din, const float *dout, const float *in, int accumulate) {
    for (int k = 0; k < NV; k++) {
        vf x = LOAD(in + k * VW);
        vf q = VEC(exp)((-0.5f * x) * x);
        vf g = LOAD(dout + k * VW) * (0.5f * VEC(phi2)(x) + (x * 0.3989422804014327f) * q);
        STORE(din + k * VW, accumulate ? LOAD(din + k * VW) + g : g); /* 0.39…: 1/√(2π) */
    }
}

static VEC_ATTR void VEC(gelu)(float *out, const float *in, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) VEC(gelu16)(out + i, in + i);
    if (i < n) {
        float b[16] = {0};
        memcpy(b, in + i, sizeof(float) * (n - i));
        VEC(gelu16)(b, b);
        memcpy(out + i, b, sizeof(float) * (n - i));
    }
}

static VEC_ATTR void VEC(gelu_grad)(float *din, const float *dout, const float *in, size_t n,
                                    int accumulate) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) VEC(dgelu16)(din + i, dout + i, in + i, accumulate);
    if (i < n) {
        size_t m = n - i;
        float x[16] = {0}, d[16] = {0}, o[16] = {0};
        memcpy(x, in + i, sizeof(float) * m);
        memcpy(d, dout + i, sizeof(float) * m);
        if (accumulate) memcpy(o, din + i, sizeof(float) * m);
        VEC(dgelu16)(o, d, x, accumulate);
        memcpy(din + i, o, sizeof(float) * m);
    }
}

static VEC_ATTR float VEC(max)(const float *r, int n) {
    vf m[NV];
    for (int k = 0; k < NV; k++) m[k] = SPLAT(-INFINITY);
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < NV; k++) {
            vf a = LOAD(r + j + k * VW);
            m[k] = SEL(a > m[k], a, m[k]);
        }
    float l[16], mx = -INFINITY;
    for (int k = 0; k < NV; k++) STORE(l + k * VW, m[k]);
    for (int k = 0; k < 16; k++) mx = l[k] > mx ? l[k] : mx;
    for (; j < n; j++) mx = r[j] > mx ? r[j] : mx;
    return mx;
}

/* 16 elements: r ← exp(r − shift), s += r */
VI void VEC(exp_acc16)(float *r, vf *s, float shift) {
    for (int k = 0; k < NV; k++) {
        vf e = VEC(exp)(LOAD(r + k * VW) - shift);
        STORE(r + k * VW, e);
        s[k] = s[k] + e;
    }
}

static VEC_ATTR double VEC(exp_sum)(float *r, int n, float shift) {
    vf s[NV];
    for (int k = 0; k < NV; k++) s[k] = SPLAT(0.0f);
    int j = 0;
    for (; j + 16 <= n; j += 16) VEC(exp_acc16)(r + j, s, shift);
    if (j < n) {
        size_t m = (size_t)(n - j);
        float b[16];
        memcpy(b, r + j, sizeof(float) * m);
        for (int k = (int)m; k < 16; k++) b[k] = -INFINITY; /* exp: 2^-126, zeroed below */
        vf t[NV];
        for (int k = 0; k < NV; k++) t[k] = SPLAT(0.0f);
        VEC(exp_acc16)(b, t, shift);
        memcpy(r + j, b, sizeof(float) * m);
        for (int k = (int)m; k < 16; k++) b[k] = 0.0f; /* padding adds nothing */
        for (int k = 0; k < NV; k++) s[k] = s[k] + LOAD(b + k * VW);
    }
    float l[16];
    for (int k = 0; k < NV; k++) STORE(l + k * VW, s[k]);
    double sum = 0;
    for (int k = 0; k < 16; k++) sum += l[k];
    return sum;
}

/* 16 elements: p ← exp(p − lse), dp ← p·(dp − d) */
VI void VEC(softmax_grad16)(float *p, float *dp, float lse, float d) {
    for (int k = 0; k < NV; k++) {
        vf e = VEC(exp)(LOAD(p + k * VW) - lse);
        STORE(p + k * VW, e);
        STORE(dp + k * VW, e * (LOAD(dp + k * VW) - d));
    }
}

static VEC_ATTR void VEC(softmax_grad)(float *p, float *dp, int n, float lse, float d) {
    int j = 0;
    for (; j + 16 <= n; j += 16) VEC(softmax_grad16)(p + j, dp + j, lse, d);
    if (j < n) {
        size_t m = (size_t)(n - j);
        float a[16] = {0}, b[16] = {0};
        memcpy(a, p + j, sizeof(float) * m);
        memcpy(b, dp + j, sizeof(float) * m);
        VEC(softmax_grad16)(a, b, lse, d);
        memcpy(p + j, a, sizeof(float) * m);
        memcpy(dp + j, b, sizeof(float) * m);
    }
}

/* VW/2 doubles per register, converted from VW/2 floats */
typedef float VEC(hf) __attribute__((vector_size(VW * 2), aligned(4), may_alias));
typedef double VEC(vd) __attribute__((vector_size(VW * 4)));
typedef double VEC(vdu) __attribute__((vector_size(VW * 4), aligned(8), may_alias));

static VEC_ATTR void VEC(colsum)(double *acc, const float *x, long N, size_t ld, int w) {
    const int H = VW / 2;
    int o = 0;
    for (; o + H <= w; o += H) {
        VEC(vd) a = *(VEC(vdu) *)(void *)(acc + o);
        for (long n = 0; n < N; n++)
            a = a + __builtin_convertvector(*(const VEC(hf) *)(const void *)(x + n * ld + o), VEC(vd));
        *(VEC(vdu) *)(void *)(acc + o) = a;
    }
    for (; o < w; o++) {
        double a = acc[o];
        for (long n = 0; n < N; n++) a += x[n * ld + o];
        acc[o] = a;
    }
}

static const dv2_cpu_vec_ops VEC(ops) = {
    .name = VEC_NAME,
    .gelu = VEC(gelu),
    .gelu_grad = VEC(gelu_grad),
    .max = VEC(max),
    .exp_sum = VEC(exp_sum),
    .softmax_grad = VEC(softmax_grad),
    .colsum = VEC(colsum),
};

#undef vf
#undef vi
#undef NV
#undef VI
#undef LOAD
#undef STORE
#undef SPLAT
#undef SEL
