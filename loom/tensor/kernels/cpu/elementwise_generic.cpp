// Baseline (SSE2) build of the flat f32 elementwise loops.
#define LOOM_EW_ISA generic
#include "loom/tensor/kernels/cpu/elementwise_simd.h"
