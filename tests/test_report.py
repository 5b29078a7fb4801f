"Report: the wanda_nb_report command end to end, and property tests of the wording on synthetic records."
import copy, json, math, random, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from wanda_nb.report import (report, main, demo_records, layer_profile, task_drops, task_verdict, collapse_point,
                             as_frame, SEED_CLAIMS, speed_summary)

def _write(d, recs):
    d.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(recs): (d/f'{i:03d}.json').write_text(json.dumps(r))
    return d

def _claims(md):
    return re.findall(r'^\| (.+?) \| \*\*([a-z ]+)\*\* \|', md, flags=re.M)

# --- the command ---------------------------------------------------------------------------------------------------

def _cli(*args):
    exe = shutil.which('wanda_nb_report', path=str(Path(sys.executable).parent))
    assert exe, 'console script missing: pip install -e . --no-deps'
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)

def test_console_script_writes_and_refuses_to_overwrite(tmp_path):
    recs = _write(tmp_path/'recs', demo_records())
    out = tmp_path/'r.md'
    r = _cli(recs, '--out', out, '--speed', tmp_path)
    assert r.returncode == 0, r.stderr
    got = out.read_text().split('\n')
    assert got[2].startswith('> Regenerate with `wanda_nb_report ')   # the command that wrote it
    assert '\n'.join(got[:2] + got[4:]) == report(recs, speed={})
    out.write_text('mine')
    r = _cli(recs, '--out', out)
    assert r.returncode == 1 and '--overwrite' in r.stderr and 'Traceback' not in r.stderr and out.read_text() == 'mine'

def _main(capsys, *args):
    rc = main([str(a) for a in args]); cap = capsys.readouterr()
    return rc, cap.out, cap.err

def test_main_overwrite_stdout_and_clear_errors(tmp_path, capsys):
    recs = _write(tmp_path/'recs', demo_records())
    rc, out, _ = _main(capsys, recs, '--speed', tmp_path)
    assert rc == 0 and out.startswith('# Analysis: synthetic-4L')
    (tmp_path/'r.md').write_text('mine')
    assert _main(capsys, recs, '--out', tmp_path/'r.md', '--overwrite', '--speed', tmp_path)[0] == 0
    assert (tmp_path/'r.md').read_text().startswith('# Analysis: synthetic-4L')
    rc, _, err = _main(capsys, tmp_path/'nope')
    assert rc == 1 and 'no records directory' in err
    (tmp_path/'empty').mkdir()
    assert 'holds no result records' in _main(capsys, tmp_path/'empty')[2]
    both = _write(tmp_path/'both', demo_records('a') + demo_records('b'))
    assert 'several models (a, b)' in _main(capsys, both)[2]
    assert "no records for model 'c'" in _main(capsys, both, '--model', 'c')[2]
    assert 'benchmark results folder' in _main(capsys, both, '--model', 'b', '--speed', tmp_path/'nope')[2]
    assert "no perplexity on 'c4'" in _main(capsys, recs, '--corpus', 'c4', '--speed', tmp_path)[2]

