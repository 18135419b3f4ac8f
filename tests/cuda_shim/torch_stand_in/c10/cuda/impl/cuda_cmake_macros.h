// Stand-in for the header a CUDA build of torch generates at build time and a
// CPU-only wheel does not ship.  Used only by scripts/gpu/check_cuda_compile.sh
// (syntax-only check of dag_binding.cpp), after torch's own include paths, so a
// CUDA torch's real header always wins.  The one macro the real file defines:
#pragma once
#define C10_CUDA_BUILD_SHARED_LIBS
