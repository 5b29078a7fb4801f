"""Make the analysis records of one model on a GPU, in priority order, within a time budget; resumable.

    python tools/gpu_study.py --model SmolLM2-135M --out $OUT/results --commit <sha> --budget-s 540 \
        --plan main,tasks,why,layerwise,calibration,sweep

Each study is the one its analysis notebook runs (`wanda_nb.analysis.<study>.study`), on the field's full protocol
for the model (SmolLM2-135M: C4 calibration, 128 windows × 2,048 tokens, concat sampler; the whole WikiText-2 test
split at 2,048 tokens). Records land in `<out>/<model>/<experiment>/<id>.json` exactly as the notebooks write them,
so the notebooks and `wanda_nb_report` read them and a later call resumes where this one stopped: a run whose record
exists is not recomputed. When the budget is spent the current run is abandoned (records are written atomically:
nothing half-written stays) and the script packs `<out>` into `records.tar.gz` next to it with a log of what ran.
"""
import argparse, json, os, signal, subprocess, sys, tarfile, time, traceback
from pathlib import Path

PLANS = dict(   # study -> (what it runs, roughly) — the order given by --plan is the priority
    main='dense; magnitude, wanda, sparsegpt, ria at 50%, 70% and 2:4, three calibration seeds (the headline numbers)',
    tasks='zero-shot, all eight tasks in full: dense and magnitude/wanda/sparsegpt/ria at 50% and 2:4 (seed 0)',
    why='masks on dense inputs: wanda, per-row and per-matrix magnitude with per-layer rows; hybrids per input group',
    layerwise='wanda 50%/70% with reconstruction errors, global magnitude, single-block sensitivity, OWL 70%',
    calibration='corpus grid (wikitext2 validation, c4 held-out half, stdlib code) at 50% and 70%, three seeds',
    sweep='the rest of the sweep: 10-90% and 4:8, seed 0',
    owl='OWL+Wanda at 50/60/70% (and uniform Wanda at 60%), the seeds of --owl-seeds',
    quant='pruning + quantization: wanda/sparsegpt × 50%/2:4 × int4-g64/int4, prune→GPTQ and joint, the Q4_1 model as it is; int3/int3-g64 alone',
    allocation='uniform / OWL / global / learned schedule at 50% then 70%, calibration seeds 0-2 (the allocation study, SmolLM2 plan)',
    sensitivity='single-block sensitivity: Wanda at 50% and 70%, each block pruned alone (seed 0; masks from one dense-statistics pass, nbs/26 `single_blocks`)',
    recovery='fine-tuning with the mask held fixed (the recovery study, SmolLM2 plan)',
    **{'allocation-zeroshot': 'zero-shot (all eight tasks, --tasks-limit) of dense, uniform, OWL, global and learned Wanda at the '
                              'sparsity where allocations differ most, seed 0; the allocation study\'s searches reused'},
)

class Budget(Exception): "The time budget is spent."

def _alarm(s, f): raise Budget()

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='SmolLM2-135M'); ap.add_argument('--out', required=True)
    ap.add_argument('--commit', required=True, help='the commit of the tree this runs (the GPU copy has no .git)')
    ap.add_argument('--budget-s', type=int, default=540); ap.add_argument('--plan', default='main,tasks,why,layerwise,calibration,sweep')
    ap.add_argument('--dtype', default='float32', help='float32 keeps the Q4_1-dequantized weights exact')
    ap.add_argument('--batch-size', type=int, default=16); ap.add_argument('--block-hybrids', action='store_true')
    ap.add_argument('--nsamples', type=int, default=128); ap.add_argument('--seqlen', type=int, default=2048)
    ap.add_argument('--eval-seqlen', type=int, default=2048); ap.add_argument('--max-windows', type=int, default=0,
                    help='evaluation windows per corpus (0: all; fewer is a reduced protocol, recorded as such: the report keeps it apart)')
    ap.add_argument('--why-minimal', action='store_true', help='the why study: only the three dense-input runs (no hybrids, no sequential run)')
    ap.add_argument('--tasks-methods', default='magnitude,wanda,sparsegpt,ria', help='the tasks study: methods, in priority order')
    ap.add_argument('--tasks-settings', default='0.5:unstructured,0.5:2:4', help='the tasks study: sparsity:structure pairs')
    ap.add_argument('--tasks-limit', type=int, default=0, help='the tasks study: first N items of each task (0: all; recorded)')
    ap.add_argument('--zs-batch-size', type=int, default=64, help='zero-shot requests per forward pass (short sequences: more than --batch-size windows)')
    ap.add_argument('--sweep-methods', default='', help='the sweep study: methods, in priority order (default: every pruner)')
    ap.add_argument('--owl-seeds', default='0', help='the owl study: calibration seeds, in priority order')
    a = ap.parse_args()
    t0, out, log = time.time(), Path(a.out), []
    os.environ['WANDA_NB_COMMIT'] = a.commit; os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
    signal.signal(signal.SIGALRM, _alarm); signal.alarm(a.budget_s)
    say = lambda m: (print(f"[{time.time() - t0:6.0f} s] {m}", flush=True), log.append(dict(t=round(time.time() - t0, 1), msg=m)))
    try:
        import torch
        from wanda_nb.experiment import bench
        dev = 'cuda' if torch.cuda.is_available() else 'cpu'
        say(f"torch {torch.__version__}, device {dev} {torch.cuda.get_device_name() if dev == 'cuda' else ''}")
        B = bench(a.model, a.dtype, dev, calib='c4', sampler='concat', nsamples=a.nsamples, seqlen=a.seqlen,
                  eval_seqlen=a.eval_seqlen, corpora=('wikitext2',), max_windows=a.max_windows)
        say(f"bench: calibration {B.calib}, windows {B.settings['eval_windows']}")
        root = out/a.model.replace('/', '--')
        for st in a.plan.split(','):
            say(f"study {st}: {PLANS[st]}")
            _run(st, B, root, a, say)
            say(f"study {st} done")
    except Budget: say('budget spent: stopping (records written so far are complete)')
    except Exception: say('error:\n' + traceback.format_exc())
    finally:
        signal.alarm(0)
        (out/'gpu_study.log').parent.mkdir(parents=True, exist_ok=True)
        (out/'gpu_study.log').write_text(json.dumps(dict(argv=sys.argv, commit=a.commit, log=log), indent=1))
        with tarfile.open(out.parent/'records.tar.gz', 'w:gz') as tf: tf.add(out, arcname='results')
        n = sum(1 for _ in out.rglob('*.json'))
        print(f"packed {n} files into {out.parent/'records.tar.gz'}", flush=True)

