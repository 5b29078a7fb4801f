"Round trips, id stability and no-overwrite guarantees of wanda_nb.records."
import json, os, subprocess, sys
import pytest, torch
from wanda_nb.records import run_record, record_id, save_record, load_records, find_record, RECORD_COLUMNS

CALIB = dict(corpus='c4', split='train', sampler='concat', nsamples=128, seqlen=512, seed=0)
CFG = dict(model='stories260K', method='wanda', sparsity=0.5, structure='unstructured', group='row',
           calibration=CALIB, eval_seqlen=512, dtype=torch.float32)

def test_round_trip(tmp_path):
    recs = [run_record(**CFG | dict(sparsity=s), metrics={'wikitext2': {'ppl': 100 + s}}, timings={'prune': 1.5}) for s in (0.6, 0.2, 0.4)]
    paths = [save_record(r, tmp_path) for r in recs]
    for r, p in zip(recs, paths): assert json.loads(p.read_text()) == r and p.stem == r['id'] == record_id(r)
    df = load_records(tmp_path)
    assert df['sparsity'].tolist() == [0.2, 0.4, 0.6] and df['metrics.wikitext2.ppl'].tolist() == [100.2, 100.4, 100.6]
    assert list(df.columns[:len(RECORD_COLUMNS)]) == RECORD_COLUMNS
    assert {'calibration.nsamples', 'calibration.seed', 'git.commit', 'versions.torch', 'timings.prune'} <= set(df.columns)
    assert (df['dtype'] == 'float32').all() and (df['calibration.nsamples'] == 128).all()
    assert not list(tmp_path.glob('.*'))   # no temporary files left behind

def test_id_depends_on_configuration_only():
    base = run_record(**CFG)
    assert record_id(run_record(**CFG, metrics={'x': 1}, timings={'t': 2}, device='cuda:0')) == base['id']
    assert record_id(dict(reversed(list(base.items())))) == base['id']   # key order does not matter
    for change in [dict(sparsity=0.6), dict(method='magnitude'), dict(structure='2:4'), dict(group='layer'),
                   dict(eval_seqlen=2048), dict(dtype=torch.bfloat16), dict(model='tiny-llama'),
                   dict(calibration=CALIB | {'nsamples': 64}), dict(calibration=None), dict(options={'use_variant': True})]:
        assert run_record(**CFG | change)['id'] != base['id'], change
    assert run_record(**CFG | dict(sparsity=0))['id'] == run_record(**CFG | dict(sparsity=0.0))['id']   # 0 and 0.0 are one sparsity

def test_id_is_stable_across_processes():
    "The id is a sha256 of canonical JSON, not Python's salted hash(): another process computes the same id."
    code = ("from wanda_nb.records import run_record; "
            f"print(run_record(model='m', method='wanda', sparsity=0.5, calibration={CALIB!r}, dtype='float16')['id'])")
    other = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                           env=os.environ | {'PYTHONHASHSEED': str(int(os.environ.get('PYTHONHASHSEED', '0') or 0) + 1)}).stdout.strip()
    assert other == run_record(model='m', method='wanda', sparsity=0.5, calibration=CALIB, dtype=torch.float16)['id']

def test_never_overwrites(tmp_path):
    first = run_record(**CFG, metrics={'ppl': 1.0})
    f = save_record(first, tmp_path)
    second = run_record(**CFG, metrics={'ppl': 2.0})
    with pytest.raises(FileExistsError, match='--exist-ok'): save_record(second, tmp_path)
    assert save_record(second, tmp_path, exist_ok=True) == f
    assert json.loads(f.read_text())['metrics'] == {'ppl': 1.0}
    f.write_text(json.dumps(run_record(**CFG | dict(sparsity=0.7))))   # a file whose content is another configuration
    with pytest.raises(FileExistsError, match='another configuration'): save_record(second, tmp_path, exist_ok=True)

def test_find_record(tmp_path):
    assert find_record(tmp_path, **CFG) is None
    r = run_record(**CFG, metrics={'ppl': 3.0})
    save_record(r, tmp_path)
    assert find_record(tmp_path, **CFG) == r and find_record(tmp_path, **CFG | dict(sparsity=0.3)) is None

