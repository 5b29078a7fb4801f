"tools/adopt_gpu_records.py: `--weights-source` on adoption and `--backfill`, on small synthetic records (CPU, stories260K)."
import importlib.util, json, tarfile
from pathlib import Path
import pytest
from wanda_nb.records import run_record, save_record, record_id
from wanda_nb.experiment import weights_fields

_f = Path(__file__).resolve().parent.parent/'tools'/'adopt_gpu_records.py'
_spec = importlib.util.spec_from_file_location('adopt_gpu_records', _f)
adopt = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(adopt)

OTHER = 'sha256:' + 'e' * 64

@pytest.fixture(scope='module')
def stories(): return weights_fields('stories260K')  # {'weights': 'sha256:…', 'weights_source': 'mirror:…'}

def _rec(weights=None, sparsity=0.5, provenance=None, model='stories260K'):
    return run_record(model=model, method='wanda', sparsity=sparsity, weights=weights, experiment='main',
                      provenance=provenance or {'corpora': {'stories': '/somewhere/stories.jsonl'}})

def _records(tmp_path, fp) -> dict:
    "Five records under tmp/results/stories260K/main/, one per outcome; name -> file."
    recs = dict(plain=_rec(fp, 0.5), no_weights=_rec(None, 0.6), other_weights=_rec(OTHER, 0.7),
                other_source=_rec(fp, 0.8, {'weights_source': 'hub:karpathy/tinyllamas'}),
                adopted=_rec(fp, 0.9, {'corpora': {}, 'adopted': {'model': 'run as --model /tmp/x'}}))
    return {k: save_record(r, tmp_path/'results'/'stories260K'/'main') for k, r in recs.items()}

def test_fill_source_writes_only_provenance_and_never_overwrites(stories):
    fp, src = stories['weights'], stories['weights_source']
    r = _rec(fp); before = json.loads(json.dumps(r))
    fill = adopt.fill_source
    assert fill(r, src, fp) == 'source written'
    assert r['provenance']['weights_source'] == src and 'weights_source' in r['provenance']['adopted']
    assert {k: v for k, v in r.items() if k != 'provenance'} == {k: v for k, v in before.items() if k != 'provenance'}
    assert r['provenance']['corpora'] == before['provenance']['corpora']
    assert record_id(r) == before['id']                               # provenance is no part of the id
    assert fill(r, src, fp) == 'already had this source'
    assert fill(r, 'hub:karpathy/tinyllamas', fp) == 'another source already (left alone)'
    assert r['provenance']['weights_source'] == src                   # not overwritten
    assert fill(_rec(None), src, fp) == 'no weights fingerprint (left alone)'
    assert fill(_rec(OTHER), src, fp) == 'other weights (left alone)'

def test_backfill_touches_only_matching_records_that_lack_a_source(tmp_path, stories):
    fp, src = stories['weights'], stories['weights_source']
    files = _records(tmp_path, fp)
    texts = {k: f.read_text() for k, f in files.items()}
    n = adopt.backfill(tmp_path/'results'/'stories260K', src, fp)
    assert n == {'source written': 2, 'no weights fingerprint (left alone)': 1, 'other weights (left alone)': 1,
                 'another source already (left alone)': 1}
    for k in ('no_weights', 'other_weights', 'other_source'): assert files[k].read_text() == texts[k]  # byte for byte
    for k in ('plain', 'adopted'):
        old, new = json.loads(texts[k]), json.loads(files[k].read_text())
        assert new['id'] == old['id'] == files[k].stem == record_id(new)
        assert {a: b for a, b in new.items() if a != 'provenance'} == {a: b for a, b in old.items() if a != 'provenance'}
        assert new['provenance']['weights_source'] == src
    assert json.loads(files['adopted'].read_text())['provenance']['adopted']['model'] == 'run as --model /tmp/x'  # kept
    assert sorted(p.name for p in files['plain'].parent.iterdir()) == sorted(f.name for f in files.values())  # no new files
    assert adopt.backfill(tmp_path/'results'/'stories260K', src, fp)['already had this source'] == 2  # idempotent

