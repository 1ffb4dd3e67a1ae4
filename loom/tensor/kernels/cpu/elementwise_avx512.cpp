// AVX-512 build of the flat f32 elementwise loops (flags set in CMakeLists.txt).
#define LOOM_EW_ISA avx512
#include "loom/tensor/kernels/cpu/elementwise_simd.h"
