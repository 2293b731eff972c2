import math

import pytest
import scipy.special
import torch

import genbook
from genbook.diffusion import (
    Diffusion,
    cosine_schedule,
    discretized_gaussian_log_prob,
    linear_schedule,
    normal_kl,
)


class OracleDiffusion(Diffusion):
    """A diffusion model of Gaussian data ``x ~ N(m, s^2 I)`` whose noise predictor is the exact one:
    ``q(z_t) = N(sqrt(alpha_t) m, v_t I)``, ``v_t = alpha_t s^2 + 1 - alpha_t``, so by Tweedie's formula
    ``E[eps | z_t] = sqrt(1 - alpha_t) (z_t - sqrt(alpha_t) m) / v_t``."""

    def __init__(self, *, m: float = 0.0, s: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.m, self.s = m, s

    def _predict_noise(self, z, t):
        a = self._at(self.alphas, t)
        v = a * self.s**2 + 1 - a
        return (1 - a).sqrt() * (z - a.sqrt() * self.m) / v


def _gaussian_nll(x, m, s):
    return 0.5 * (((x - m) / s) ** 2 + math.log(2 * math.pi * s * s)).sum(-1)


# ------------------------------------------------------------------ schedules
def test_linear_schedule_ends_and_alpha_decreases():
    betas = linear_schedule(1000, 1e-4, 0.02)
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    alpha = torch.cumprod(1 - betas, 0)
    assert (alpha.diff() < 0).all()
    assert alpha[-1].item() == pytest.approx(4.04e-5, rel=0.01)  # Ho et al.'s schedule ends near pure noise


def test_cosine_schedule_matches_its_alpha_and_ends_at_noise():
    T, s = 50, 0.008
    betas = cosine_schedule(T, s)
    alpha = torch.cumprod(1 - betas, 0)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 10, 25, 49):
        assert alpha[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-12)
    assert (alpha.diff() < 0).all() and ((betas > 0) & (betas <= 0.999)).all()
    assert betas[-1].item() == 0.999  # clipped where f reaches 0
    assert 0 < betas[0].item() < 0.01  # s keeps the first step small but positive


# ------------------------------------------------------------------ forward process
def test_kernel_equals_chained_forward_steps(gen):
    model = Diffusion(dim=1, T=20, beta_1=0.01, beta_T=0.2).double()
    x, n = 0.8, 200_000
    z = torch.full((n, 1), x, dtype=torch.float64)
    for t in range(1, 8):
        beta = model.betas[t - 1]
        z = (1 - beta).sqrt() * z + beta.sqrt() * torch.randn(n, 1, generator=gen, dtype=torch.float64)
        direct = model.q_sample(torch.full((n, 1), x, dtype=torch.float64), t, generator=gen)
        a = model.alphas[t - 1].item()
        se_mean, se_var = math.sqrt((1 - a) / n), (1 - a) * math.sqrt(2 / n)
        for draws in (z, direct):
            assert draws.mean().item() == pytest.approx(math.sqrt(a) * x, abs=4 * se_mean)
            assert draws.var().item() == pytest.approx(1 - a, abs=4 * se_var)


def test_q_sample_with_given_noise():
    model = Diffusion(dim=3, T=10).double()
    x, eps = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor([1, 4, 7, 10])
    a = model.alphas[t - 1][:, None]
    torch.testing.assert_close(model.q_sample(x, t, eps), a.sqrt() * x + (1 - a).sqrt() * eps)


