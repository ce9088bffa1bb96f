/* GAEN v1.2 RPIs of many daily keys in one call, through OpenSSL 3's libcrypto.
 *
 * For each key k: RPIK = HKDF-SHA256(TEK_k, salt none, info "EN-RPIK", 16 bytes) and
 * RPI_i = AES-128-ECB(RPIK, "EN-RPI" || 0^6 || LE32(start_k + i)) for i < count.
 *
 * Neither SHA-256 nor AES is written here: libcrypto does both.  It is opened at run
 * time with dlopen("libcrypto.so.3"), so this library has no link-time dependency on
 * OpenSSL (one build per architecture serves every distribution that ships OpenSSL 3,
 * and it cross-compiles without OpenSSL's headers: the few prototypes are below).
 * The algorithms are fetched once; per key only a digest context is copied and the
 * cipher context re-keyed, which is what makes OpenSSL 3 fast on small inputs.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct evp_md_st EVP_MD;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

/* The libcrypto functions used, with OpenSSL 3's prototypes (OSSL_LIB_CTX and
 * OSSL_PARAM pointers are always NULL here, so they are void *). */
static struct {
    EVP_MD *(*MD_fetch)(void *, const char *, const char *);
    EVP_CIPHER *(*CIPHER_fetch)(void *, const char *, const char *);
    EVP_MD_CTX *(*MD_CTX_new)(void);
    void (*MD_CTX_free)(EVP_MD_CTX *);
    int (*MD_CTX_copy_ex)(EVP_MD_CTX *, const EVP_MD_CTX *);
    int (*DigestInit_ex2)(EVP_MD_CTX *, const EVP_MD *, const void *);
    int (*DigestUpdate)(EVP_MD_CTX *, const void *, size_t);
    int (*DigestFinal_ex)(EVP_MD_CTX *, unsigned char *, unsigned int *);
    EVP_CIPHER_CTX *(*CIPHER_CTX_new)(void);
    void (*CIPHER_CTX_free)(EVP_CIPHER_CTX *);
    int (*CIPHER_CTX_set_padding)(EVP_CIPHER_CTX *, int);
    int (*EncryptInit_ex2)(EVP_CIPHER_CTX *, const EVP_CIPHER *, const unsigned char *,
                           const unsigned char *, const void *);
    int (*EncryptUpdate)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int);
    const char *(*version)(int);
} ossl;

static EVP_MD *sha256;
static EVP_CIPHER *aes128_ecb;
static const char *init_error = "bz_init was not called";

#define LOAD(field, name)                                   \
    do {                                                    \
        *(void **)&ossl.field = dlsym(lib, name);           \
        if (ossl.field == NULL) {                           \
            init_error = "libcrypto.so.3 lacks " name;      \
            return -1;                                      \
        }                                                   \
    } while (0)

/* Open libcrypto and fetch SHA-256 and AES-128-ECB.  0 on success; otherwise -1 and
 * bz_error() says why.  Call once before bz_rpis (the Python loader does). */
EXPORT int bz_init(void) {
    if (sha256 != NULL && aes128_ecb != NULL)
        return 0;
    void *lib = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        init_error = "libcrypto.so.3 (OpenSSL 3) not found";
        return -1;
    }
    LOAD(MD_fetch, "EVP_MD_fetch");
    LOAD(CIPHER_fetch, "EVP_CIPHER_fetch");
    LOAD(MD_CTX_new, "EVP_MD_CTX_new");
    LOAD(MD_CTX_free, "EVP_MD_CTX_free");
    LOAD(MD_CTX_copy_ex, "EVP_MD_CTX_copy_ex");
    LOAD(DigestInit_ex2, "EVP_DigestInit_ex2");
    LOAD(DigestUpdate, "EVP_DigestUpdate");
    LOAD(DigestFinal_ex, "EVP_DigestFinal_ex");
    LOAD(CIPHER_CTX_new, "EVP_CIPHER_CTX_new");
    LOAD(CIPHER_CTX_free, "EVP_CIPHER_CTX_free");
    LOAD(CIPHER_CTX_set_padding, "EVP_CIPHER_CTX_set_padding");
    LOAD(EncryptInit_ex2, "EVP_EncryptInit_ex2");
    LOAD(EncryptUpdate, "EVP_EncryptUpdate");
    LOAD(version, "OpenSSL_version");
    sha256 = ossl.MD_fetch(NULL, "SHA2-256", NULL);
    aes128_ecb = ossl.CIPHER_fetch(NULL, "AES-128-ECB", NULL);
    if (sha256 == NULL || aes128_ecb == NULL) {
        init_error = "OpenSSL could not fetch SHA2-256 or AES-128-ECB (providers?)";
        return -1;
    }
    init_error = NULL;
    return 0;
}