def test_cli_backfill_checks_the_source_against_a_local_load(tmp_path, stories, capsys):
    files = _records(tmp_path, stories['weights'])
    with pytest.raises(SystemExit, match='loads here from'):   # a source the local loader did not read: refused
        adopt.main(['--backfill', '--model-name', 'stories260K', '--results', str(tmp_path/'results'),
                    '--weights-source', 'hub:karpathy/tinyllamas/stories260K/stories260K.bin'])
    assert 'weights_source' not in json.loads(files['plain'].read_text())['provenance']
    n = adopt.main(['--backfill', '--model-name', 'stories260K', '--results', str(tmp_path/'results'),
                    '--weights-source', stories['weights_source']])
    assert n['source written'] == 2 and '2 source written' in capsys.readouterr().out

def test_cli_refuses_bad_modes(tmp_path):
    for argv in (['--model-name', 'm'], ['x.tar', '--backfill', '--model-name', 'm', '--weights-source', 's'],
                 ['--backfill', '--model-name', 'm'], ['--backfill', '--model-name', 'm', '--weights-source', 's', '--commit', 'c']):
        with pytest.raises(SystemExit) as e: adopt.main(argv)
        assert e.value.code == 2

def test_adopt_tar_with_weights_source(tmp_path, stories):
    fp, src = stories['weights'], stories['weights_source']
    recs = [_rec(fp, 0.5, model='/tmp/gpu/stories'), _rec(OTHER, 0.6, model='/tmp/gpu/stories')]
    d = tmp_path/'call'; d.mkdir()
    for r in recs: (d/f"{r['id']}.json").write_text(json.dumps(r))
    with tarfile.open(tmp_path/'records.tar.gz', 'w:gz') as t: t.add(d, arcname='records')
    n = adopt.main([str(tmp_path/'records.tar.gz'), '--model-name', 'stories260K', '--results', str(tmp_path/'results'),
                    '--weights-source', src])
    assert n == {'adopted': 2, 'source written': 1, 'other weights (left alone)': 1}
    got = {r['id']: json.loads((tmp_path/'results'/'stories260K'/'main'/f"{r['id']}.json").read_text()) for r in recs}
    a, b = got[recs[0]['id']], got[recs[1]['id']]
    assert a['model'] == b['model'] == 'stories260K' and a['id'] == recs[0]['id'] and b['id'] == recs[1]['id']
    assert a['provenance']['weights_source'] == src and set(a['provenance']['adopted']) == {'model', 'weights_source'}
    assert 'weights_source' not in b['provenance']