def test_q_posterior_is_bayes_theorem_on_a_grid():
    model = Diffusion(dim=1, T=10, beta_1=0.05, beta_T=0.3).double()
    x, z_t = 0.7, -0.4
    grid = torch.linspace(-8, 8, 200_001, dtype=torch.float64)
    for t in (2, 5, 10):
        a_prev, beta = model.alphas_prev[t - 1], model.betas[t - 1]
        log_prior = -0.5 * (grid - a_prev.sqrt() * x) ** 2 / (1 - a_prev)  # q(z_{t-1} | x)
        log_lik = -0.5 * (z_t - (1 - beta).sqrt() * grid) ** 2 / beta  # q(z_t | z_{t-1})
        w = torch.softmax(log_prior + log_lik, 0)
        mean_grid = (w * grid).sum()
        var_grid = (w * (grid - mean_grid) ** 2).sum()
        mean, var = model.q_posterior(torch.tensor([[x]]).double(), torch.tensor([[z_t]]).double(), t)
        assert mean.item() == pytest.approx(mean_grid.item(), abs=1e-8)
        assert var.item() == pytest.approx(var_grid.item(), rel=1e-6)
    mean, var = model.q_posterior(torch.tensor([[x]]).double(), torch.tensor([[z_t]]).double(), 1)
    assert mean.item() == pytest.approx(x) and var.item() == 0  # t = 1: z_0 = x


