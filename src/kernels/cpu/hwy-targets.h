#pragma once
// Which Highway targets the CPU kernels are compiled for. Every kernel source includes
// this before any hwy header, so all dispatch tables (and hwy::GetChosenTarget's index
// into them) agree on one target set.
//
// Highway 1.0.3 (Debian) has no AVX3_ZEN4 target; with default flags it compiles SSSE3,
// SSE4, AVX2, AVX3 and a portable fallback (SCALAR with g++ < 12.3, where hwy marks
// EMU128 broken; EMU128 otherwise). We drop SSSE3: it has no FMA or F16C, and CPUs
// without SSE4 are rare enough for the fallback. AVX3_DL is only attainable with
// HWY_WANT_AVX3_DL and adds nothing these kernels use (VNNI/VBMI are integer ops), so a
// Zen 4 runs AVX3. That leaves four compilations per kernel source, which keeps the
// build bearable on 2 cores. The fallback must stay: it is the static (baseline) target.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_AVX3_DL)
#endif