def test_rekey_searches_moves_a_search_and_the_record_that_used_it(tmp_path, stories):
    "A search without `weights` takes the folder's one fingerprint, its machine facts go to provenance, and a new id; its user follows."
    fp, src = stories['weights'], stories['weights_source']
    root = tmp_path/'results'/'stories260K'
    cal = dict(corpus='c4', split='train', sampler='concat', nsamples=4, seqlen=64, seed=0, docs=[3, 1], draws=2)
    search = run_record(model='stories260K', method='wanda', sparsity=0.5, experiment='allocation-search', metrics=dict(schedule=[.5]),
                        calibration=cal | dict(source='/one/machine/c4.jsonl', tokenizer='SomeTokenizer (vocab 512)'))
    sf = save_record(search, root/'allocation'/'search')
    used = run_record(model='stories260K', method='wanda', sparsity=0.5, weights=fp, experiment='allocation',
                      extra=dict(alloc='learned', search=search['id']), provenance=dict(weights_source=src))
    other = run_record(model='stories260K', method='wanda', sparsity=0.6, weights=fp, experiment='allocation', extra=dict(alloc='uniform'))
    uf, of = save_record(used, root/'allocation'), save_record(other, root/'allocation')
    before = of.read_text()
    n = adopt.rekey_searches(root, src, fp)
    assert n == {'search re-keyed (new id)': 1, 'record re-pointed at its search (new id)': 1}
    assert not sf.exists() and not uf.exists() and of.read_text() == before      # moved, and the bystander untouched
    [s2] = [json.loads(f.read_text()) for f in (root/'allocation'/'search').glob('*.json')]
    assert s2['weights'] == fp and s2['provenance']['weights_source'] == src and s2['id'] == record_id(s2) != search['id']
    assert s2['metrics'] == search['metrics'] and search['id'] in s2['provenance']['adopted']['weights']
    assert s2['calibration'] == cal and s2['provenance']['calibration'] == dict(source='/one/machine/c4.jsonl', tokenizer='SomeTokenizer (vocab 512)')
    [u2] = [json.loads(f.read_text()) for f in (root/'allocation').glob('*.json') if json.loads(f.read_text())['sparsity'] == 0.5]
    assert u2['extra']['search'] == s2['id'] and u2['id'] == record_id(u2) != used['id']
    assert adopt.rekey_searches(root, src, fp) == {'search already current': 1}   # idempotent
    save_record(run_record(model='stories260K', method='wanda', sparsity=0.7, weights=OTHER, experiment='allocation'), root/'allocation')
    with pytest.raises(SystemExit, match='cannot be inferred'): adopt.rekey_searches(root, src, fp)   # two fingerprints: refused

def test_adopted_searches_land_where_the_study_resumes_them(tmp_path, stories):
    "A learned-allocation search goes to allocation/search (where `allocation.study` looks), not to a folder named after its experiment."
    fp = stories['weights']
    search = run_record(model='stories260K', method='wanda', sparsity=0.5, weights=fp, experiment='allocation-search', metrics=dict(schedule=[.5]))
    run = _rec(fp, 0.5) | dict(experiment='allocation'); run['id'] = record_id(run)
    d = tmp_path/'call'; d.mkdir()
    for r in (search, run): (d/f"{r['id']}.json").write_text(json.dumps(r))
    with tarfile.open(tmp_path/'records.tar.gz', 'w:gz') as t: t.add(d, arcname='results')
    n = adopt.main([str(tmp_path/'records.tar.gz'), '--model-name', 'stories260K', '--results', str(tmp_path/'results')])
    assert n == {'adopted': 2}
    root = tmp_path/'results'/'stories260K'
    assert (root/'allocation'/'search'/f"{search['id']}.json").exists() and (root/'allocation'/f"{run['id']}.json").exists()
    assert not (root/'allocation-search').exists()

def test_adopt_keeps_the_recovery_learning_rates(tmp_path):
    "recovery/lr.json (the learning rates later calls reuse) is adopted once, and a different one later is reported, not written."
    d = tmp_path/'call'/'SmolLM2-135M'/'recovery'; d.mkdir(parents=True)
    (d/'lr.json').write_text(json.dumps(dict(masked=1e-4)))
    with tarfile.open(tmp_path/'r.tar.gz', 'w:gz') as t: t.add(tmp_path/'call', arcname='results')
    argv = [str(tmp_path/'r.tar.gz'), '--model-name', 'SmolLM2-135M', '--results', str(tmp_path/'results')]
    assert adopt.main(argv) == {'lr.json adopted': 1}
    lr = tmp_path/'results'/'SmolLM2-135M'/'recovery'/'lr.json'
    assert json.loads(lr.read_text()) == dict(masked=1e-4)
    (d/'lr.json').write_text(json.dumps(dict(masked=3e-4)))
    with tarfile.open(tmp_path/'r.tar.gz', 'w:gz') as t: t.add(tmp_path/'call', arcname='results')
    assert list(adopt.main(argv)) == [f'lr.json differs from {lr} (left alone)'] and json.loads(lr.read_text()) == dict(masked=1e-4)
