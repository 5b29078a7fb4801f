"""What the dense reference of `kl_to_dense` costs: the dense model run side by side against its cached head inputs.

    python benchmarks/eval_speed.py --commit <sha> --out benchmarks/results    # one GPU, ~1 min
    python benchmarks/eval_speed.py --device cpu --tiny --out /tmp/cpu          # the logic, on a CPU

Model: SmolLM2-135M's shape (30 blocks, d = 576, 9 heads / 3 KV heads, MLP 1,536, vocabulary 49,152, tied head) with
random float32 weights, and a copy with 50% of every decoder linear's smallest weights zeroed as the "pruned" model;
148 windows of 2,048 random token ids (the size of the whole WikiText-2 test split in SmolLM2 tokens), float32
without TF32, batch 8 (2 windows per pass: the float32 logits limit). Every timed evaluation is one call of
`kl_to_dense`, as the studies make it. The log-probabilities of the dense model would be 60 GB, so before this cache
the studies ran the dense model side by side. Results: the same numbers to the bit (checked), and the seconds.
"""
import argparse, sys, time
import torch
from common import env_facts, write_results, md_table
from transformers import LlamaConfig, LlamaForCausalLM
from wanda_nb.metrics import kl_to_dense, dense_reference, DenseHidden

SMOL = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
            vocab_size=49152, max_position_embeddings=8192, tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=100000.)
TINY = SMOL | dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   vocab_size=4096)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', required=True); ap.add_argument('--commit'); ap.add_argument('--device', default='cuda')
    ap.add_argument('--tiny', action='store_true', help='a 2-block model and 8 windows of 256 tokens (CPU check)')
    ap.add_argument('--windows', type=int, default=148); ap.add_argument('--seqlen', type=int, default=2048)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False; torch.manual_seed(0)
    cfg, n, T = (TINY, 8, 256) if a.tiny else (SMOL, a.windows, a.seqlen)
    dense = LlamaForCausalLM(LlamaConfig(**cfg)).to(a.device).eval()
    pruned = LlamaForCausalLM(LlamaConfig(**cfg)).to(a.device).eval(); pruned.load_state_dict(dense.state_dict())
    with torch.no_grad():
        for m in pruned.model.layers.modules():
            if isinstance(m, torch.nn.Linear):
                w = m.weight; w.masked_fill_(w.abs() <= w.abs().flatten().kthvalue(w.numel() // 2).values, 0)
    win = torch.randint(cfg['vocab_size'], (n, T))
    sync = torch.cuda.synchronize if a.device == 'cuda' else (lambda: None)
    def timed(f):
        sync(); t = time.perf_counter(); r = f(); sync(); return r, time.perf_counter() - t
    kl_to_dense(pruned, dense, win[:2]) # warm-up: kernels chosen, memory allocated
    side, t_side = timed(lambda: kl_to_dense(pruned, dense, win))
    ref, t_build = timed(lambda: dense_reference(dense, win, max_gib=0.01 if a.tiny else 2.)) # tiny: log-probs would fit in 2 GiB
    cached, t_cached = timed(lambda: kl_to_dense(pruned, ref, win))
    same = side == cached
    rows = [dict(setting='dense model side by side (before)', seconds=round(t_side, 2), kl=side['kl']),
            dict(setting=f'head inputs cached ({type(ref).__name__}), per evaluation', seconds=round(t_cached, 2), kl=cached['kl']),
            dict(setting='building the cache (once per bench)', seconds=round(t_build, 2), kl=None)]
    res = dict(env=env_facts(a.commit), shape='SmolLM2-135M' if not a.tiny else 'tiny', windows=n, seqlen=T,
               reference=type(ref).__name__, identical=same, speedup=t_side / t_cached, rows=rows,
               cache_gib=ref.hidden.numel() * ref.hidden.element_size() / 2**30 if isinstance(ref, DenseHidden) else None)
    e = res['env']
    md = (f"# Evaluation: the dense reference of KL to dense\n\n{e['date']} · {e['gpu']} · torch {e['torch']} · commit {e['commit']}\n\n"
          f"Command: `{e['command']}`\n\n{__doc__.split(chr(10) + chr(10), 2)[2].strip()}\n\n"
          f"{md_table(rows, ['setting', 'seconds', 'kl'])}\n\nResults identical to the bit: **{same}**; "
          f"speed-up per evaluation {t_side / t_cached:.2f}×; cache {res['cache_gib'] or 0:.2f} GiB in host memory.\n")
    print(md)
    write_results(a.out, 'eval_speed' + ('_cpu' if a.device == 'cpu' else ''), res, md)
    if not same: sys.exit('the cached reference did not reproduce the side-by-side result')

if __name__ == '__main__': main()
