"""How fast one GPU prunes a Llama-3.1-8B-shaped model, against the official schedule and the roofline.

    python benchmarks/prune_speed.py --out benchmarks/results

Model: the real Llama-3.1-8B configuration with random bf16 weights (time and memory do not depend on the
values). Calibration: 128 × 2048 random token ids (the sampler is not what is timed). For each setting the wall
time excludes model creation and is split into capture / statistics / mask / re-forward, with peak GPU memory.

- `wanda_nb` (whole model on the GPU, calibration samples batched through each block),
- `wanda_nb --offload` (model in CPU memory, one block at a time on the GPU),
- `official schedule`: the loop of locuslab/wanda `prune_wanda` re-expressed for current transformers (whole
  model on the GPU, every sample through every block one at a time, running-mean norm statistics, the Python
  loop over M-groups for N:M),
- roofline: two forward passes of all calibration tokens through the decoder blocks at the measured bf16
  matmul rate (statistics and masks cost ~nothing in comparison).
"""
import argparse, gc, time
import torch, torch.nn as nn
from common import cuda_time, env_facts, write_results, md_table
from wanda_nb.models import shaped_model
from wanda_nb.prune import prune_model, decoder_blocks, block_linears

def bf16_rate(n=8192):
    "Measured dense bf16 matmul rate in FLOP/s on an n×n×n product of random data."
    a, b = torch.randn(n, n, device='cuda', dtype=torch.bfloat16), torch.randn(n, n, device='cuda', dtype=torch.bfloat16)
    ms = cuda_time(lambda: a @ b, warmup=3, reps=10)
    return 2 * n**3 / (ms / 1e3)

def roofline_s(model, nsamples, seqlen, rate):
    "Seconds for two forward passes of nsamples×seqlen tokens through all decoder blocks at `rate` FLOP/s."
    cfg, blocks = model.config, decoder_blocks(model)
    lin = sum(m.weight.numel() for b in blocks for m in block_linears(b).values())
    attn = len(blocks) * 2 * 2 * seqlen * cfg.hidden_size / 2   # QKᵀ and AV, causal half, per token
    flops_per_token = 2 * lin + attn
    return 2 * nsamples * seqlen * flops_per_token / rate

class _Stop(Exception): pass

@torch.no_grad()
def official_schedule(model, ids, sparsity, nm=None):
    "locuslab/wanda `prune_wanda`, re-expressed: one sample at a time through each block; seconds per phase."
    t, sync = {}, torch.cuda.synchronize
    blocks, n = decoder_blocks(model), ids.shape[0]
    inps, kw = [], {}
    def catch(mod, args, kwargs):
        inps.append(args[0] if args else kwargs['hidden_states']); kw.update({k: v for k, v in kwargs.items() if k != 'hidden_states'}); raise _Stop
    h = blocks[0].register_forward_pre_hook(catch, with_kwargs=True)
    sync(); t0 = time.time()
    for j in range(n):
        try: model(ids[j:j+1], use_cache=False)
        except _Stop: pass
    h.remove(); sync(); t['capture'] = time.time() - t0
    t['stats'] = t['mask'] = t['forward'] = 0.
    for blk in blocks:
        subset = block_linears(blk)
        rows = {k: torch.zeros(m.weight.shape[1], device=m.weight.device) for k, m in subset.items()}; cnt = {k: 0 for k in subset}
        def add(name):
            def f(mod, args, out):
                x = args[0].reshape(-1, args[0].shape[-1]).float(); b = 1
                rows[name] *= cnt[name] / (cnt[name] + b); cnt[name] += b
                rows[name] += torch.norm(x, p=2, dim=0) ** 2 / cnt[name]
            return f
        hs = [m.register_forward_hook(add(k)) for k, m in subset.items()]
        sync(); t0 = time.time()
        for j in range(n): blk(inps[j], **kw)
        for hh in hs: hh.remove()
        sync(); t['stats'] += time.time() - t0; t0 = time.time()
        for k, m in subset.items():
            W = m.weight.data
            metric = W.abs() * torch.sqrt(rows[k].reshape(1, -1))
            mask = torch.zeros_like(metric, dtype=torch.bool)
            if nm:
                pn, pm = nm
                for ii in range(0, metric.shape[1], pm):
                    mask.scatter_(1, ii + torch.topk(metric[:, ii:ii+pm].float(), pn, dim=1, largest=False)[1], True)
            else:
                idx = torch.sort(metric, dim=-1, stable=True)[1][:, :int(metric.shape[1] * sparsity)]
                mask.scatter_(1, idx, True)
            W[mask] = 0
        sync(); t['mask'] += time.time() - t0; t0 = time.time()
        outs = []
        for j in range(n):
            o = blk(inps[j], **kw); outs.append(o[0] if isinstance(o, tuple) else o)
        inps = outs
        sync(); t['forward'] += time.time() - t0
    t['total'] = sum(t.values())
    return t

