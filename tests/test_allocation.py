"Property tests of wanda_nb.allocation (equal-sparsity matching, the coordinate search, disjointness) and the bad-input contracts of the allocation study."
import copy, json, math, os, random
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import numpy as np, pandas as pd, pytest, torch
from wanda_nb.allocation import (_level, _up, _down, achieved_sparsity, block_shapes, check_disjoint, check_schedule,
                                 coordinate_search, match_sparsity, pruned_count)
from wanda_nb.models import load_model, tiny_model
from wanda_nb.prune import model_sparsity, prune_model

torch.set_num_threads(1)
STORIES = block_shapes(load_model('stories260K')[0])

@pytest.mark.parametrize('seed', range(40))
@pytest.mark.parametrize('group', ['row', 'layer'])
def test_match_reaches_the_uniform_reference(seed, group):
    rng = random.Random(seed)
    t = rng.choice([0.5, 0.6, 0.7, 0.8])
    ref = achieved_sparsity(STORIES, [t] * 5, group)
    s = np.array([t + rng.uniform(-0.12, 0.12) for _ in range(5)]); s = s - s.mean() + t
    x = match_sparsity(STORIES, s.tolist(), ref, group)
    assert abs(achieved_sparsity(STORIES, x, group) - ref) < 1e-3
    assert all(0 <= v < 1 for v in x)
    d = np.array(x) - s
    assert d.max() - d.min() < 0.05            # the shape survives: blocks move by nearly the same amount

@pytest.mark.parametrize('seed', range(30))
def test_match_any_target_within_tol(seed):
    rng = random.Random(100 + seed)
    s = [rng.uniform(0.3, 0.85) for _ in range(5)]
    t = float(np.mean(s)) + rng.uniform(-0.03, 0.03)
    for g in ('row', 'layer'):
        assert abs(achieved_sparsity(STORIES, match_sparsity(STORIES, s, t, g), g) - t) < 1e-3

def test_match_keeps_a_schedule_that_already_matches():
    for t in (0.5, 0.6, 0.7, 0.8):
        assert match_sparsity(STORIES, [t] * 5, achieved_sparsity(STORIES, [t] * 5)) == [t] * 5

@pytest.mark.parametrize('seed', range(20))
def test_levels_are_exact(seed):
    rng = random.Random(seed)
    for g in ('row', 'layer'):
        blk = STORIES[0]; v = rng.uniform(0.05, 0.95); c = pruned_count(blk, v, g)
        lo, up, dn = _level(blk, v, g), _up(blk, v, g), _down(blk, v, g)
        assert pruned_count(blk, lo, g) == c and pruned_count(blk, math.nextafter(lo, -1), g) < c
        assert pruned_count(blk, up, g) > c and pruned_count(blk, math.nextafter(up, -1), g) == c
        assert pruned_count(blk, dn, g) < c and pruned_count(blk, math.nextafter(lo, -1), g) == pruned_count(blk, dn, g)

@pytest.mark.parametrize('family', ['llama', 'opt', 'gpt2'])
def test_counts_equal_the_pruner(family):
    m = tiny_model(family); sh = block_shapes(m)
    ids = torch.randint(3, 512, (4, 16), generator=torch.Generator().manual_seed(0))
    sched = match_sparsity(sh, [0.55, 0.75], achieved_sparsity(sh, [0.65, 0.65]))
    for method, group in (('wanda', 'row'), ('magnitude', 'layer')):
        mm = copy.deepcopy(m)
        prune_model(mm, ids, method, float(np.mean(sched)), allocation=sched, progress=False, batch_size=4)
        assert model_sparsity(mm)['linear'] == achieved_sparsity(sh, sched, group)

@pytest.mark.parametrize('seed', range(15))
def test_search_keeps_the_weighted_mean_and_descends(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7)); t = rng.uniform(0.2, 0.8, n); w = rng.uniform(1, 5, n)
    target = float(rng.uniform(0.4, 0.6))
    f = lambda s: float(((np.array(s) - t) ** 2 * w).sum())
    r = coordinate_search(f, [target] * n, weights=w, deltas=(0.05, 0.02), max_sweeps=4)
    objs = [e['objective'] for e in r['trace']]
    assert all(a > b for a, b in zip(objs, objs[1:]))                     # every accepted move lowers f
    for e in r['trace']: assert abs(np.average(e['schedule'], weights=w) - target) < 1e-12
    assert r['evals'] <= 1 + 2 * 4 * 2 * n

def test_search_groups_move_together():
    r = coordinate_search(lambda s: (s[0] + s[1] - 1.4) ** 2, [0.5] * 4, deltas=(0.1,), groups=[[0, 1], [2, 3]])
    s = r['schedule']; assert s[0] == s[1] and s[2] == s[3]; assert abs(s[0] - 0.7) < 1e-12