def test_bad_input(tmp_path):
    assert list(load_records(tmp_path).columns) == RECORD_COLUMNS and load_records(tmp_path).empty
    with pytest.raises(FileNotFoundError, match='not a folder of records'): load_records(tmp_path/'missing')
    (tmp_path/'broken.json').write_text('{"model": ')
    with pytest.raises(ValueError, match='broken.json is not a valid JSON record'): load_records(tmp_path)
    with pytest.raises(ValueError, match='0 <= sparsity < 1'): run_record(**CFG | dict(sparsity=1.2))
    with pytest.raises(ValueError, match='filled in by run_record'): run_record(**CFG, git='abc')

def test_committed_records_load_and_keep_their_ids():
    "Every committed record (written before fingerprints) loads, and its id is still its file name."
    from pathlib import Path
    root = Path(__file__).parent.parent/'results'
    files = sorted(root.rglob('*.json'))
    assert files, 'no committed records found'
    df = load_records(root, recursive=True)
    assert len(df) == len(files)
    assert [record_id(json.loads(f.read_text())) for f in files] == [f.stem for f in files]

def test_identity_is_content_not_path():
    fp, cal = 'sha256:' + 'a' * 64, CALIB | {'sha256': 'f' * 64}
    a = run_record(**CFG | dict(model='/home/u/m', calibration=cal), weights=fp, provenance={'calibration': {'source': '/home/u/c4'}})
    b = run_record(**CFG | dict(model='/srv/m', calibration=cal), weights=fp, provenance={'calibration': {'source': '/srv/c4'}})
    assert a['id'] == b['id'] and a['model'] != b['model']
    assert run_record(**CFG | dict(model='/home/u/m', calibration=cal), weights='sha256:' + 'b' * 64)['id'] != a['id']
    assert run_record(**CFG | dict(model='/home/u/m', calibration=CALIB | {'sha256': 'e' * 64}), weights=fp)['id'] != a['id']
    assert record_id(a | {'reused': a['id'], 'completed': [{}]}) == a['id']   # run-time notes are not identity
    # without a fingerprint the model's name is part of the identity, as it always was
    assert run_record(**CFG | dict(model='m1'))['id'] != run_record(**CFG | dict(model='m2'))['id']

def test_complete_record_only_extends(tmp_path):
    from wanda_nb.records import complete_record
    r = run_record(**CFG, metrics={'ppl': {'stories': 5.0}})
    f = save_record(r, tmp_path)
    grown = r | dict(metrics=r['metrics'] | {'kl': {'stories': 0.1}}, completed=[{'added': ['kl']}])
    assert complete_record(grown, tmp_path) == f and json.loads(f.read_text())['metrics']['kl'] == {'stories': 0.1}
    with pytest.raises(ValueError, match='change or drop metrics.ppl.stories'):
        complete_record(grown | dict(metrics={'ppl': {'stories': 6.0}, 'kl': {'stories': 0.1}}), tmp_path)
    with pytest.raises(FileNotFoundError): complete_record(run_record(**CFG | dict(sparsity=0.3)), tmp_path)

def test_lock_refuses_then_waits(tmp_path):
    "A second process is refused while the folder is held, or with wait=True waits until it is released."
    import time
    from wanda_nb.records import lock_folder
    hold = ("import sys, time; from wanda_nb.records import lock_folder\n"
            "with lock_folder(sys.argv[1]): print('held', flush=True); time.sleep(float(sys.argv[2]))")
    p = subprocess.Popen([sys.executable, '-c', hold, str(tmp_path), '3'], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'held'
    with pytest.raises(FileExistsError, match=f'in use by another run \\(pid {p.pid} since'):
        with lock_folder(tmp_path): pass
    t = time.time()
    with lock_folder(tmp_path, wait=True): waited = time.time() - t
    p.wait(timeout=30)
    assert waited > 0.5 and p.returncode == 0 and not (tmp_path/'.lock').exists()