def run(label, fn, where='cuda'):
    "Build the 8B-shaped model on the GPU (fast random init), move it to `where`, then time `fn(model)`."
    gc.collect(); torch.cuda.empty_cache()
    model = shaped_model('meta-llama/Llama-3.1-8B', dtype=torch.bfloat16, device='cuda').to(where)
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    t0 = time.time(); timings = fn(model); torch.cuda.synchronize(); wall = time.time() - t0
    r = dict(setting=label, wall_s=wall, **{f'{k}_s': v for k, v in timings.items() if k != 'total'},
             peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30, model_on_gpu_gib=base / 2**30)
    print(r, flush=True)
    del model; gc.collect(); torch.cuda.empty_cache()
    return r

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='benchmarks/results')
    ap.add_argument('--nsamples', type=int, default=128)
    ap.add_argument('--seqlen', type=int, default=2048)
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--skip-official', action='store_true')
    a = ap.parse_args()
    assert torch.cuda.is_available(), 'this benchmark needs a CUDA GPU'
    facts = env_facts()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 128256, (a.nsamples, a.seqlen), generator=g)
    ours = lambda **kw: (lambda m: prune_model(m, ids.cuda() if not kw.get('offload') else ids, batch_size=a.batch_size, device='cuda', progress=False, **kw).timings)
    rows = []
    for method, structure in [('wanda', None), ('wanda', '2:4'), ('magnitude', None)]:
        lab = f'{method} {structure or "50%"}'
        rows.append(run(f'wanda_nb · {lab}', ours(method=method, sparsity=None if structure else 0.5, structure=structure)))
    rows.append(run('wanda_nb · wanda 50% · offload (blocks streamed from CPU)', ours(method='wanda', sparsity=0.5, offload=True), where='cpu'))
    if not a.skip_official:
        rows.append(run('official schedule · wanda 50%', lambda m: official_schedule(m, ids.cuda(), 0.5)))
        rows.append(run('official schedule · wanda 2:4', lambda m: official_schedule(m, ids.cuda(), 0.5, (2, 4))))
    rate = bf16_rate()
    probe = shaped_model('meta-llama/Llama-3.1-8B', dtype=torch.bfloat16, device='meta')
    roof = roofline_s(probe, a.nsamples, a.seqlen, rate)
    blk_gib = sum(p.numel() for p in decoder_blocks(probe)[0].parameters()) * 2 / 2**30
    act_gib = a.nsamples * a.seqlen * probe.config.hidden_size * 2 * 2 / 2**30
    res = dict(env=facts, nsamples=a.nsamples, seqlen=a.seqlen, batch_size=a.batch_size, bf16_tflops=rate / 1e12,
               roofline_s=roof, block_gib=blk_gib, activations_gib=act_gib, rows=rows)
    md = (f"# Pruning speed on a Llama-3.1-8B-shaped model\n\n{facts['date']} · {facts['gpu']} · torch {facts['torch']} (CUDA {facts['cuda']}) · commit {facts['commit']}\n\n"
          f"Command: `{facts['command']}`\n\nModel: real Llama-3.1-8B configuration, random bf16 weights. Calibration: {a.nsamples} × {a.seqlen} tokens, "
          f"batch {a.batch_size} through each block. Wall time excludes model creation.\n\n" +
          md_table(rows, ['setting', 'wall_s', 'capture_s', 'stats_s', 'mask_s', 'forward_s', 'peak_gpu_gib']) +
          f"\nRoofline (two forward passes of all calibration tokens at the measured {rate/1e12:.0f} TFLOP/s bf16): {roof:.2f} s. "
          f"One block's weights: {blk_gib:.2f} GiB; calibration activations (inputs + outputs, bf16): {act_gib:.2f} GiB.\n")
    for p in write_results(a.out, 'prune_speed', res, md): print('wrote', p)
    print(md)
