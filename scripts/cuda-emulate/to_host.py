# scripts/cuda-emulate: rewrites a backend/cuda .cu file into C++ that g++ compiles against fake/
# (the emulated runtime): kernel launches become emulate_launch calls and the dynamic shared array
# becomes the emulator's per-block buffer. Usage: to_host.py IN.cu OUT.cpp
import re
import sys

source = open(sys.argv[1]).read()
source = source.replace("extern __shared__ float smem[];", "float* smem = cuda_emulate::shared_memory;")
source = re.sub(r"(\w+(?:<[^<>]*>)?)<<<(.*?)>>>\(", r"emulate_launch(\1, \2, ", source, flags=re.S)
open(sys.argv[2], "w").write(source)
