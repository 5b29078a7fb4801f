"Masks (and updated weights) bit-identical to those saved before the refactor (tests/ref_masks.py, at f523c29)."
import warnings
import numpy as np, pytest
import ref_masks

@pytest.fixture(scope='module')
def now(): return ref_masks.compute()

def test_every_configuration_unchanged(now):
    ref = np.load(ref_masks.OUT)
    keys = sorted({k.split('|')[0] for k in ref.files})
    assert keys == sorted(now), f"configurations differ: {set(keys) ^ set(now)}"
    sgpt = lambda k: 'sparsegpt' in k.split('/')[1]
    bad = [k for k in keys if (ref_masks.flipped(ref[k + '|bits'], now[k][0]) > (ref_masks.SPARSEGPT_FLIPS if sgpt(k) else 0))]
    assert not bad, f"masks changed: {bad}"
    bad = [k for k in keys if not sgpt(k) and str(ref[k + '|sha']) != now[k][1]]
    assert not bad, f"weights changed (masks equal): {bad}"
    other = [k for k in keys if sgpt(k) and str(ref[k + '|sha']) != now[k][1]]
    if other: warnings.warn(f"{len(other)} SparseGPT configurations: weights differ from the reference machine's in float "
                            "rounding (another CPU's BLAS); masks within ref_masks.SPARSEGPT_FLIPS")
