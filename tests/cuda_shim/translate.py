"""Rewrite CUDA sources into C++ for the host shim (tests/cuda_shim/include/nat_shim.h).

Only two constructs change; the kernel code itself is compiled as written:

* ``kernel<Targs><<<grid, block[, smem[, stream]]>>>(args);`` becomes
  ``nat_shim::launch(dim3(grid), dim3(block), smem, stream, uses_sync, [&] { kernel<Targs>(args); });``
  where ``uses_sync`` says whether the kernel's body calls ``__syncthreads``
  (those kernels get one real thread per CUDA thread).
* ``extern __shared__ T name[];`` becomes ``T* name = (T*)nat_shim::dynamic_shared();``.

Usage: python translate.py OUT_DIR SOURCE.cu ...   (writes OUT_DIR/SOURCE.cpp)
"""
import os
import re
import sys

_LAUNCH = re.compile(r"([A-Za-z_]\w*)\s*(<[^<>;]*>)?\s*<<<")
_EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+([\w\s]+?)\s+(\w+)\s*\[\s*\]\s*;")
_KERNEL = re.compile(r"__global__\s+void\s+(\w+)\s*\(")


def _matching(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index just past the bracket that closes the one at ``start``."""
    depth = 0
    for k in range(start, len(text)):
        if text[k] == open_ch:
            depth += 1
        elif text[k] == close_ch:
            depth -= 1
            if depth == 0:
                return k + 1
    raise ValueError(f"unbalanced {open_ch}{close_ch} at offset {start}")


def _split_top_level(args: str):
    parts, depth, cur = [], 0, ""
    for ch in args:
        if ch in "([<{":
            depth += 1
        elif ch in ")]>}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def sync_kernels(text: str):
    """Names of the __global__ functions whose body calls __syncthreads."""
    names = set()
    for m in _KERNEL.finditer(text):
        body_start = text.index("{", _matching(text, m.end() - 1, "(", ")"))
        body = text[body_start:_matching(text, body_start, "{", "}")]
        if "__syncthreads" in body:
            names.add(m.group(1))
    return names


def translate(text: str) -> str:
    text = _EXTERN_SHARED.sub(lambda m: f"{m.group(1)}* {m.group(2)} = ({m.group(1)}*)nat_shim::dynamic_shared();",
                              text)
    syncing = sync_kernels(text)
    out, pos = [], 0
    for m in _LAUNCH.finditer(text):
        if m.start() < pos:
            continue
        cfg_end = text.index(">>>", m.end())
        cfg = _split_top_level(text[m.end():cfg_end])
        if not 2 <= len(cfg) <= 4:
            raise ValueError(f"cannot parse launch configuration {cfg!r}")
        cfg += ["0", "nullptr"][len(cfg) - 2:]
        args_start = text.index("(", cfg_end)
        args_end = _matching(text, args_start, "(", ")")
        name, targs = m.group(1), m.group(2) or ""
        out.append(text[pos:m.start()])
        out.append(f"nat_shim::launch(dim3({cfg[0]}), dim3({cfg[1]}), {cfg[2]}, {cfg[3]}, "
                   f"{'true' if name in syncing else 'false'}, [&] {{ {name}{targs}{text[args_start:args_end]}; }})")
        pos = args_end
    out.append(text[pos:])
    return "".join(out)


def main(argv):
    out_dir, sources = argv[0], argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    for src in sources:
        with open(src) as f:
            text = f.read()
        dst = os.path.join(out_dir, os.path.splitext(os.path.basename(src))[0] + ".cpp")
        with open(dst, "w") as f:
            f.write(f'#line 1 "{src}"\n' + translate(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
