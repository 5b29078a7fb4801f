"""The recovery study of nbs/27_recovery.ipynb on a GPU (SmolLM2-135M by default), in commands that stop before a deadline.

Records resume, so the same command is simply repeated until it prints `done`:

    python tools/recovery_gpu.py --time-only                       # ~1 min: seconds per step of each kind, projected total
    python tools/recovery_gpu.py --out $OUT/recovery --minutes 9   # the modest plan; repeat until 'done'
    python tools/recovery_gpu.py --out $OUT/recovery --plan minimal # Wanda vs magnitude 50%, masked + recon, 1M tokens
    python tools/recovery_gpu.py --out $OUT/recovery --plan seed1     # the headline curve's 2nd seed
    python tools/recovery_gpu.py --out $OUT/recovery --plan zeroshot  # zero-shot before/after (needs lm_eval there)
    python tools/recovery_gpu.py --out $OUT/recovery --plan nm70      # masked recovery at 2:4 and 70%, three pruners

Learning rates are chosen once per kind by training loss (`choose_lr`, never on evaluation windows) and written to
`<out>/lr.json`, which later commands reuse. Checkpoints go to `--ckpt` (default /tmp): a longer budget resumes from a
shorter one's checkpoint while the machine stays warm; on a fresh machine it retrains (same result, more time).
"""
import argparse, json, os, time
from pathlib import Path
import torch

