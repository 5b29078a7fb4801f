"Property tests of wanda_nb.analysis.sweep on random synthetic record tables (no model needed)."
import numpy as np, pandas as pd, pytest
from wanda_nb.analysis.sweep import collapse_point, relative_increase, sweep_table

SP = [round(0.1 * k, 1) for k in range(1, 10)]

def _records(rng, methods=('a', 'b', 'c'), dense=5.0):
    rows = [dict(method='dense', sparsity=0.0, structure='unstructured', **{'metrics.ppl.x': dense, 'metrics.kl.x': 0.0})]
    for m in methods:
        ppl = dense * np.exp(np.cumsum(rng.uniform(0, 1, len(SP))))      # increasing in sparsity
        kl = np.cumsum(rng.uniform(0, 1, len(SP)))
        rows += [dict(method=m, sparsity=s, structure='unstructured', **{'metrics.ppl.x': p, 'metrics.kl.x': k})
                 for s, p, k in zip(SP, ppl, kl)]
    return pd.DataFrame(rows)

@pytest.mark.parametrize('seed', range(20))
def test_collapse_is_first_crossing(seed):
    rng = np.random.default_rng(seed)
    df, f = _records(rng), rng.uniform(1.5, 50)
    t = sweep_table(df, 'ppl', 'x')
    c = collapse_point(df, 'ppl', f, 'x')
    for m, row in t.iterrows():
        above = [s for s, v in row.items() if v > f * 5.0]
        if above:
            assert c.loc[m, 'collapse'] == min(above)
            assert all(v <= f * 5.0 for s, v in row.items() if s < min(above))   # nothing crossed earlier
        else: assert np.isnan(c.loc[m, 'collapse'])

@pytest.mark.parametrize('seed', range(5))
def test_relative_increase_matches_ratio(seed):
    df = _records(np.random.default_rng(seed))
    ri = relative_increase(df, 'x', (0.5, 0.7))
    t = sweep_table(df, 'ppl', 'x')
    np.testing.assert_allclose(ri.values, 100 * (t[[0.5, 0.7]].values / 5.0 - 1), rtol=1e-12)

def test_missing_dense_is_refused():
    df = _records(np.random.default_rng(0))
    with pytest.raises(ValueError, match='dense record'): relative_increase(df[df.method != 'dense'], 'x')
