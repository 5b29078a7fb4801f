"Property tests of the analysis helpers (wanda_nb.analysis.why) and OWL's allocation (wanda_nb.allocation) on random inputs."
import numpy as np, pytest, torch
from wanda_nb.mask import select_mask, wanda_score, magnitude_score
from wanda_nb.calib import FeatureStats
from wanda_nb.theory import rel_recon_error
from wanda_nb.analysis.why import mask_disagreement, removed_energy, feature_norm_stats
from wanda_nb.allocation import owl_sparsities, outlier_ratio


@pytest.mark.parametrize('seed', range(5))
def test_wanda_minimises_the_diagonal_estimate_per_row(seed):
    "Among masks pruning k weights per row, Wanda's has the smallest Σ w²‖X_j‖²: never above per-row magnitude's."
    g = torch.Generator().manual_seed(seed)
    W, norm = torch.randn(7, 24, generator=g), torch.rand(24, generator=g) * 10
    for s in (0.25, 0.5, 0.75):
        wm, mm = select_mask(wanda_score(W, norm), s), select_mask(magnitude_score(W), s)
        rnd = torch.zeros_like(wm).scatter_(1, torch.rand(W.shape, generator=g).argsort(1)[:, :int(24 * s)], True)
        e = lambda m: removed_energy(W, m, norm)
        assert e(wm) <= e(mm) + 1e-9 and e(wm) <= e(rnd) + 1e-9
        d = mask_disagreement(mm, wm)
        assert d['only1'] == d['only2'] and 0 <= d['jaccard'] <= 1  # equal counts per row: disagreements pair up


@pytest.mark.parametrize('seed', range(3))
def test_gram_error_matches_explicit_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    W, X = torch.randn(5, 12, generator=g), torch.randn(300, 12, generator=g) * torch.rand(12, generator=g) * 4
    fs = FeatureStats(12, hessian=True); fs.update(X)
    Wh = W.masked_fill(select_mask(wanda_score(W, fs.norm), 0.5), 0)
    assert rel_recon_error(W, Wh, G=fs.xtx) == pytest.approx(rel_recon_error(W, Wh, X.T), rel=1e-5)


@pytest.mark.parametrize('seed', range(5))
def test_owl_sparsities_properties(seed):
    r = np.random.default_rng(seed).random(8)
    s = owl_sparsities(r, 0.6, 0.08)
    assert np.mean(s) == pytest.approx(0.6, abs=1e-12)
    assert max(s) - min(s) == pytest.approx(0.16, abs=1e-12)  # min–max scaling spans the full 2λ
    order = np.argsort(r)
    assert all(np.diff(np.asarray(s)[order]) <= 1e-12)  # more outliers, lower sparsity


def test_outlier_ratio_and_norm_spread_are_scale_invariant():
    x = torch.rand(1000, generator=torch.Generator().manual_seed(0)) ** 8
    assert outlier_ratio(x) == outlier_ratio(4 * x)  # a power of two: exact in float32
    assert feature_norm_stats(x)['top_share'] == pytest.approx(feature_norm_stats(7 * x)['top_share'], rel=1e-6)  # 7·x rounds in float32
