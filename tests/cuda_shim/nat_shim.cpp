// Grid runner of the host CUDA shim (see include/nat_shim.h).
#include "nat_shim.h"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace nat_shim {

thread_local BlockContext* current_block = nullptr;

namespace {

struct ThreadArgs {
  const std::function<void()>* kernel;
  BlockContext* ctx;
  uint3 block, thread;
  dim3 grid_dim, block_dim;
};

void* run_thread(void* p) {
  const ThreadArgs* a = static_cast<const ThreadArgs*>(p);
  current_block = a->ctx;
  blockIdx = a->block;
  threadIdx = a->thread;
  gridDim = a->grid_dim;
  blockDim = a->block_dim;
  (*a->kernel)();
  return nullptr;
}

}  // namespace

void launch(dim3 grid, dim3 block, size_t smem, void*, bool uses_sync, const std::function<void()>& kernel) {
  const unsigned int nthreads = block.x * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
    fprintf(stderr, "nat_shim: invalid launch configuration (%u threads per block)\n", nthreads);
    abort();
  }
  // Poison dynamic shared memory, as uninitialised device memory: NaN bytes.
  std::vector<unsigned char> dyn(smem + 16, 0xff);
  BlockContext ctx;
  ctx.dynamic_smem = dyn.data();
  std::vector<ThreadArgs> args(nthreads);
  std::vector<pthread_t> threads(uses_sync ? nthreads : 0);
  // Blocks last to first, and threads of a sequential block last to first: CUDA
  // promises no order, and the reverse of the natural one exposes any reliance on it.
  for (unsigned int bz = grid.z; bz-- > 0;)
    for (unsigned int by = grid.y; by-- > 0;)
      for (unsigned int bx = grid.x; bx-- > 0;) {
        std::fill(dyn.begin(), dyn.end(), 0xff);
        std::barrier<> bar(uses_sync ? (ptrdiff_t)nthreads : 1);
        ctx.barrier = uses_sync ? &bar : nullptr;
        unsigned int n = 0;
        for (unsigned int tz = 0; tz < block.z; ++tz)
          for (unsigned int ty = 0; ty < block.y; ++ty)
            for (unsigned int tx = 0; tx < block.x; ++tx, ++n)
              args[n] = ThreadArgs{&kernel, &ctx, uint3{bx, by, bz}, uint3{tx, ty, tz}, grid, block};
        if (!uses_sync) {
          for (unsigned int i = nthreads; i-- > 0;) run_thread(&args[i]);
          continue;
        }
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        for (unsigned int i = 0; i < nthreads; ++i) {
          if (pthread_create(&threads[i], &attr, run_thread, &args[i]) != 0) {
            fprintf(stderr, "nat_shim: pthread_create failed\n");
            abort();
          }
        }
        pthread_attr_destroy(&attr);
        for (unsigned int i = 0; i < nthreads; ++i) pthread_join(threads[i], nullptr);
      }
  current_block = nullptr;
}

}  // namespace nat_shim
