#!/usr/bin/env python3
"""Give the stories260K allocation records made at 30b35c1 the ids the current code computes for the same runs.

Why: c280af3 (merged at ca9761d, after the allocation study ran) made a run's identity its content: the weights'
fingerprint replaced the model's name, the evaluation corpora's and calibration windows' fingerprints joined it, the
calibration's source, tokenizer, documents and draw count moved to `provenance`, and `extra.evals` left it (a record
now grows by the evaluations it lacks). The study's runs did not change: the same configurations rerun now reproduce
the committed metrics bit for bit (`--check`). Only their ids did, so `study` would have run all 285 again.

How: `study` is called exactly as nbs/26's slow cell calls it, with `run_one`'s record lookup replaced (nothing is
pruned or evaluated; a search that would run, or a run without a committed record, is an error). For each run, the
configuration `run_one` builds now is turned back into the 30b35c1 form (model name instead of fingerprints, the
calibration's provenance inside it, `extra.evals`); the committed record of that id must exist, and is written under
the current id with its metrics, timings, environment (commit 30b35c1) and date unchanged, the current
configuration and provenance, and a note in `provenance.adopted`. Every committed record must be claimed exactly once.
Searches (`search/`) keep their ids: `learn` computes them as before. `metrics.allocation` (recorded by runs since
cfebb4c) is not added: the schedule each run was given is in `extra.allocation`, and the zeros it got in `metrics.layers`.

    PYTHONPATH=$PWD python tools/rekey_allocation.py           # re-key, then remove the old files
    PYTHONPATH=$PWD python tools/rekey_allocation.py --check   # then rerun one (sparsity, seed): equal metrics
"""
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path
root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root))
import torch
import wanda_nb.experiment as X
import wanda_nb.analysis.allocation as A
from wanda_nb.records import run_record, record_id, save_record, environment, find_record

CALIB_KEYS = ('corpus', 'split', 'sampler', 'nsamples', 'seqlen', 'seed') # the calibration fields every record has
EVALS = ('ppl', 'kl') # what the study evaluates (its default), recorded as extra.evals before c280af3

def old_config(cfg:dict) -> dict:
    "The configuration `run_one` built for the same run before c280af3."
    c = {k: v for k, v in cfg.items() if k not in ('weights', 'corpora', 'provenance')}
    if c['calibration'] is not None:
        c['calibration'] = {k: c['calibration'][k] for k in CALIB_KEYS} | cfg['provenance']['calibration']
    return c | dict(extra=c['extra'] | dict(evals=sorted(EVALS)))

def rekeyer(moved:list, current:list, commit:str):
    "A stand-in for `find_record` in `run_one`: the current record, or the 30b35c1 one written under the current id."
    def find(out, **cfg):
        if (r := find_record(out, **cfg)) is not None: current.append(r['id']); return r
        f = Path(out)/f"{record_id(run_record(**old_config(cfg)))}.json"
        if not f.exists():
            raise LookupError(f"no committed record for {cfg['method']} {cfg['sparsity']:.4f} {cfg['extra']}")
        old = json.loads(f.read_text())
        rec = run_record(**cfg, metrics=old['metrics'], timings=old['timings'])
        rec |= {k: old[k] for k in ('device', 'versions', 'git', 'date')}
        rec['provenance']['adopted'] = dict(identity=f"recorded as {old['id']} under the identity before c280af3 "
            f"(model name, calibration provenance and extra.evals in it; no weights, corpora or window fingerprints); "
            f"given its current id by tools/rekey_allocation.py at {commit}, which matched it to this configuration")
        save_record(rec, out); f.unlink(); moved.append(old['id'])
        return rec
    return find

def no_search(*a, **k): raise LookupError("a search has no committed record: it would run")

def bench_26():
    "The bench of nbs/26's slow cells."
    torch.manual_seed(0); torch.set_num_threads(1)
    return X.bench('stories260K', dtype='float32', device='cpu', nsamples=32, seqlen=128,
                   corpora=('stories', 'wikitext2'), max_windows=32)

def check(b, out:Path, target:float, seed:int):
    "Rerun every run of one (target, seed) into a temporary folder: same ids, and every committed metric equal."
    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(out/'search', Path(d)/'search') # the learned runs reuse their searches, as in the study
        t = time.time(); A.study(b, d, sparsities=(target,), seeds=(seed,))
        new = [json.loads(f.read_text()) for f in Path(d).glob('*.json')]
        for r in new:
            f = out/f"{r['id']}.json"
            assert f.exists(), f"rerun {r['id']} ({r['method']} {r['extra']}) has no committed record"
            old = json.loads(f.read_text())['metrics']
            bad = [k for k in old if old[k] != r['metrics'].get(k)]
            assert not bad, f"{r['id']}: {bad} differ"
        print(f"check: {len(new)} runs at {target:.0%}, seed {seed} rerun in {time.time() - t:.0f} s: "
              f"same ids, every committed metric equal")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(root/'results'/'stories260K'/'allocation'))
    ap.add_argument('--check', action='store_true', help='rerun one (sparsity, seed) slice and compare its metrics')
    ap.add_argument('--check-at', nargs=2, type=float, default=(0.8, 1), metavar=('TARGET', 'SEED'))
    a = ap.parse_args()
    out, env = Path(a.out), environment()['git'] or {}
    assert not env.get('dirty'), "commit first: the note names the commit the re-keying ran from"
    before = {f.stem for f in out.glob('*.json')}
    b, moved, current = bench_26(), [], []
    find, search = X.find_record, A.coordinate_search
    X.find_record, A.coordinate_search = rekeyer(moved, current, env.get('commit', '?')), no_search
    try: A.study(b, out)
    finally: X.find_record, A.coordinate_search = find, search
    left = before - set(moved) - set(current)
    print(f"{len(moved)} records re-keyed, {len(set(current) & before)} already under their current id, "
          f"{len(left)} committed records claimed by no run of the study: {sorted(left)}")
    assert len(set(moved)) == len(moved) and not left
    if a.check: check(b, out, a.check_at[0], int(a.check_at[1]))