def _run(st, B, root, a, say):
    from wanda_nb.experiment import run_one
    from wanda_nb.analysis import sweep, tasks, why, layerwise, calibration
    from wanda_nb.methods import METHODS
    bs = a.batch_size
    if st == 'main':
        run_one(B, 'dense', out=root/'sweep', experiment='sweep', batch_size=bs)
        for m in ('wanda', 'magnitude', 'ria', 'sparsegpt'):
            for seed in ((0, 1, 2) if METHODS[m].needs != 'none' else (0,)):
                cal = sweep.reseeded(B, seed)
                for s, stc in ((0.5, 'unstructured'), (0.7, 'unstructured'), (0.5, '2:4')):
                    r = run_one(B, m, s, stc, calib=cal, out=root/'sweep', experiment='sweep', batch_size=bs)
                    say(f"  {m} {stc} {s} seed {seed}: ppl {r['metrics']['ppl']['wikitext2']:.3f} (prune {r['timings'].get('prune_total', 0):.1f} s, eval {r['timings'].get('eval', 0):.1f} s)")
    elif st == 'tasks':
        settings = [(float(x.split(':', 1)[0]), x.split(':', 1)[1]) for x in a.tasks_settings.split(',')]
        tasks.study(B, root/'tasks', methods=a.tasks_methods.split(','), settings=settings, seeds=(0,),
                    limit=a.tasks_limit or None, batch_size=bs, zs_batch_size=a.zs_batch_size)
    elif st == 'why': why.study(B, root/'why', block_hybrids=a.block_hybrids and not a.why_minimal, hybrids=not a.why_minimal,
                                sequential=not a.why_minimal)
    elif st == 'layerwise': layerwise.study(B, root/'layerwise')
    elif st == 'calibration':
        C = calibration.calib_bench(a.model, a.dtype, B.model.device.type, max_windows=64)
        calibration.study(C, root/'calibration', seeds=(0, 1, 2), sizes=False)
    elif st == 'sweep': sweep.study(B, root/'sweep', methods=a.sweep_methods.split(',') if a.sweep_methods else None, seeds=(0,))
    elif st == 'quant':
        from wanda_nb.analysis import quantization as Q
        Q.study(B, root/'quantization', **Q.SMOLLM2['grid'])
        # quantization alone below 4 bits: the rivals at no more bits of the pruned-and-quantized runs (claim 2 of nbs/28)
        Q.study(B, root/'quantization', specs=('int3', Q.specs_for(a.model)[1].replace('int4', 'int3')), methods=(), quantizers=('gptq',),
                progress=False)
    elif st == 'allocation':
        from wanda_nb.analysis import allocation as A
        A.study(B, root/'allocation', **A.SMOL) # target-major: seeds 0-2 at 50% (a verdict) before 70%
    elif st == 'sensitivity':
        from wanda_nb.analysis import allocation as A
        A.single_blocks(B, root/'allocation', sparsities=(0.5, 0.7), seed=0, batch_size=bs)
    elif st == 'allocation-zeroshot':
        from wanda_nb.analysis import allocation as A
        s = A.most_different(A.allocation_frame(root/'allocation'))
        say(f"  allocations differ most at {s:.0%}")
        A.zeroshot_study(B, root/'allocation', sparsity=s, limit=a.tasks_limit or None,
                         **{k: A.SMOL[k] for k in ('search', 'search_windows', 'score_windows')})
    elif st == 'recovery':
        from wanda_nb.analysis import recovery as R
        R.study(B, root/'recovery', **getattr(R, 'SMOLLM2', {}))
    elif st == 'owl':
        for seed in map(int, a.owl_seeds.split(',')):
            cal = sweep.reseeded(B, seed) # uniform Wanda at 60% with the same seed: the sweep has seed 0 only
            run_one(B, 'wanda', 0.6, calib=cal, out=root/'sweep', experiment='sweep', batch_size=bs)
            for s in (0.5, 0.6, 0.7):
                r = run_one(B, 'wanda', s, allocation='owl', calib=cal, out=root/'layerwise', experiment='layerwise', batch_size=bs)
                say(f"  owl wanda {s} seed {seed}: ppl {r['metrics']['ppl']['wikitext2']:.3f}")

if __name__ == '__main__': main()
