/* Runs a built _rpi.so outside Python, for check_wheel.py (under qemu for another architecture).
 * stdin: uint32 n, uint32 count, n*16 bytes of TEKs, n uint32 starts, then uint32 bits1, bits2,
 * m and m uint32 indices of RPIs to hold in a pre-filter, all little endian;
 * stdout: the n*count*16 bytes of RPIs (bz_rpis); the pre-filter's two bit sets (2^bits / 8
 * bytes each, made by bz_set_bits from words 0 and 1 of those RPIs, read in place with a stride);
 * then bz_rpis_passing with them: int64 k, k int64 positions, k*16 bytes of RPIs.
 * argv[1]: the library's path. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_all(void *p, size_t n) { return fread(p, 1, n, stdin) == n; }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LIBRARY.so < request > rpis\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (lib == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    int (*init)(void) = (int (*)(void))dlsym(lib, "bz_init");
    const char *(*error)(void) = (const char *(*)(void))dlsym(lib, "bz_error");
    const char *(*version)(void) = (const char *(*)(void))dlsym(lib, "bz_openssl_version");
    int (*rpis)(const unsigned char *, const uint32_t *, size_t, uint32_t, unsigned char *) =
        (int (*)(const unsigned char *, const uint32_t *, size_t, uint32_t, unsigned char *))dlsym(lib, "bz_rpis");
    int64_t (*passing)(const unsigned char *, const uint32_t *, size_t, uint32_t, const unsigned char *, uint32_t,
                       const unsigned char *, uint32_t, int64_t *, unsigned char *) =
        (int64_t (*)(const unsigned char *, const uint32_t *, size_t, uint32_t, const unsigned char *, uint32_t,
                     const unsigned char *, uint32_t, int64_t *, unsigned char *))dlsym(lib, "bz_rpis_passing");
    int (*set_bits)(const uint32_t *, size_t, size_t, uint32_t, unsigned char *) =
        (int (*)(const uint32_t *, size_t, size_t, uint32_t, unsigned char *))dlsym(lib, "bz_set_bits");
    if (!init || !error || !version || !rpis || !passing || !set_bits) {
        fprintf(stderr, "the library lacks bz_init, bz_error, bz_openssl_version, bz_rpis, bz_rpis_passing or bz_set_bits\n");
        return 1;
    }
    if (init() != 0) {
        fprintf(stderr, "bz_init: %s\n", error());
        return 1;
    }
    fprintf(stderr, "%s\n", version());
    uint32_t n, count;
    if (!read_all(&n, 4) || !read_all(&count, 4))
        return 2;
    unsigned char *teks = malloc((size_t)n * 16), *out = malloc((size_t)n * count * 16);
    uint32_t *starts = malloc((size_t)n * 4);
    if (!teks || !out || !starts || !read_all(teks, (size_t)n * 16) || !read_all(starts, (size_t)n * 4))
        return 2;
    if (rpis(teks, starts, n, count, out) != 0) {
        fprintf(stderr, "bz_rpis failed\n");
        return 1;
    }
    if (fwrite(out, 1, (size_t)n * count * 16, stdout) != (size_t)n * count * 16)
        return 1;
    uint32_t bits1, bits2, m_held;
    if (!read_all(&bits1, 4) || !read_all(&bits2, 4) || !read_all(&m_held, 4) || bits1 < 3 || bits1 > 31 ||
        bits2 < 3 || bits2 > 31)
        return 2;
    uint32_t *held = malloc((size_t)m_held * 16 + 16);
    unsigned char *table1 = calloc((size_t)1 << (bits1 - 3), 1), *table2 = calloc((size_t)1 << (bits2 - 3), 1);
    int64_t *positions = malloc((size_t)n * count * 8);
    if (!held || !table1 || !table2 || !positions)
        return 2;
    for (uint32_t j = 0; j < m_held; j++) {
        uint32_t i;
        if (!read_all(&i, 4) || i >= n * count)
            return 2;
        memcpy(held + 4 * (size_t)j, out + 16 * (size_t)i, 16);
    }
    if (set_bits(held, m_held, 4, bits1, table1) != 0 || set_bits(held + 1, m_held, 4, bits2, table2) != 0) {
        fprintf(stderr, "bz_set_bits failed\n");
        return 1;
    }
    if (fwrite(table1, 1, (size_t)1 << (bits1 - 3), stdout) != (size_t)1 << (bits1 - 3) ||
        fwrite(table2, 1, (size_t)1 << (bits2 - 3), stdout) != (size_t)1 << (bits2 - 3))
        return 1;
    int64_t m = passing(teks, starts, n, count, table1, bits1, table2, bits2, positions, out);
    if (m < 0) {
        fprintf(stderr, "bz_rpis_passing failed\n");
        return 1;
    }
    return fwrite(&m, 8, 1, stdout) == 1 && fwrite(positions, 8, (size_t)m, stdout) == (size_t)m &&
                   fwrite(out, 16, (size_t)m, stdout) == (size_t)m
               ? 0
               : 1;
}
