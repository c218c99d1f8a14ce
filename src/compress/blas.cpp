#include "compress/blas.h"

#include <cblas.h>
#include <dlfcn.h>

#include <cstddef>
#include <cstdlib>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/core/thread-pool.h"

namespace upg::compress::blas {

namespace {

int as_int(int64_t v, const char* what) {
  if (v < 0 || v > int64_t(INT32_MAX)) throw Error(fmt::format("blas: {} {} is out of LAPACK's range", what, v));
  return int(v);
}

// OpenBLAS is opened on first use, not linked: its pthreads build starts its worker
// threads when it is loaded, before main, so they would take the signals `upg serve`
// blocks in every thread to sigwait for them (a SIGTERM landing there killed the server
// instead of draining it). Opened here, its threads are started from the compressor's
// thread with that thread's signal mask, and no other command loads it.
// LAPACK's Fortran entry points (OpenBLAS exports them; Debian ships no C header for them
// beside OpenBLAS) take gfortran's hidden string lengths after the arguments.
struct Api {
  void (*set_num_threads)(int);
  decltype(&cblas_ssyrk) ssyrk;
  decltype(&cblas_sgemm) sgemm;
  decltype(&cblas_strmm) strmm;
  void (*dpotrf)(const char*, const int*, double*, const int*, int*, size_t);
  void (*dtrtri)(const char*, const char*, const int*, double*, const int*, int*, size_t, size_t);
};

template <class F>
void bind(void* lib, const char* name, F& f) {
  void* p = dlsym(lib, name);
  if (!p) throw Error(fmt::format("blas: OpenBLAS has no {}", name));
  f = reinterpret_cast<F>(p);
}

const Api& api() {
  static const Api a = [] {
    // OpenBLAS's idle workers spin (sched_yield) for about 2^28 cycles after each call,
    // taking turns on the cores with the engine's threads between the calibration
    // passes' products: measured, 2k-token runs spent 8.5 instead of 12.9 CPU-seconds in
    // the kernel with the shortest spin (read once, when the library is opened). A user's
    // own setting is kept.
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      throw Error(fmt::format("blas: cannot open OpenBLAS ({}); scripts/install-deps.sh installs it", dlerror()));
    Api r{};
    bind(lib, "openblas_set_num_threads", r.set_num_threads);
    bind(lib, "cblas_ssyrk", r.ssyrk);
    bind(lib, "cblas_sgemm", r.sgemm);
    bind(lib, "cblas_strmm", r.strmm);
    bind(lib, "dpotrf_", r.dpotrf);
    bind(lib, "dtrtri_", r.dtrtri);
    return r;
  }();
  return a;
}

}  // namespace

void set_threads(int threads) { api().set_num_threads(threads > 0 ? threads : ThreadPool::hardware_threads()); }

void syrk_upper(float* c_mat, const float* a, int64_t n, int64_t c) {
  if (n <= 0 || c <= 0) return;
  api().ssyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(c), blasint(n), 1.0f, a, blasint(c), 1.0f, c_mat,
              blasint(c));
}

void gemm_tn(float* c_mat, const float* a, const float* b, int64_t n, int64_t m, int64_t k, float alpha, int64_t ldc) {
  if (n <= 0 || m <= 0 || k <= 0) return;
  api().sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(m), blasint(k), blasint(n), alpha, a, blasint(m), b,
              blasint(k), 1.0f, c_mat, blasint(ldc));
}

void gemm_nn(float* c_mat, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t m,
             int64_t n, int64_t k, float alpha) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  api().sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(k), blasint(n), alpha, a, blasint(lda),
              b, blasint(ldb), 1.0f, c_mat, blasint(ldc));
}

void gemm_nt(float* y, const float* x, const float* w, int64_t n, int64_t m, int64_t k, float beta) {
  if (n <= 0 || m <= 0 || k <= 0) return;
  api().sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(n), blasint(m), blasint(k), 1.0f, x, blasint(k), w,
              blasint(k), beta, y, blasint(m));
}

void trmm_right_upper(float* b, int64_t m, int64_t n, const float* u, bool transpose) {
  if (m <= 0 || n <= 0) return;
  api().strmm(CblasRowMajor, CblasRight, CblasUpper, transpose ? CblasTrans : CblasNoTrans, CblasNonUnit, blasint(m),
              blasint(n), 1.0f, u, blasint(n), b, blasint(n));
}

// A row-major lower triangle is a column-major upper one: LAPACK is asked for 'U'.
bool cholesky_lower(double* a, int64_t n) {
  const int nn = as_int(n, "order");
  int info = 0;
  api().dpotrf("U", &nn, a, &nn, &info, 1);
  if (info < 0) throw Error(fmt::format("blas: dpotrf rejected argument {}", -info));
  return info == 0;
}

void invert_lower(double* l, int64_t n) {
  const int nn = as_int(n, "order");
  int info = 0;
  api().dtrtri("U", "N", &nn, l, &nn, &info, 1, 1);
  if (info != 0) throw Error(fmt::format("blas: dtrtri failed ({}): a zero on the factor's diagonal", info));
}

}  // namespace upg::compress::blas
