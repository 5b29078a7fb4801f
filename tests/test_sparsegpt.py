"Property tests of `wanda_nb.sparsegpt`: random shapes, N:M patterns, parity with a naive float64 OBS, error vs Wanda."
import pytest, torch
from wanda_nb.sparsegpt import sparsegpt_prune, hessian
from wanda_nb.mask import wanda_score, select_mask


def correlated_inputs(g, n_tokens, d_in):
    "(n_tokens, d_in) inputs with randomly mixed features and a few ×10 outlier features."
    A = torch.randn(d_in, d_in, generator=g) / d_in ** 0.5
    scale = torch.ones(d_in)
    scale[torch.randperm(d_in, generator=g)[:max(1, d_in // 32)]] = 10.
    return (torch.randn(n_tokens, d_in, generator=g) @ A.T) * scale


def rel_err(W, W_hat, X):
    return ((X @ (W - W_hat).T) ** 2).sum().item() / ((X @ W.T) ** 2).sum().item()


def naive_sparsegpt(W, H, sparsity, structure, blocksize, percdamp):
    "Independent float64 reference: explicit inverse of the free columns' Hessian at every column, no Cholesky, no lazy updates."
    W, H = W.double().clone(), H.double().clone()
    d_in = W.shape[1]
    dead = H.diagonal() == 0
    H.diagonal()[dead] = 1
    W[:, dead] = 0
    H.diagonal().add_(percdamp * H.diagonal().mean())
    corner = torch.stack([torch.linalg.inv(H[j:, j:])[0, 0] for j in range(d_in)])  # [H_F_j⁻¹]_00
    mask = torch.zeros(W.shape, dtype=torch.bool)
    for i in range(d_in):
        if structure is None and i % blocksize == 0:
            b = slice(i, min(i + blocksize, d_in))
            score = W[:, b] ** 2 / corner[b]
            thresh = score.flatten().sort().values[int(score.numel() * sparsity)]
            mask[:, b] = score <= thresh
        if structure is not None and i % structure[1] == 0:
            n, m = structure
            score = W[:, i:i + m] ** 2 / corner[i:i + m]
            idx = score.argsort(dim=1, stable=True)[:, :n]
            mask[:, i:i + m].scatter_(1, idx, True)          # in place through the view
        Hf_inv = torch.linalg.inv(H[i:, i:])
        q = W[:, i].masked_fill(mask[:, i], 0)
        W[:, i:] -= ((W[:, i] - q) / Hf_inv[0, 0])[:, None] * Hf_inv[:, 0][None]
        W[:, i] = q
    return W, mask


@pytest.mark.parametrize("seed", range(6))
def test_random_shapes_zeros_at_mask(seed):
    g = torch.Generator().manual_seed(seed)
    d_out = int(torch.randint(4, 40, (1,), generator=g))
    d_in = 8 * int(torch.randint(2, 17, (1,), generator=g))
    blocksize = [8, 16, 32, 128][seed % 4]
    s = [0.3, 0.5, 0.7][seed % 3]
    dtype = [torch.float32, torch.float16, torch.bfloat16][seed % 3]
    X = correlated_inputs(g, 3 * d_in, d_in)
    W = (torch.randn(d_out, d_in, generator=g) / d_in ** 0.5).to(dtype)
    H = hessian(X)
    H0 = H.clone()
    for structure in (None, (2, 4), (4, 8), (1, 4)):
        Wn, mask = sparsegpt_prune(W, H, s, structure, blocksize=blocksize)
        assert Wn.dtype == dtype and Wn.shape == W.shape and mask.dtype == torch.bool
        assert torch.isfinite(Wn.float()).all()
        assert (Wn[mask] == 0).all()
        if structure:
            n, m = structure
            assert (mask.view(d_out, -1, m).sum(-1) == n).all()
        else:  # official rule: int(numel·s) + 1 per block (random data: no ties)
            want = sum(int(d_out * min(blocksize, d_in - i) * s) + 1 for i in range(0, d_in, blocksize))
            assert mask.sum().item() == want
    assert torch.equal(H, H0)


@pytest.mark.parametrize("structure,blocksize", [(None, 16), (None, 64), ((2, 4), 16), ((4, 8), 64)])
def test_parity_with_naive_float64_obs(structure, blocksize):
    g = torch.Generator().manual_seed(1)
    d_out, d_in = 12, 48
    X = correlated_inputs(g, 200, d_in)
    X[:, 7] = 0                                    # one dead input
    W = torch.randn(d_out, d_in, generator=g) / d_in ** 0.5
    H = hessian(X)
    Wn, mask = sparsegpt_prune(W, H, 0.5, structure, blocksize=blocksize)
    Wr, mask_r = naive_sparsegpt(W, H, 0.5, structure, blocksize, 0.01)
    assert torch.equal(mask, mask_r)
    assert torch.allclose(Wn.double(), Wr, atol=1e-4, rtol=1e-3)


def test_error_below_wanda_on_correlated_inputs():
    wins, ratios = 0, []
    for seed in range(6):
        g = torch.Generator().manual_seed(100 + seed)
        X = correlated_inputs(g, 512, 128)
        W = torch.randn(32, 128, generator=g) / 128 ** 0.5
        H = hessian(X)
        for s, structure in ((0.5, None), (0.5, (2, 4)), (0.7, None)):
            e_s = rel_err(W, sparsegpt_prune(W, H, s, structure)[0], X)
            e_w = rel_err(W, W.masked_fill(select_mask(wanda_score(W, X.norm(dim=0)), s, structure), 0), X)
            wins += e_s < e_w
            ratios.append(e_s / e_w)
    assert wins >= 16                              # of 18
    assert sum(ratios) / len(ratios) < 0.9


def test_sparsity_zero_is_identity_and_bad_input():
    W, H = torch.randn(4, 8, dtype=torch.bfloat16), hessian(torch.randn(32, 8))
    W0, m0 = sparsegpt_prune(W, H, 0.0)
    assert torch.equal(W0, W) and not m0.any()
    for args, kw, msg in [((W, H, 1.0), {}, "0 <= sparsity < 1"), ((W, H, 0.5, (3, 3)), {}, "0 < n < m"),
                          ((W, H, 0.5, (2, 3)), {}, "not divisible by m=3"), ((W, H[:4, :4], 0.5), {}, "H must have shape"),
                          ((W, H, 0.5), dict(percdamp=-1.), "percdamp must be >= 0")]:
        with pytest.raises(ValueError) as e:
            sparsegpt_prune(*args, **kw)
        assert msg in str(e.value)
