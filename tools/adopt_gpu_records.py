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

`--weights-source SOURCE` also writes `provenance.weights_source` (where the weights came from, as
`wanda_nb.models.source_label` writes it), and `--backfill` does that alone to the records already under
`results/<model>/`. Either only after loading `--model-name` here: the loader must report exactly SOURCE, and the
source goes only into records whose `weights` equal the loaded model's fingerprint, computed as the bench computes it
(`wanda_nb.experiment.weights_fields`). A record without `weights`, with other weights, or with another source already
is left as it is, and counted. Only `provenance` changes, so no id does.

    python tools/adopt_gpu_records.py /work/.device/4/records.tar.gz --model-name SmolLM2-135M --commit 5d6123f...
    python tools/adopt_gpu_records.py --backfill --model-name stories260K \\
        --weights-source 'mirror:models/stories260K/stories260K.bin (sha256:b0a507e7ad0f...)'

`--rekey-searches` (with `--weights-source`, no tar) brings the learned-allocation searches written before
`analysis.allocation._search_config` took its present form to the identity it gives them now: a search without
`weights` takes the loaded model's fingerprint and source (only where every other record of the folder carries exactly
that fingerprint), and the calibration facts of one machine and version (`SEARCH_PROVENANCE`: the corpus file's path,
the tokenizer's class) move from the identity into `provenance.calibration`. The new content gives a new id; the
allocation records that name the search (`extra.search`) are pointed at it, which gives them new ids too. Each change
is noted in `provenance.adopted`; a file is written under its new name and only then the old one removed.
"""
import argparse, collections, datetime, json, sys, tarfile, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from wanda_nb.records import record_id, save_record, complete_record

def local_weights(model_name:str, source:str) -> str:
    "The fingerprint of `model_name` loaded here, after checking that the loader read it from `source`."
    from wanda_nb.experiment import weights_fields
    w = weights_fields(model_name)
    if w['weights_source'] != source:
        sys.exit(f"--weights-source {source!r}: {model_name} loads here from {w['weights_source']!r}, so its "
                 f"fingerprint says nothing about {source!r}: pass that source, or run where {model_name} loads from it")
    return w['weights']

def fill_source(rec:dict, source:str, weights:str) -> str:
    "Give `rec` the weights source `source` if its fingerprint is `weights`; return what happened (a counter key)."
    if not rec.get('weights'): return 'no weights fingerprint (left alone)'
    if rec['weights'] != weights: return 'other weights (left alone)'
    have = (rec.get('provenance') or {}).get('weights_source')
    if have == source: return 'already had this source'
    if have is not None: return 'another source already (left alone)'
    prov = rec.get('provenance') or {}
    note = (f"set {datetime.date.today()} by tools/adopt_gpu_records.py --weights-source: the weights' fingerprint is "
            f"that of the model loaded there from this source")
    adopted = (prov.get('adopted') or {}) | dict(weights_source=note)
    rec['provenance'] = prov | dict(weights_source=source, adopted=adopted)
    return 'source written'

def backfill(folder:Path, source:str, weights:str) -> collections.Counter:
    "Write `source` into the records under `folder` fingerprinted `weights` that lack a source; count the outcomes."
    n = collections.Counter()
    for f in sorted(folder.rglob('*.json')):
        rec = json.loads(f.read_text())
        if not isinstance(rec, dict) or not {'model', 'method', 'sparsity'} <= set(rec): continue
        assert record_id(rec) == rec['id'] == f.stem, f"{f}: its id does not match its content or its name"
        what = fill_source(rec, source, weights); n[what] += 1
        if what == 'source written':
            assert record_id(rec) == f.stem, f"{f}: writing the source changed the id"
            complete_record(rec, f.parent)  # refuses anything but an extension of the saved record
    return n

def _move(f:Path, rec:dict, notes:dict) -> str:
    "Rewrite record `rec` (read from `f`) under the id its new content gives, with `notes` in provenance.adopted; return the id."
    prov = rec.get('provenance') or {}
    rec['provenance'] = prov | dict(adopted=(prov.get('adopted') or {}) | notes)
    rid = record_id(rec)
    save_record(rec, f.parent)   # refuses to overwrite: a record of that id already there stops the migration
    f.unlink()
    return rid

def rekey_searches(folder:Path, source:str, weights:str) -> collections.Counter:
    "Bring the searches under `folder` to `_search_config`'s identity (weights; machine facts to provenance); re-point their users."
    n, moved, files = collections.Counter(), {}, sorted(folder.rglob('*.json'))
    recs = {f: json.loads(f.read_text()) for f in files}
    recs = {f: r for f, r in recs.items() if isinstance(r, dict) and {'model', 'method', 'sparsity'} <= set(r)}
    others = {r.get('weights') for r in recs.values() if r.get('experiment') != 'allocation-search' and r.get('weights')}
    if others != {weights}:
        sys.exit(f"--rekey-searches: the records under {folder} carry fingerprints {sorted(others)}, not only the loaded "
                 f"{weights}: a search's weights cannot be inferred from them")
    from wanda_nb.analysis.allocation import SEARCH_PROVENANCE
    day, tool = datetime.date.today(), 'tools/adopt_gpu_records.py --rekey-searches'
    for f, rec in recs.items():
        if rec.get('experiment') != 'allocation-search': continue
        local = {k: v for k, v in (rec.get('calibration') or {}).items() if k in SEARCH_PROVENANCE}
        if rec.get('weights') and not local: n['search already current'] += 1; continue
        old, notes, prov = rec['id'], {}, rec.get('provenance') or {}
        if not rec.get('weights'):
            rec['weights'] = weights; prov = prov | dict(weights_source=source)
            notes['weights'] = (f"set {day} by {tool} (was id {old}): searches did not record their weights; every other "
                                f"record of this folder carries {weights}, the fingerprint of the model loaded here from {source}")
        if local:
            rec['calibration'] = {k: v for k, v in rec['calibration'].items() if k not in SEARCH_PROVENANCE}
            prov = prov | dict(calibration=(prov.get('calibration') or {}) | local)
            notes['calibration'] = f"moved {day} by {tool} (was id {old}): {', '.join(sorted(local))} from the identity to provenance"
        rec['provenance'] = prov
        moved[old] = _move(f, rec, notes); n['search re-keyed (new id)'] += 1
    for f, rec in recs.items():
        old = (rec.get('extra') or {}).get('search')
        if rec.get('experiment') == 'allocation-search' or old not in moved: continue
        rec['extra'] = rec['extra'] | dict(search=moved[old])
        _move(f, rec, dict(search=f"set {day} by {tool}: search {old} is now {moved[old]} "
                                  f"(was id {rec['id']})"))
        n['record re-pointed at its search (new id)'] += 1
    return n

FOLDERS = {'allocation-search': 'allocation/search'} # where `allocation.study` writes its searches and looks for them again

def folder(rec:dict) -> str:
    "The folder under results/<model>/ where the study that made `rec` reads it back (its experiment, unless FOLDERS says)."
    e = rec.get('experiment', 'main')
    return FOLDERS.get(e, e)

def adopt(a, weights:str|None) -> collections.Counter:
    "Adopt the records of tar `a.tar` into `a.results/a.model_name/`; count what happened."
    n = collections.Counter()
    with tempfile.TemporaryDirectory() as d:
        with tarfile.open(a.tar) as t: t.extractall(d, filter='data')
        for f in Path(d).rglob('recovery/lr.json'): # the recovery study's learning-rate choices, which later calls reuse
            out = Path(a.results)/a.model_name/'recovery'/'lr.json'
            if not out.exists(): out.parent.mkdir(parents=True, exist_ok=True); out.write_text(f.read_text()); n['lr.json adopted'] += 1
            elif json.loads(out.read_text()) != json.loads(f.read_text()): n[f'lr.json differs from {out} (left alone)'] += 1
        files = [f for f in Path(d).rglob('*.json') if f.name not in ('gpu_study.log', 'lr.json')]
        recs = [json.loads(f.read_text()) for f in sorted(files)]
        recs = [r for r in recs if {'model', 'method', 'sparsity'} <= set(r)]
        old = lambda r: a.reweigh is not None and r.get('weights') == a.reweigh[0]
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
            if weights is not None: n[fill_source(rec, a.weights_source, weights)] += 1
            assert record_id(rec) == rid, f"{rid}: renaming changed the id (a record without weights?)"
            out = Path(a.results)/a.model_name/folder(rec)/f'{rid}.json'
            if out.exists(): n['already there (left alone)'] += 1; continue
            save_record(rec, out.parent); n['adopted'] += 1
    return n

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('tar', nargs='?', help='records.tar.gz of a GPU call (not with --backfill)')
    p.add_argument('--model-name', required=True); p.add_argument('--commit')
    p.add_argument('--results', default='results'); p.add_argument('--reweigh', nargs=2, metavar=('OLD', 'NEW'))
    p.add_argument('--weights-source', metavar='SOURCE',
                   help="where the weights came from, exactly as the loader reports it here (checked, and the fingerprint)")
    p.add_argument('--backfill', action='store_true',
                   help='write --weights-source into the records under RESULTS/MODEL_NAME/ that lack it (no tar)')
    p.add_argument('--rekey-searches', action='store_true',
                   help="bring the allocation searches under RESULTS/MODEL_NAME/ to _search_config's identity (no tar)")
    a = p.parse_args(argv)
    local = a.backfill or a.rekey_searches
    if a.backfill and a.rekey_searches: p.error('--backfill and --rekey-searches are two runs: give one')
    if local == (a.tar is not None): p.error('give either a tar to adopt or --backfill / --rekey-searches, not both or neither')
    if local and not a.weights_source: p.error('--backfill and --rekey-searches need --weights-source')
    if local and (a.commit or a.reweigh):
        p.error('--backfill and --rekey-searches change no commit and no other fingerprint: no --commit or --reweigh')
    weights = local_weights(a.model_name, a.weights_source) if a.weights_source else None
    if local:
        folder = Path(a.results)/a.model_name
        if not folder.is_dir(): p.error(f'{folder} is not a folder of records')
        n = (backfill if a.backfill else rekey_searches)(folder, a.weights_source, weights)
    else: n = adopt(a, weights)
    where = f"{a.results}/{a.model_name}/"
    print(f"{where} ({a.weights_source or 'no --weights-source'}; weights {weights or '-'}):")
    for k, v in sorted(n.items()): print(f"  {v:5d} {k}")
    return n

if __name__ == '__main__': main()
