// Just enough of CUDA C for the host executor: the kernel sources in this
// directory compile as C++ with this header in front, and the launchers that
// build.rs generates call each kernel once per (block, thread) of the grid.
// Only 1-D launches of independent threads are supported (see common.cuh):
// there is deliberately no __shared__, __syncthreads or atomicAdd here, so a
// kernel that needs them fails to compile for the host instead of running
// wrongly.
#pragma once
#include <math.h>
#include <cstddef>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict

struct ns_dim3 {
    unsigned x, y, z;
};

// Set by the launch loop; thread-local because several CPU threads run
// disjoint ranges of blocks of the same launch.
extern thread_local ns_dim3 threadIdx;
extern thread_local ns_dim3 blockIdx;
extern thread_local ns_dim3 blockDim;
extern thread_local ns_dim3 gridDim;

// fmaxf, fabsf, sqrt: the C library's, as CUDA's device versions.

namespace ns_host {
template <typename... A, std::size_t... I>
inline void call(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<A*>(args[I])...);
}

// Runs blocks [b0, b1) of a 1-D launch of `k`, threads in order. `args`
// follows cuLaunchKernel's convention: one pointer per parameter.
template <typename... A>
inline void launch(void (*k)(A...), unsigned grid, unsigned block, void** args,
                   unsigned b0, unsigned b1) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = b0; b < b1; ++b) {
        blockIdx = {b, 0, 0};
        for (unsigned t = 0; t < block; ++t) {
            threadIdx = {t, 0, 0};
            call(k, args, std::index_sequence_for<A...>{});
        }
    }
}
}  // namespace ns_host