/* Why bz_init failed, or NULL. */
EXPORT const char *bz_error(void) { return init_error; }

/* OpenSSL's version string (after a successful bz_init). */
EXPORT const char *bz_openssl_version(void) { return ossl.version(0); }

/* SHA-256 state after one 64-byte block: the precomputed half of an HMAC. */
static int pad_state(EVP_MD_CTX *ctx, const unsigned char *key, size_t key_len, unsigned char pad) {
    unsigned char block[64];
    memset(block, pad, sizeof block);
    for (size_t i = 0; i < key_len; i++)
        block[i] ^= key[i];
    return ossl.DigestInit_ex2(ctx, sha256, NULL) && ossl.DigestUpdate(ctx, block, sizeof block);
}

/* HMAC-SHA256 of msg under the key whose pad states are in inner/outer. */
static int hmac(EVP_MD_CTX *work, const EVP_MD_CTX *inner, const EVP_MD_CTX *outer,
                const unsigned char *msg, size_t msg_len, unsigned char mac[32]) {
    unsigned char digest[32];
    return ossl.MD_CTX_copy_ex(work, inner) && ossl.DigestUpdate(work, msg, msg_len) &&
           ossl.DigestFinal_ex(work, digest, NULL) && ossl.MD_CTX_copy_ex(work, outer) &&
           ossl.DigestUpdate(work, digest, sizeof digest) && ossl.DigestFinal_ex(work, mac, NULL);
}

/* The RPIs of key k, count of them from starts[k], into row (count*16 bytes); work and the
 * digest contexts are bz_rpis's. 1, or 0 if libcrypto failed. */
typedef struct {
    EVP_MD_CTX *extract_inner, *extract_outer, *inner, *outer, *work;
    EVP_CIPHER_CTX *ecb;
} contexts;

static void free_contexts(contexts *c) {
    ossl.MD_CTX_free(c->extract_inner);
    ossl.MD_CTX_free(c->extract_outer);
    ossl.MD_CTX_free(c->inner);
    ossl.MD_CTX_free(c->outer);
    ossl.MD_CTX_free(c->work);
    ossl.CIPHER_CTX_free(c->ecb);
}

static int new_contexts(contexts *c) {
    static const unsigned char zero_salt[32];
    c->extract_inner = ossl.MD_CTX_new();
    c->extract_outer = ossl.MD_CTX_new();
    c->inner = ossl.MD_CTX_new();
    c->outer = ossl.MD_CTX_new();
    c->work = ossl.MD_CTX_new();
    c->ecb = ossl.CIPHER_CTX_new();
    /* HKDF without salt: the extract step's HMAC key is 32 zero bytes for every key. */
    return c->extract_inner && c->extract_outer && c->inner && c->outer && c->work && c->ecb &&
           pad_state(c->extract_inner, zero_salt, 32, 0x36) && pad_state(c->extract_outer, zero_salt, 32, 0x5c) &&
           ossl.EncryptInit_ex2(c->ecb, aes128_ecb, NULL, NULL, NULL) && ossl.CIPHER_CTX_set_padding(c->ecb, 0);
}

static int key_rpis(contexts *c, const unsigned char tek[16], uint32_t start, uint32_t count, unsigned char *row) {
    static const unsigned char info[8] = {'E', 'N', '-', 'R', 'P', 'I', 'K', 0x01};
    unsigned char prk[32], rpik[32];
    if (!(hmac(c->work, c->extract_inner, c->extract_outer, tek, 16, prk) && pad_state(c->inner, prk, 32, 0x36) &&
          pad_state(c->outer, prk, 32, 0x5c) && hmac(c->work, c->inner, c->outer, info, sizeof info, rpik)))
        return 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t interval = start + i; /* wraps modulo 2^32, as the spec's uint32 */
        unsigned char *block = row + 16 * (size_t)i;
        memcpy(block, "EN-RPI\0\0\0\0\0\0", 12);
        block[12] = (unsigned char)interval;
        block[13] = (unsigned char)(interval >> 8);
        block[14] = (unsigned char)(interval >> 16);
        block[15] = (unsigned char)(interval >> 24);
    }
    int written = 0, row_bytes = (int)count * 16;
    return ossl.EncryptInit_ex2(c->ecb, NULL, rpik, NULL, NULL) &&
           ossl.EncryptUpdate(c->ecb, row, &written, row, row_bytes) && written == row_bytes;
}