def test_disjoint():
    g = torch.Generator().manual_seed(0)
    ev, cal = torch.randint(0, 512, (4, 256), generator=g), torch.randint(0, 512, (8, 128), generator=g)
    check_disjoint(cal, {'x': ev})
    for bad in (ev[:1], ev[2:3, 17:150], torch.cat([cal[:, :64], ev[:8 // 4, :64].repeat(4, 1)], 1)):
        with pytest.raises(ValueError, match='evaluation windows'): check_disjoint(bad, [ev])

@pytest.fixture(scope='module')
def tiny_bench():
    from wanda_nb.experiment import bench
    return bench('stories260K', nsamples=4, seqlen=64, corpora=('stories',), max_windows=2)

def _unchanged(b): return all(torch.equal(x, y) for x, y in zip(b.model.state_dict().values(), b.dense.state_dict().values()))

def test_bad_input_is_refused_before_pruning(tiny_bench):
    from wanda_nb.analysis.allocation import learn, owl_schedule
    from wanda_nb.calib import calib_windows
    from wanda_nb.data import load_corpus
    b = tiny_bench; b.model.load_state_dict(b.dense.state_dict())
    with pytest.raises(ValueError, match='not the target 0.6'): check_schedule([0.5] * 5, 5, 0.6)
    with pytest.raises(ValueError, match='not the target 0.6'): prune_model(b.model, b.calib, 'wanda', 0.6, allocation=[0.5] * 5)
    with pytest.raises(ValueError, match=r"block 2's sparsity 1.0"): prune_model(b.model, b.calib, allocation=[.5, .5, 1., .5, .5])
    with pytest.raises(ValueError, match='smaller lambda'): prune_model(b.model, b.calib, 'wanda', 0.9, allocation='owl', owl_lambda=0.3)
    with pytest.raises(ValueError, match='smaller lambda'): owl_schedule(b, 'wanda', 0.9, b.calib, lam=0.3)
    with pytest.raises(ValueError, match='evaluation windows'): learn(b, 'wanda', 0.5, b.calib, score=b.windows['stories'])
    test = calib_windows(load_corpus('stories', 'test'), b.tokenizer, 2, 64, seed=1, sampler='concat')
    with pytest.raises(ValueError, match='evaluation text'): learn(b, 'wanda', 0.5, test)
    assert _unchanged(b)

def test_learned_search_reads_only_calibration(tiny_bench):
    from wanda_nb.analysis.allocation import learn, watch_inputs, reference
    b = tiny_bench
    with watch_inputs(b.model, b.dense) as seen: r = learn(b, 'wanda', 0.6, b.calib, deltas=(0.1,), max_sweeps=1)
    rows = torch.cat([x.reshape(-1, x.shape[-1]) for x in seen])
    assert all((row == b.calib.ids).all(1).any() for row in rows)
    check_disjoint(rows, b.windows)
    assert r['metrics']['achieved'] == reference(b, 'wanda', 0.6)

def _rec(alloc, seed, w, method='wanda', target=0.5):
    return {'experiment': 'allocation', 'method': method, 'sparsity': target, 'extra.alloc': alloc, 'extra.target': target,
            'extra.reference': target, 'metrics.achieved_sparsity': target, 'calibration.seed': seed,
            'metrics.kl.x': float(np.mean(w)), 'metrics.kl_windows.x': list(w), 'metrics.nll_windows.x': list(w)}

@pytest.mark.parametrize('seed', range(10))
def test_table_diff_is_the_mean_paired_difference(seed):
    from wanda_nb.analysis.allocation import allocation_frame, allocation_table, allocation_verdicts
    from wanda_nb.analysis.evidence import t975
    rng = np.random.default_rng(seed)
    u = rng.uniform(1, 2, (3, 6)); d = rng.normal(-0.1, 0.05, (3, 6))
    df = allocation_frame(pd.DataFrame([_rec('uniform', k, u[k]) for k in range(3)] + [_rec('b', k, u[k] + d[k]) for k in range(3)]))
    t = allocation_table(df, 'x').loc[('wanda', 0.5, 'b')]
    assert abs(t['diff'] - d.mean()) < 1e-12
    se_w = np.mean([d[k].std(ddof=1) / np.sqrt(6) for k in range(3)]); sd = d.mean(1).std(ddof=1)
    sigma = math.sqrt(se_w ** 2 + sd ** 2 / 3)                     # t-scaled (Welch-Satterthwaite): evidence.compare
    dof = sigma ** 4 / (se_w ** 4 / 5 + (sd ** 2 / 3) ** 2 / 2)
    assert abs(t['u'] - sigma * t975(dof) / 1.96) < 1e-12
    v = allocation_verdicts(df, ('x',), claims=(('3', 'b beats uniform', 'wanda', 'b', 'uniform'),)).iloc[0]
    assert v.verdict == ('inconclusive' if abs(v.z) <= 2 else 'confirmed' if v['diff'] < 0 else 'refuted')

def test_identical_runs_are_inconclusive():
    from wanda_nb.analysis.allocation import allocation_frame, allocation_verdicts
    w = [1., 2., 3.]
    df = allocation_frame(pd.DataFrame([_rec('uniform', 0, w), _rec('b', 0, w)]))
    assert allocation_verdicts(df, ('x',), claims=(('3', 'b', 'wanda', 'b', 'uniform'),)).verdict.tolist() == ['inconclusive']

def test_score_side_by_side_equals_cached(tiny_bench):
    from wanda_nb.analysis.allocation import CalibScore
    from wanda_nb.metrics import dense_logprobs
    b = tiny_bench; b.model.load_state_dict(b.dense.state_dict())
    prune_model(b.model, b.calib, 'wanda', 0.6, progress=False)
    ids = b.calib.ids
    a, c = CalibScore(ids, dense_logprobs(b.dense, ids), {})(b.model), CalibScore(ids, b.dense, {})(b.model)
    assert a > 0 and abs(a - c) < 1e-9 * a                     # the 2 GiB fallback (large vocabularies) measures the same

def test_learn_with_groups_moves_blocks_together(tiny_bench):
    from wanda_nb.analysis.allocation import learn, reference
    b = tiny_bench
    r = learn(b, 'magnitude', 0.6, b.calib, groups=2, deltas=(0.1,), max_sweeps=2)
    assert r['extra']['groups'] == [[0, 1, 2], [3, 4]]
    raw = r['metrics']['raw']; assert raw[0] == raw[1] == raw[2] and raw[3] == raw[4]
    assert r['metrics']['evals'] <= 1 + 2 * 2 * 2 and r['metrics']['achieved'] == reference(b, 'magnitude', 0.6)

def test_search_on_a_subset_of_the_calibration_windows(tiny_bench, tmp_path):
    """The SmolLM2 plan's cheaper search (`search_windows`, `score_windows`): the search prunes with the seed's first k
    calibration windows and scores KL on the first n, and its record says so; the runs prune with every window; nothing
    reads other calibration text; without the options the study is unchanged (the same search record as a plain `learn`)."""
    from wanda_nb.analysis.allocation import study, first_windows, learn, watch_inputs
    from wanda_nb.analysis.sweep import reseeded
    b = tiny_bench
    assert first_windows(b.calib, None) is b.calib and first_windows(b.calib, 9) is b.calib
    sub = first_windows(b.calib, 2)
    assert torch.equal(sub.ids, b.calib.ids[:2]) and sub.meta['nsamples'] == 2 and sub.meta['subset'] == 'first 2 of 4'
    with pytest.raises(ValueError, match='at least one window'): first_windows(b.calib, 0)
    kw = dict(sparsities=(0.6,), seeds=(0,), methods=('wanda',), owl_grid=(), sensitivity=False, controls=False,
              search=dict(deltas=(0.1,), max_sweeps=1))
    with watch_inputs(b.model, b.dense) as seen: study(b, tmp_path/'a', search_windows=2, score_windows=1, **kw)
    cal = torch.cat([x.reshape(-1, x.shape[-1]) for x in seen if x.shape[-1] == b.calib.ids.shape[1]]) # the rest: evaluation
    assert all((row == b.calib.ids).all(1).any() for row in cal)  # seed 0's windows are the bench's; every pass read them
    runs = [json.loads(f.read_text()) for f in (tmp_path/'a').glob('*.json')]
    srch = [json.loads(f.read_text()) for f in (tmp_path/'a'/'search').glob('*.json')]
    assert len(srch) == 1 and srch[0]['calibration']['nsamples'] == 2 and srch[0]['extra']['score']['windows'] == 1
    learned = [r for r in runs if r['extra'].get('alloc') == 'learned']
    assert len(learned) == 1 and learned[0]['calibration']['nsamples'] == 4   # the run itself prunes with all 4 windows
    study(b, tmp_path/'b', **kw)
    plain = learn(b, 'wanda', 0.6, reseeded(b, 0, redraw=True), deltas=(0.1,), max_sweeps=1)
    assert [json.loads(f.read_text())['id'] for f in (tmp_path/'b'/'search').glob('*.json')] == [plain['id']]

def test_verdicts_carry_each_sides_perplexity():
    "The summary shows each side's perplexity (geometric mean over its runs) beside the KL verdict; none without ppl records."
    from wanda_nb.analysis.allocation import allocation_frame, allocation_verdicts, verdict_summary
    recs = [_rec('uniform', k, [1., 2., 3.]) | {'metrics.ppl.x': p} for k, p in enumerate((100., 400.))]
    recs += [_rec('b', k, [0.5, 1., 1.5]) | {'metrics.ppl.x': 10.} for k in range(2)]
    claims = (('3', 'b beats uniform', 'wanda', 'b', 'uniform'),)
    verdicts = lambda rs: allocation_verdicts(allocation_frame(pd.DataFrame(rs)), ('x',), claims=claims)
    v = verdicts(recs)
    assert abs(v.ppl_a[0] - 10.) < 1e-9 and abs(v.ppl_b[0] - 200.) < 1e-9
    assert '(ppl 10.0 vs 200.0)' in verdict_summary(v).numbers.iloc[0]   # evidence.num's format
    bare = [{k: x for k, x in r.items() if k != 'metrics.ppl.x'} for r in recs]
    assert 'ppl' not in verdict_summary(verdicts(bare)).numbers.iloc[0]