# --- layer profiles ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('seed', range(15))
def test_profile_wording_never_contradicts(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 12)
    sps = [0.5 + rng.uniform(-0.1, 0.1) for _ in range(n)]
    p = layer_profile([dict(block=b, module=m, sparsity=s) for b, s in enumerate(sps) for m in 'qk'], 'magnitude', 'global')
    s = p['sentence']
    assert not ('rises with depth' in s and 'falls with depth' in s)
    assert 'adapt' not in s
    lo, hi = min(range(n), key=sps.__getitem__), max(range(n), key=sps.__getitem__)
    assert f"{100*sps[lo]:.2f}% (lowest, block {lo})" in s and f"{100*sps[hi]:.2f}% (highest, block {hi})" in s
    k = max(1, n // 3); early, late = sum(sps[:k]) / k, sum(sps[-k:]) / k
    if late - early > 1e-3: assert 'rises with depth' in s
    if early - late > 1e-3: assert 'falls with depth' in s

@pytest.mark.parametrize('group', ['row', 'layer'])
def test_flat_profile_is_by_construction(group):
    layers = [dict(block=b, module='q', sparsity=0.5 + 1e-5 * (b % 2)) for b in range(8)]
    s = layer_profile(layers, 'wanda', group)['sentence']
    assert 'uniform by construction' in s and 'adapt' not in s and 'lower' not in s

# --- tasks ------------------------------------------------------------------------------------------------------------

def _tasks(drops, se=.01, acc=.6):
    dense = {t: dict(acc=acc, acc_stderr=se, chance=.25) for t in drops}
    return dense, {t: dict(acc=acc - d, acc_stderr=se) for t, d in drops.items()}

@pytest.mark.parametrize('seed', range(12))
def test_drops_within_error_make_no_claim(seed):
    rng = random.Random(seed)
    drops = {f't{i}': 0.05 + rng.uniform(-0.012, 0.012) for i in range(rng.randint(2, 7))}  # spread < 2·√(2·2)·0.01
    v = task_verdict(task_drops(*_tasks(drops)))
    assert v['most'] is None and v['least'] is None
    assert 'No task is distinguishable' in v['sentence'] and 'Most affected' not in v['sentence']

def test_clear_outlier_is_named_with_its_error():
    v = task_verdict(task_drops(*_tasks(dict(boolq=.02, rte=.16, arc_easy=.03))))
    assert (v['most'], v['least']) == ('rte', 'boolq')
    assert 'Most affected: rte (-16.0 ± 1.4 pt)' in v['sentence']

def test_combined_stderr_and_chance():
    d = task_drops(dict(a=dict(acc=.6, acc_stderr=.03, chance=.25), b=dict(acc=.27, acc_stderr=.02, chance=.25)),
                   dict(a=dict(acc=.5, acc_stderr=.04), b=dict(acc=.25, acc_stderr=.02)))
    assert math.isclose(d.loc['a', 'se'], .05) and not d.loc['a', 'at_chance'] and d.loc['b', 'at_chance']
    v = task_verdict(d)
    assert v['at_chance'] == ['b'] and 'at chance on b' in v['sentence'] and v['most'] is None

# --- sweep ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('seed', range(12))
def test_collapse_point_matches_brute_force(seed):
    rng = random.Random(seed)
    sps = sorted(rng.sample([i / 10 for i in range(1, 10)], 5))
    ppl = sorted(10 * math.exp(rng.uniform(0, 3)) for _ in sps)
    recs = [dict(model='m', method='dense', sparsity=0., metrics=dict(ppl=dict(wikitext2=10.)))]
    recs += [dict(experiment='sweep', model='m', method='wanda', group='row', sparsity=s, metrics=dict(ppl=dict(wikitext2=p)))
             for s, p in zip(sps, ppl)]
    want = next((s for s, p in zip(sps, ppl) if p > 20), None)
    assert collapse_point(as_frame(recs))['wanda (row)']['collapse'] == want

# --- whole reports ----------------------------------------------------------------------------------------------------

def test_demo_report_states_what_was_built_in():
    md = report(demo_records(), speed={})
    body = md[:md.index('## 5.')]
    assert 'adapt' not in body.lower()
    assert 'wanda (row): every block is pruned to 50.00%' in body and 'uniform by construction (per-output' in body
    assert 'lowest, block 0' in body and 'highest, block 3' in body and 'falls with depth' not in body
    assert 'Most affected: arc_easy' in body and 'No task is distinguishable' not in body
    assert 'wanda (row): collapses at 70%' in body and 'magnitude (layer): collapses at 50%' in body
    verdicts = dict(_claims(md))
    assert {k for k, v in SEED_CLAIMS.items() if any(c.startswith(v) for c in verdicts)} == set(SEED_CLAIMS)
    assert verdicts[SEED_CLAIMS['early']] == verdicts[SEED_CLAIMS['late']] == 'refuted'

def test_missing_sections_say_not_measured():
    only = [r for r in demo_records() if r['experiment'] in ('main', 'sweep')]
    for r in only: r.get('metrics', {}).pop('zeroshot', None)
    md = report(only, speed={})
    for sec in ('### 3.1', '### 3.2', '## 2.'):
        assert 'Not measured — run' in md.split(sec)[1].split('\n#')[0], sec
    assert 'Quality: Not measured' in md and 'Speed: not yet measured' in md
    assert 'Still to measure' in md
    nothing = report([dict(model='m', method='dense', sparsity=0.)], speed={})
    assert nothing.count('Not measured') >= 5
    assert all(v == 'not measurable on this model' for _, v in _claims(nothing))

def test_directory_and_list_give_the_same_report(tmp_path):
    recs = demo_records()
    assert report(_write(tmp_path/'r', recs), speed={}) == report(recs, speed={})

def test_speed_drives_the_recommendation():
    e2e = lambda xs: dict(end_to_end=dict(rows=[dict(phase=p, batch=b, tokens=1, speedup=x) for (p, b), x in zip([('prefill', '8x2048'), ('decode', 1)], xs)]),
                          matmul=[dict(shape='gate', tokens=t, speedup_24=x, speedup_csr=c) for t, x, c in [(1, .3, .02), (16384, 1.4, .5)]])
    md = report(demo_records(), speed=e2e([1.2, 0.4]))
    rec = md.split('## 4.')[1]
    assert 'Use 2:4 for speed in prefill (batch 8x2048, 1.20×); not in decode (batch 1, 0.40×)' in rec
    v = dict(_claims(md))
    assert v[SEED_CLAIMS['nm_speed']] == 'refuted' and v[SEED_CLAIMS['csr']] == 'refuted'
    assert 'slower than dense, not 10–20% faster' in md
    md = report(demo_records(), speed=e2e([0.8, 0.4]))
    assert 'Do not use 2:4 for speed' in md.split('## 4.')[1]
    assert speed_summary({})  == {}

def test_wanda_losing_is_reported_as_such():
    recs = copy.deepcopy(demo_records())
    for r in recs:
        if r['experiment'] == 'sweep' and r['method'] == 'wanda': r['metrics']['ppl']['wikitext2'] *= 1000
    md = report(recs, speed={})
    assert 'lower than magnitude\'s at 0 of 6' in md and dict(_claims(md))[SEED_CLAIMS['beats']] == 'refuted'
    assert 'Prune with magnitude rather than Wanda' in md
