// Shared by every kernel file. The kernels are written for two executors:
// NVRTC on an NVIDIA GPU, and the host executor, which compiles these very
// sources as C++ (`host_shim.h`) and loops over the grid on the CPU.
//
// Rules that keep both executors exact: 1-D grids, grid-stride loops,
// threads that never talk to each other (no shared memory, no barriers, no
// atomics), each output element written by exactly one thread. Reductions
// write one f64 partial sum per thread; `ns_sum_partials` folds those.
//
// Every integer parameter is `long long` and every pointer is a device
// address: the Rust side checks argument kinds against these signatures.

#define KERNEL extern "C" __global__ void

#define GRID_STRIDE(i, n)                                                     \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (long long)blockDim.x * gridDim.x)

#define THREAD_ID() ((long long)blockIdx.x * blockDim.x + threadIdx.x)
