"""Instructions per weight group of the wanda_nb.infer Triton kernels, compiled for sm_90 on CPU (no GPU needed).

    pip install triton   # into a private folder on PYTHONPATH is enough
    python benchmarks/kernel_sass.py          # every autotune config of every kernel, ~1 min per 15 configs

Compiles each autotune config with Triton's own ptxas for sm_90 (H100/H200), disassembles it with the wheel's
cuobjdump, finds the main loop (the largest backward branch) and divides its instruction count by the weight
groups (2:4: 4 weights; bitmap: 1 weight position) one thread handles per iteration. An H200 keeps up with 4.8 TB/s
only if each 4.5-byte 2:4 group costs at most ~27–31 instruction slots of a thread (132 SMs × 128 slots per clock).
"""
import collections, re, subprocess, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from wanda_nb import infer as I

BIN = Path(triton.__file__).parent/'backends/nvidia/bin/cuobjdump'
TYPES = {'x_ptr': '*bf16', 'y_ptr': '*bf16', 'v_ptr': '*i32', 'm_ptr': '*i32', 'ws_ptr': '*fp32', 'cnt_ptr': '*i32',
         'vals_ptr': '*bf16', 'b_ptr': '*i32', 'o_ptr': '*i16', 'r_ptr': '*i32'}

def loop_mix(fn, config, units, tmp='/tmp/wanda_nb_kernel.cubin'):
    "(instructions per unit per thread in the main loop, opcode counts, shared bytes, registers) of one config."
    consts = config.kwargs | dict(EVEN=True, INTERP=False)
    sig = {a: 'constexpr' if a in consts else TYPES.get(a, 'i32') for a in fn.arg_names}
    attrs = {(i,): [['tt.divisibility', 16]] for i, a in enumerate(fn.arg_names) if a not in consts and a != 'M'}
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs), target=GPUTarget('cuda', 90, 32),
                       options=dict(num_warps=config.num_warps, num_stages=config.num_stages))
    Path(tmp).write_bytes(k.asm['cubin'])
    sass = subprocess.run([str(BIN), '-sass', tmp], capture_output=True, text=True).stdout
    regs = re.search(r'REG:(\d+)', subprocess.run([str(BIN), '-res-usage', tmp], capture_output=True, text=True).stdout)
    ins = [(int(m.group(1), 16), m.group(2).strip()) for m in re.finditer(r'/\*([0-9a-f]+)\*/\s+(.*?);', sass)]
    loops = [(a - int(m.group(1), 16), int(m.group(1), 16), a) for a, t in ins
             for m in [re.search(r'BRA (?:`\(.*?\))?0x([0-9a-f]+)', t)] if m and int(m.group(1), 16) < a]
    _, lo, hi = max(loops)
    body = [t for a, t in ins if lo <= a <= hi]
    ops = collections.Counter(re.sub(r'^@!?U?P\w+\s+', '', t).split()[0].split('.')[0] for t in body)
    return len(body) / (units / (32 * config.num_warps)), ops, k.metadata.shared, int(regs.group(1)) if regs else None

if __name__ == '__main__':
    print('triton', triton.__version__, '· sm_90')
    kernels = [('2:4 one token (mv)', I._sp24_mv_kernel, I._mv_configs(), lambda c: c['BN'] * c['BG8'] * 8, 'group'),
               ('2:4 tensor cores (dot)', I._sp24_dot_kernel, I._dot_configs(), lambda c: c['BN'] * c['BG8'] * 8, 'group'),
               ('bitmap one token', I._bm_mv_kernel, I._bm_configs(False), lambda c: c['BN'] * c['BW'] * 32, 'position'),
               ('bitmap tensor cores', I._bm_dot_kernel, I._bm_configs(True), lambda c: c['BN'] * c['BW'] * 32, 'position')]
    for name, fn, configs, units, unit in kernels:
        for c in configs:
            per, ops, smem, regs = loop_mix(fn, c, units(c.kwargs))
            top = ', '.join(f'{k} {v}' for k, v in ops.most_common(6))
            print(f'{name:24} {c.kwargs} w{c.num_warps} s{c.num_stages}: {per:5.1f} instructions/{unit}, '
                  f'shared {smem // 1024} KiB, {regs} registers · {top}', flush=True)
