# scripts/cuda-emulate: rewrites a backend/cuda .cu or .cuh file into C++ that g++ compiles against fake/
# (the emulated runtime): kernel launches become emulate_launch calls (through a generic lambda, so a
# template kernel deduces its arguments as in a real launch), the dynamic shared array becomes the
# emulator's per-block buffer, and each static `__shared__ T name[...]` a per-block array of the
# emulator. Usage: to_host.py IN OUT
import re
import sys

source = open(sys.argv[1]).read()
source = source.replace("extern __shared__ float smem[];", "float* smem = cuda_emulate::shared_memory;")
source = re.sub(r"__shared__\s+([\w:]+(?:\s+[\w:]+)*)\s+(\w+)((?:\[[^\]]+\])+);",
                lambda m: f"auto& {m[2]} = cuda_emulate::block_shared<{m[1]}{m[3]}, __LINE__>();", source)
source = re.sub(r"([\w:]+(?:<[^<>;]*>)?)<<<(.*?)>>>\(",
                lambda m: f"emulate_launch([&](const auto&... emulated) {{ {m[1]}(emulated...); }}, {m[2]}, ",
                source, flags=re.S)
open(sys.argv[2], "w").write(source)
