/*
 * PKCS#11 signature loop for the benchmarks (bench/opensc.bench.ts): loads a PKCS#11 module,
 * opens one session on the first slot with a token, logs in, finds the first EC private key and
 * calls C_SignInit + C_Sign (CKM_ECDSA over a 32-byte hash) N times, all in that one session.
 * Prints: "<N> <total ms> <mean ms per signature> <median ms per signature>" (each signature is
 * timed on its own, C_SignInit + C_Sign, as the TypeScript side times its sign()). Written for sc-hsm-ts; compiled at bench time:
 *   cc -O2 -I/usr/include/p11-kit-1 p11sign.c -o p11sign -ldl
 * Usage: p11sign MODULE.so PIN N
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/pkcs11.h>

#define CHECK(call)                                                        \
  do {                                                                     \
    CK_RV rv_ = (call);                                                    \
    if (rv_ != CKR_OK) {                                                   \
      fprintf(stderr, "%s failed: 0x%lx\n", #call, (unsigned long)rv_);    \
      return 1;                                                            \
    }                                                                      \
  } while (0)

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODULE.so PIN N\n", argv[0]);
    return 2;
  }
  long n = atol(argv[3]);
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  CK_C_GetFunctionList getList = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!getList) return 1;
  CK_FUNCTION_LIST_PTR f;
  CHECK(getList(&f));
  CHECK(f->C_Initialize(NULL));
  CK_SLOT_ID slots[16];
  CK_ULONG count = 16;
  CHECK(f->C_GetSlotList(CK_TRUE, slots, &count));
  if (count == 0) {
    fprintf(stderr, "no token\n");
    return 1;
  }
  CK_SESSION_HANDLE s;
  CHECK(f->C_OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
  CHECK(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2])));
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_KEY_TYPE kt = CKK_EC;
  CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt}};
  CK_OBJECT_HANDLE key;
  CK_ULONG found = 0;
  CHECK(f->C_FindObjectsInit(s, tmpl, 2));
  CHECK(f->C_FindObjects(s, &key, 1, &found));
  CHECK(f->C_FindObjectsFinal(s));
  if (!found) {
    fprintf(stderr, "no EC private key\n");
    return 1;
  }
  CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
  unsigned char hash[32], sig[256];
  memset(hash, 7, sizeof hash);
  /* one warm-up signature, outside the timing */
  CK_ULONG len = sizeof sig;
  CHECK(f->C_SignInit(s, &mech, key));
  CHECK(f->C_Sign(s, hash, sizeof hash, sig, &len));
  double *each = malloc(sizeof(double) * (size_t)n);
  if (!each) return 1;
  double t0 = now_ms();
  for (long i = 0; i < n; i++) {
    double s0 = now_ms();
    hash[0] = (unsigned char)i;
    len = sizeof sig;
    CHECK(f->C_SignInit(s, &mech, key));
    CHECK(f->C_Sign(s, hash, sizeof hash, sig, &len));
    each[i] = now_ms() - s0;
  }
  double total = now_ms() - t0;
  qsort(each, (size_t)n, sizeof(double), cmp_double);
  printf("%ld %.3f %.4f %.4f\n", n, total, total / n, each[n / 2]);
  free(each);
  f->C_Logout(s);
  f->C_CloseSession(s);
  f->C_Finalize(NULL);
  return 0;
}