def test_normal_kl_against_monte_carlo(gen):
    mq, vq = torch.tensor([0.3, -1.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
    mp, vp = torch.tensor([0.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 0.7], dtype=torch.float64)
    z = mq + vq.sqrt() * torch.randn(400_000, 2, generator=gen, dtype=torch.float64)
    log_ratio = (-0.5 * ((z - mq) ** 2 / vq + vq.log()) + 0.5 * ((z - mp) ** 2 / vp + vp.log())).sum(-1)
    se = log_ratio.std().item() / math.sqrt(z.shape[0])
    assert normal_kl(mq, vq, mp, vp).item() == pytest.approx(log_ratio.mean().item(), abs=4 * se)
    assert normal_kl(mq, vq, mq, vq).item() == 0


# ------------------------------------------------------------------ the discretised decoder
@pytest.mark.parametrize("std", [1e-3, 0.01, 0.3, 3.0])
def test_discretized_decoder_sums_to_one_over_the_levels(std):
    means = torch.linspace(-4, 4, 41, dtype=torch.float64)[:, None]  # (41, 1) against the 17 levels
    levels = torch.arange(17)[None, :]
    logp = discretized_gaussian_log_prob(levels, means, std, 17)  # (41, 17)
    assert torch.isfinite(logp).all() or std < 0.01  # far bins may underflow to -inf for tiny std
    torch.testing.assert_close(logp.logsumexp(1), torch.zeros(41, dtype=torch.float64), atol=1e-9, rtol=0)


def test_discretized_decoder_bins():
    normal = torch.distributions.Normal(torch.tensor(0.1, dtype=torch.float64), 0.2)
    h = 1 / 16
    mean = torch.tensor(0.1, dtype=torch.float64)
    for k in (0, 5, 8, 16):
        c = 2 * k / 16 - 1
        lo = normal.cdf(torch.tensor(c - h, dtype=torch.float64)) if k > 0 else 0.0
        hi = normal.cdf(torch.tensor(c + h, dtype=torch.float64)) if k < 16 else 1.0
        got = discretized_gaussian_log_prob(torch.tensor(k), mean, 0.2, 17).exp().item()
        assert got == pytest.approx(float(hi - lo), rel=1e-9)
    # far in a tail, where Phi(b) - Phi(a) would cancel to 0: still finite, by symmetry
    far = discretized_gaussian_log_prob(torch.tensor(2), torch.tensor(-1.0, dtype=torch.float64), 0.01, 17)
    assert far.item() == pytest.approx(float(scipy.special.log_ndtr(-18.75)), rel=1e-9)  # a = 18.75, b = 31.25


# ------------------------------------------------------------------ the bound
@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_bound_with_the_exact_noise_predictor_holds_and_tightens(variance, gen):
    m, s, n = 0.5, 0.6, 6000
    x = m + s * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    exact = _gaussian_nll(x, m, s)
    gaps = {}
    for T, beta_T in ((4, 0.5), (1000, 0.02)):
        model = OracleDiffusion(m=m, s=s, dim=1, T=T, variance=variance, beta_T=beta_T).double()
        terms = model.nll_bound(x, generator=gen)
        torch.testing.assert_close(terms["total"], terms["prior"] + terms["diffusion"] + terms["reconstruction"])
        torch.testing.assert_close(terms["per_step"].sum(1), terms["diffusion"] + terms["reconstruction"])
        gap = terms["total"] - exact
        gaps[T] = (gap.mean().item(), gap.std().item() / math.sqrt(n))
    for mean, se in gaps.values():
        assert mean > -4 * se  # the bound holds
    assert gaps[4][0] > gaps[1000][0] + 4 * (gaps[4][1] + gaps[1000][1])  # a coarse chain pays for it
    if variance == "beta":  # the optimal predictor with sigma_t^2 = beta_t: tight for a fine chain
        assert abs(gaps[1000][0]) < 4 * gaps[1000][1] + 0.01
    else:  # beta~_t is the variance given x, too small at small t whatever T: about 0.45 nats per coordinate
        assert gaps[1000][0] > 0.3


def test_step_subset_and_elbo_loss_estimate_the_same_bound(gen):
    m, s, n, T, k = -0.3, 0.8, 20_000, 20, 3
    x = m + s * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    model = OracleDiffusion(m=m, s=s, dim=2, T=T, beta_T=0.3, loss="elbo").double()
    full = model.nll_bound(x, generator=gen)
    per_step = full["per_step"]  # (n, T)
    # the steps the subset will visit: nll_bound's first draw from the generator
    steps = torch.randperm(T - 1, generator=torch.Generator().set_state(gen.get_state()))[:k] + 2
    sub = model.nll_bound(x, n_steps=k, generator=gen)
    assert "per_step" not in sub
    torch.testing.assert_close(sub["total"], sub["prior"] + sub["diffusion"] + sub["reconstruction"])
    picked = per_step[:, steps - 1]  # the same steps' terms, from other draws of z_t
    se = (picked.sum(1).std() * math.sqrt(2 / n)).item() * (T - 1) / k
    assert sub["diffusion"].mean().item() == pytest.approx((T - 1) / k * picked.sum(1).mean().item(), abs=4 * se)
    # loss="elbo": prior + T * (the term of a uniform step), an unbiased one-draw estimate of the total
    loss = model.loss(x, generator=gen).item()
    se = (T * per_step).std().item() / math.sqrt(n)
    assert loss == pytest.approx(full["total"].mean().item(), abs=4 * se)


def test_levels_bound_is_in_nats_per_image_and_discrete():
    model = OracleDiffusion(m=0.0, s=0.6, kind="levels", dim=4, levels=5, T=50, beta_T=0.2).double()
    x = torch.tensor([[0, 1, 2, 4], [4, 4, 0, 3]])
    terms = model.nll_bound(x, generator=torch.Generator().manual_seed(1))
    assert terms["total"].shape == (2,) and (terms["reconstruction"] >= 0).all()  # -ln of a probability
    torch.testing.assert_close(terms["total"], terms["prior"] + terms["diffusion"] + terms["reconstruction"])


# ------------------------------------------------------------------ the levels head
def test_levels_head_probabilities_and_rounding_at_low_noise(gen):
    model = Diffusion(kind="levels", dim=64, levels=17, T=1000, head="levels").double()  # untrained
    x = torch.randint(0, 17, (32, 64), generator=gen)
    for t in (1, 300, 1000):
        p = model.level_probs(model.q_sample(x, t, generator=gen), t)
        assert p.shape == (32, 64, 17) and (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(32, 64, dtype=torch.float64))
    # t = 1: sigma_1 = 0.01, an eighth of the half gap 1/16 between levels, so the likelihood of z_1 picks
    # the level whatever the network says; x_hat is then x exactly and eps_hat the noise that was added
    eps = torch.randn(32, 64, generator=gen, dtype=torch.float64)
    z = model.q_sample(x, 1, eps)
    p = model.level_probs(z, 1)
    assert torch.equal(p.argmax(-1), x) and p.max(-1).values.min() > 1 - 1e-9
    torch.testing.assert_close(model.predict_noise(z, 1), eps, atol=1e-6, rtol=0)
    terms = model.nll_bound(x, n_steps=5, generator=gen)
    assert terms["reconstruction"].max() < 1e-6  # the decoder's bin holds (almost) all its mass


class _UniformLevels(Diffusion):
    """The levels head with zero logits: ``p(x_i = c_k | z_t)`` is then the exact posterior of data whose
    pixels are independent and uniform over the levels, so its denoiser is the optimal one for that data."""

    def __init__(self, **kwargs):
        super().__init__(kind="levels", head="levels", **kwargs)
        with torch.no_grad():
            for p in self.net.parameters():
                p.zero_()


def test_levels_head_bound_holds_on_uniform_levels(gen):
    dim, levels, n = 2, 3, 1000
    x = torch.randint(0, levels, (n, dim), generator=gen)
    exact = dim * math.log(levels)  # -ln P(x) of the uniform levels
    gaps = {}
    for variance in ("posterior", "levels"):
        model = _UniformLevels(dim=dim, levels=levels, T=100, beta_1=1e-3, beta_T=0.2, variance=variance).double()
        total = model.nll_bound(x, generator=torch.Generator().manual_seed(1))["total"]
        gaps[variance] = (total.mean().item() - exact, total.std().item() / math.sqrt(n))
    # the head's posterior is Bayes' rule on the levels, pixel by pixel
    z = model.q_sample(x, 30, generator=gen)
    a = model.alphas[29]
    like = torch.exp(
        -((z[..., None] - a.sqrt() * torch.linspace(-1, 1, levels, dtype=torch.float64)) ** 2) / (2 * (1 - a))
    )
    p = like / like.sum(-1, keepdim=True)
    torch.testing.assert_close(model.level_probs(z, 30), p)
    # variance="levels": beta~_t plus (sqrt(alpha_{t-1}) beta_t / (1 - alpha_t))^2 Var[x_i | z_t]
    c = torch.linspace(-1, 1, levels, dtype=torch.float64)
    x_var = p @ c**2 - (p @ c) ** 2
    a_prev, beta = model.alphas[28], model.betas[29]
    expected = (1 - a_prev) * beta / (1 - a) + a_prev * beta**2 / (1 - a) ** 2 * x_var
    torch.testing.assert_close(model.p_mean_var(z, 30)[1], expected)
    assert model.p_mean_var(z, 1)[1].max().item() == pytest.approx(1e-3)  # the decoder keeps beta_1
    for mean, se in gaps.values():
        assert mean > -4 * se  # the bound holds
    # the optimal head keeps it close; the moment-matched variance closes most of the gap (0.26 -> 0.03)
    assert gaps["posterior"][0] < 0.6 and gaps["levels"][0] < 0.15
    assert gaps["levels"][0] < gaps["posterior"][0] - 0.1


# ------------------------------------------------------------------ the loss and sampling
def test_simple_loss_is_the_squared_noise_error(gen):
    model = Diffusion(dim=3, T=5)
    x = torch.randn(8, 3)
    loss = model.loss(x, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(1, 6, (8,), generator=g)
    eps = torch.randn(8, 3, generator=g)
    expected = (eps - model.predict_noise(model.q_sample(x, t, eps), t)).pow(2).sum(1).mean()
    torch.testing.assert_close(loss, expected)


def test_training_lowers_the_bound():
    genbook.seed(0)
    x = 0.5 * torch.randn(512, 2) + 1.0
    model = Diffusion(dim=2, T=20, beta_T=0.3, hidden=32, layers=2)
    g = torch.Generator().manual_seed(0)
    before = model.nll_bound(x, generator=g)["total"].mean().item()
    genbook.fit(model, x, steps=300, batch_size=128, lr=3e-3)
    after = model.nll_bound(x, generator=g)["total"].mean().item()
    exact = _gaussian_nll(x, 1.0, 0.5).mean().item()
    assert after < before - 1 and after > exact - 0.1


@pytest.mark.parametrize("kind", ["points", "levels"])
def test_sample_shapes_dtypes_and_seeds(kind):
    model = Diffusion(kind=kind, dim=64 if kind == "levels" else 2, T=8)
    a = model.sample(5, generator=torch.Generator().manual_seed(2))
    b = model.sample(5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    if kind == "levels":
        assert a.shape == (5, 64) and a.dtype == torch.long and a.min() >= 0 and a.max() <= 16
    else:
        assert a.shape == (5, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()


def test_oracle_samples_have_the_data_moments(gen):
    model = OracleDiffusion(m=1.5, s=0.5, dim=1, T=200, beta_T=0.1).double()
    x = model.sample(20_000, generator=gen)
    assert x.mean().item() == pytest.approx(1.5, abs=0.02)
    assert x.std().item() == pytest.approx(0.5, abs=0.02)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: linear_schedule(10, 0.0, 0.02), "beta_1 must be"),
        (lambda: linear_schedule(10, 1e-4, 1.0), "beta_T must be"),
        (lambda: linear_schedule(0), "T must be"),
        (lambda: cosine_schedule(0), "T must be"),
        (lambda: cosine_schedule(10, s=-1.0), "s must be"),
        (lambda: Diffusion(T=0), "T must be"),
        (lambda: Diffusion(beta_T=1.5), "beta_T must be"),
        (lambda: Diffusion(kind="images"), "kind must be"),
        (lambda: Diffusion(schedule="quadratic"), "schedule must be"),
        (lambda: Diffusion(variance="learned"), "variance must be"),
        (lambda: Diffusion(loss="vlb"), "loss must be"),
        (lambda: Diffusion(kind="levels", head="pixels"), "head must be"),
        (lambda: Diffusion(kind="points", head="levels"), 'head="levels" needs kind="levels"'),
        (lambda: Diffusion(dropout=1.0), "dropout must be"),
        (lambda: Diffusion(kind="levels", variance="levels"), 'variance="levels" needs head="levels"'),
        (lambda: Diffusion(kind="levels").level_probs(torch.zeros(1, 2), 1), 'level_probs needs head="levels"'),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_inputs_name_the_argument():
    points = Diffusion(dim=2, T=10)
    with pytest.raises(ValueError, match=r"t must hold steps 1..T = 1..10, found 11"):
        points.q_sample(torch.randn(3, 2), 11)
    with pytest.raises(ValueError, match=r"t must hold steps 1..T = 1..10, found 0"):
        points.p_mean_var(torch.randn(3, 2), torch.tensor([1, 0, 2]))
    with pytest.raises(ValueError, match=r"t must be an int or an integer tensor"):
        points.predict_noise(torch.randn(3, 2), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"t must be an int or an integer tensor of shape \(\) or \(3,\)"):
        points.q_sample(torch.randn(3, 2), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(B, 2\)"):
        points.nll_bound(torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"z_t must be a tensor of shape \(B, 2\)"):
        points.q_posterior(torch.randn(3, 2), torch.randn(3), 2)
    with pytest.raises(ValueError, match=r"eps must be a floating-point tensor of shape \(3, 2\)"):
        points.q_sample(torch.randn(3, 2), 2, torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"n_steps must be an int in 1..9"):
        points.nll_bound(torch.randn(3, 2), n_steps=10)
    levels = Diffusion(kind="levels", dim=64, T=10)
    bad = torch.zeros(2, 64, dtype=torch.long)
    bad[1, 5] = 17
    with pytest.raises(ValueError, match=r"x must hold levels 0..16, found 17"):
        levels.loss(bad)
    with pytest.raises(ValueError, match=r"x must hold integer levels 0..16"):
        levels.nll_bound(torch.rand(2, 64))
    with pytest.raises(ValueError, match=r"n must be"):
        levels.sample(0)
    with pytest.raises(ValueError, match=r"x must hold levels 0..16, found -1"):
        discretized_gaussian_log_prob(torch.tensor([3, -1]), torch.zeros(2), 0.1, 17)
    with pytest.raises(ValueError, match=r"x must hold integer levels 0..4"):
        discretized_gaussian_log_prob(torch.tensor([0.5]), torch.zeros(1), 0.1, 5)
