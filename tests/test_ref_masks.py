"Masks (and SparseGPT's updated weights) bit-identical to those saved before the refactor (tests/ref_masks.py, at f523c29)."
import numpy as np, pytest
import ref_masks

@pytest.fixture(scope='module')
def now(): return ref_masks.compute()

def test_every_configuration_unchanged(now):
    ref = np.load(ref_masks.OUT)
    keys = sorted({k.split('|')[0] for k in ref.files})
    assert keys == sorted(now), f"configurations differ: {set(keys) ^ set(now)}"
    bad = [k for k in keys if not np.array_equal(ref[k + '|bits'], now[k][0])]
    assert not bad, f"masks changed: {bad}"
    bad = [k for k in keys if str(ref[k + '|sha']) != now[k][1]]
    assert not bad, f"weights changed (masks equal): {bad}"
