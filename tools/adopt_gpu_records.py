#!/usr/bin/env python3
"""Adopt the records a GPU call brought back (`records.tar.gz` from tools/gpu/study.sh) into `results/<model>/`.

Two things the GPU copy cannot know are set here, and each change is written into the record's `provenance`:
- `model`: a run made through `--model <converted folder>` names the folder; `--model-name` gives the short name
  (`SmolLM2-135M`). The id does not change: a record with `weights` (its content fingerprint) is not identified by name.
- `git`: the commit the call was made from (`--commit`, the one `gpu_study.py --commit` logged); a copy's own `.git`
  is not the checkout the files came from (the device's copy sat in a stale one). Only with `--commit`.
- `weights`: with `--reweigh OLD NEW`, records fingerprinted OLD take fingerprint NEW and the id that follows. Only for
  two fingerprints of the same weights, shown by a rerun: `SmolLM2-135M` run through its converted folder is
  `sha256:` of the folder's files, loaded by name it is `state:` of the tensors; the same configurations rerun by name
  reproduced the folder's perplexities to 1e-8 (results/SmolLM2-135M/logs). Records that already carry NEW go first,
  so a rerun wins over the renamed old record of the same configuration.
Nothing is overwritten: a record already present with the same id is left alone and reported.

    python tools/adopt_gpu_records.py /work/.device/4/records.tar.gz --model-name SmolLM2-135M --commit 5d6123f...
"""
import argparse, json, sys, tarfile, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from wanda_nb.records import record_id, save_record

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('tar'); p.add_argument('--model-name', required=True); p.add_argument('--commit')
    p.add_argument('--results', default='results'); p.add_argument('--reweigh', nargs=2, metavar=('OLD', 'NEW'))
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        with tarfile.open(a.tar) as t: t.extractall(d, filter='data')
        files = [f for f in Path(d).rglob('*.json') if f.name != 'gpu_study.log']
        recs = [json.loads(f.read_text()) for f in sorted(files)]
        recs = [r for r in recs if {'model', 'method', 'sparsity'} <= set(r)]
        old = lambda r: a.reweigh is not None and r.get('weights') == a.reweigh[0]
        new = kept = 0
        for rec in sorted(recs, key=old):
            rid = rec['id']
            assert record_id(rec) == rid, f"{rid}: its id does not match its content"
            notes = {}
            if rec['model'] != a.model_name:
                notes['model'] = f"run as --model {rec['model']}; named {a.model_name} by tools/adopt_gpu_records.py"
                rec['model'] = a.model_name
            if a.commit and (rec.get('git') or {}).get('commit') != a.commit:
                notes['git'] = f"recorded {rec.get('git')}; the call was made from commit {a.commit} (gpu_study --commit)"
                rec['git'] = dict(commit=a.commit, dirty=False, source='gpu_study --commit (adopted)')
            if old(rec):
                notes['weights'] = f"fingerprint {a.reweigh[0]} (id {rid}) is {a.reweigh[1]}: the same weights, see tools/adopt_gpu_records.py"
                rec['weights'] = a.reweigh[1]; rid = record_id(rec)
            if notes: rec['provenance'] = (rec.get('provenance') or {}) | {'adopted': notes}
            assert record_id(rec) == rid, f"{rid}: renaming changed the id (a record without weights?)"
            out = Path(a.results)/a.model_name/rec.get('experiment', 'main')/f'{rid}.json'
            if out.exists(): kept += 1; continue
            save_record(rec, out.parent); new += 1
        print(f"{new} records adopted into {a.results}/{a.model_name}/, {kept} already there (left alone)")

if __name__ == '__main__': main()