PLANS = { # study() arguments; budgets are training tokens per run (recon: per block)
    'minimal': dict(budgets=(1048576,), methods=('magnitude', 'wanda'), configs=(('unstructured', 0.5),), kinds=('masked', 'recon')),
    'modest': dict(budgets=(262144, 1048576), methods=('magnitude', 'wanda', 'sparsegpt'), configs=(('unstructured', 0.5),)),
    'full': dict(budgets=(65536, 262144, 1048576), methods=('magnitude', 'wanda', 'sparsegpt')),
    'seed1': dict(budgets=(262144, 1048576), methods=('magnitude', 'wanda'), configs=(('unstructured', 0.5),),
                  kinds=('masked',), seeds=(1,)), # the headline curve's second seed
    'nm70': dict(budgets=(262144, 1048576), methods=('magnitude', 'wanda', 'sparsegpt'), configs=(('2:4', 0.5), ('unstructured', 0.7)),
                 kinds=('masked',)), # the other two configurations, the headline kind only (~7 min on an H100, estimated)
    'zeroshot': dict(budgets=(1048576,), methods=('magnitude', 'wanda'), configs=(('unstructured', 0.5),), kinds=('masked',),
                     evals=('ppl', 'kl', 'zeroshot')), # dense, unrecovered and recovered, with zero-shot (needs lm_eval)
}
# candidates for a 135M model; masked and recon extended upward after the minimal plan chose the top of
# (1e-5, 3e-5, 1e-4) and (3e-5, 1e-4, 3e-4) (results/SmolLM2-135M/logs/recovery-minimal-6f4d8cb.log)
LRS = dict(lora=(1e-4, 3e-4, 1e-3), masked=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3), recon=(3e-5, 1e-4, 3e-4, 1e-3))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='SmolLM2-135M'); ap.add_argument('--out', default='results/SmolLM2-135M/recovery')
    ap.add_argument('--ckpt', default='/tmp/wanda_nb-recovery-ckpt'); ap.add_argument('--minutes', type=float, default=9.)
    ap.add_argument('--plan', default='modest', choices=list(PLANS)); ap.add_argument('--time-only', action='store_true')
    ap.add_argument('--seqlen', type=int, default=1024); ap.add_argument('--batch-size', type=int, default=8)
    ap.add_argument('--limit', type=int, default=500, help='zero-shot items per task (zeroshot plan; 0: all)')
    ap.add_argument('--nsamples', type=int, default=128, help='calibration windows')
    ap.add_argument('--device', default='cuda'); ap.add_argument('--eval-seqlen', type=int, default=2048, help='and calibration')
    ap.add_argument('--max-windows', type=int, default=64, help='WikiText-2 evaluation windows (C4: half as many)')
    a = ap.parse_args()
    t0, until = time.time(), time.time() + 60 * a.minutes
    torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    from wanda_nb.recover import KINDS
    from wanda_nb.analysis.recovery import recovery_bench, study, choose_lr
    B = recovery_bench(a.model, 'float32', a.device, c4_windows=max(2, a.max_windows // 2), sampler='concat', nsamples=a.nsamples,
                       seqlen=a.eval_seqlen, eval_seqlen=a.eval_seqlen, corpora=('wikitext2',), max_windows=a.max_windows)
    base = dict(seqlen=a.seqlen, batch_size=a.batch_size)
    print(f"bench {time.time() - t0:.0f} s: {B.settings['eval_windows']}, calibration {B.calib}", flush=True)
    if a.time_only: return time_only(B, base)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    lr_file = out/'lr.json'
    lrs = json.loads(lr_file.read_text()) if lr_file.exists() else {}
    plan = PLANS[a.plan] | (dict(limit=a.limit or None) if 'zeroshot' in PLANS[a.plan].get('evals', ()) else {})
    for k in plan.get('kinds', KINDS): # learning rates of the kinds this plan trains only
        if k not in lrs:
            t = choose_lr(B, k, LRS[k], tokens=131072, **base)
            print(f"lr {k}:\n{t}", flush=True); lrs[k] = float(t['lr'][0]); lr_file.write_text(json.dumps(lrs, indent=1))
    settings = {k: base | dict(lr=lrs[k]) for k in plan.get('kinds', KINDS)}
    recs = study(B, out, settings=settings, ckpt=a.ckpt, until=until, log=lambda s: print(s, flush=True), **plan)
    print(f"{len(recs)} of {n_runs(plan)} runs in {time.time() - t0:.0f} s:",
          'done' if len(recs) == n_runs(plan) else 'not done, run the same command again', flush=True)

def n_runs(p:dict) -> int:
    "How many runs (records) a plan makes: dense, each configuration unrecovered, each recovery."
    from wanda_nb.recover import KINDS
    cf = len(p.get('configs', [0, 0, 0])) * len(p['methods'])
    return 1 + cf * (1 + len(p.get('kinds', KINDS)) * len(p.get('seeds', (0,))) * len(p['budgets']))

def time_only(B, base):
    "Seconds per training step of each kind on one pruned configuration, the eval and prune seconds, and the projections."
    from wanda_nb.experiment import run_one
    from wanda_nb.recover import recover, KINDS
    t = time.time(); run_one(B, 'sparsegpt', 0.5, evals=()); sgpt = time.time() - t
    t = time.time(); r = run_one(B, 'wanda', 0.5); ev = r['timings']['eval']; wanda = r['timings']['prune_total']
    state = {k: v.clone() for k, v in B.model.state_dict().items()}
    per, sync = {}, (torch.cuda.synchronize if torch.cuda.is_available() else lambda: None)
    for k in KINDS: # the difference of a 4-step and a 20-step run: per-step time without the fixed setup
        ts = []
        for n in (4, 20):
            B.model.load_state_dict(state); sync(); t = time.time()
            recover(B.model, B.dense, B.tokenizer, k, tokens=n * base['batch_size'] * base['seqlen'], **base); sync()
            ts.append(time.time() - t)
        per[k] = (ts[1] - ts[0]) / 16 # s per step (recon: one step of every block)
    tok_s = {k: base['batch_size'] * base['seqlen'] / v for k, v in per.items()}
    print(json.dumps(dict(s_per_step=per, tokens_per_s=tok_s, eval_s=ev, prune_s=dict(wanda=wanda, sparsegpt=sgpt)), indent=1))
    for name, p in PLANS.items(): # (records found from an earlier plan cost nothing; not counted here)
        cf = len(p.get('configs', [0, 0, 0])) * len(p['methods']); kinds = p.get('kinds', KINDS); big = max(p['budgets'])
        train = cf * len(p.get('seeds', (0,))) * sum(big / tok_s[k] if k != 'recon' else sum(p['budgets']) / tok_s[k]
                                                       for k in kinds)
        runs = n_runs(p)
        print(f"plan {name}: {runs} runs, about {(train + runs * (2 * ev + sgpt)) / 60:.1f} min "
              f"(training {train / 60:.1f}, evaluation and pruning at most {runs * (2 * ev + sgpt) / 60:.1f}; zero-shot not included)")

if __name__ == '__main__': main()