/* RPIs of n keys: teks is n*16 bytes, starts n first intervals, out n*count*16 bytes
 * (key k's RPI for interval starts[k] + i, modulo 2^32, at out + (k*count + i)*16).
 * Returns 0, or -1 if libcrypto failed (out is then incomplete). */
EXPORT int bz_rpis(const unsigned char *teks, const uint32_t *starts, size_t n, uint32_t count,
                   unsigned char *out) {
    if (init_error != NULL || count == 0 || count > (1u << 24))
        return -1;
    contexts c;
    int ok = new_contexts(&c);
    for (size_t k = 0; ok && k < n; k++)
        ok = key_rpis(&c, teks + 16 * k, starts[k], count, out + (size_t)count * 16 * k);
    free_contexts(&c);
    return ok ? 0 : -1;
}

static inline uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline int has_bit(const unsigned char *table, uint32_t value) { return (table[value >> 3] >> (value & 7)) & 1; }

/* The RPIs of n keys (as bz_rpis) that pass a pre-filter of two bit sets, without keeping the
 * others: an RPI passes when bit (word0 & mask1) of table1 and bit (word1 & mask2) of table2 are
 * set, word0 and word1 its first two 32-bit little-endian words and mask = 2^bits - 1 (bits1 and
 * bits2 at most 31).  For each, in order, its flat position k*count + i goes to positions and its
 * 16 bytes to rpis; both must hold n*count entries.  Returns how many passed, or -1 if libcrypto
 * failed.  Deriving a key's RPIs into a small buffer that stays in cache and testing them there
 * costs less than writing them all out and testing them afterwards. */
EXPORT int64_t bz_rpis_passing(const unsigned char *teks, const uint32_t *starts, size_t n, uint32_t count,
                               const unsigned char *table1, uint32_t bits1, const unsigned char *table2,
                               uint32_t bits2, int64_t *positions, unsigned char *rpis) {
    if (init_error != NULL || count == 0 || count > 4096 || bits1 > 31 || bits2 > 31)
        return -1;
    const uint32_t mask1 = (1u << bits1) - 1, mask2 = (1u << bits2) - 1;
    unsigned char row[4096 * 16];
    contexts c;
    int ok = new_contexts(&c);
    int64_t found = 0;
    uint32_t first[4096];
    for (size_t k = 0; ok && k < n; k++) {
        ok = key_rpis(&c, teks + 16 * k, starts[k], count, row);
        /* The first table for all of them without a branch (independent loads overlap), then
         * the second only for the ~6 % that pass it. */
        uint32_t passed = 0;
        for (uint32_t i = 0; ok && i < count; i++) {
            first[passed] = i;
            passed += has_bit(table1, le32(row + 16 * (size_t)i) & mask1);
        }
        for (uint32_t j = 0; ok && j < passed; j++) {
            const unsigned char *rpi = row + 16 * (size_t)first[j];
            if (has_bit(table2, le32(rpi + 4) & mask2)) {
                positions[found] = (int64_t)(k * count + first[j]);
                memcpy(rpis + 16 * (size_t)found, rpi, 16);
                found++;
            }
        }
    }
    free_contexts(&c);
    return ok ? found : -1;
}

/* Sets bit (values[i * stride] & mask) of table for i < n, mask = 2^bits - 1 (bits 3..31; bit v
 * is bit v & 7 of byte v >> 3; table holds 2^bits bits): the matcher's pre-filter tables, built
 * from a column of the stored RPIs' 32-bit words (stride 4) without copying or sorting it. */
EXPORT int bz_set_bits(const uint32_t *values, size_t n, size_t stride, uint32_t bits, unsigned char *table) {
    if (bits < 3 || bits > 31)
        return -1;
    const uint32_t mask = (1u << bits) - 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = values[i * stride] & mask;
        table[v >> 3] |= (unsigned char)(1u << (v & 7));
    }
    return 0;
}
