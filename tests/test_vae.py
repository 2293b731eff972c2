import math

import pytest
import torch

import genbook
from genbook.vae import VAE, causal_neighbours, gaussian_kl, gaussian_kl_full


def _linear_vae(dim=4, latent=2, obs_var=None, seed=0):
    """A linear-Gaussian VAE in float64 with random (not trained) parameters."""
    torch.manual_seed(seed)
    m = VAE(dim=dim, latent=latent, layers=0, decoder="gaussian", obs_var=obs_var).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))
        if obs_var is None:
            m.log_obs_var.fill_(math.log(0.5))
    return m


def _set_encoder_to_posterior(m, gen, *, widen=1.0, shift=0.0):
    """Give a linear VAE with orthogonal decoder columns the encoder that outputs p(z | x) exactly
    (or, with ``widen`` and ``shift``, a q with ``widen`` times its variances and its mean moved by
    ``shift`` posterior standard deviations)."""
    D, L = m.dim, m.latent
    with torch.no_grad():
        Q, _ = torch.linalg.qr(torch.randn(D, L, generator=gen, dtype=torch.float64))
        W = Q * torch.tensor([1.5, 0.7], dtype=torch.float64)  # orthogonal columns: p(z | x) has diagonal cov
        m.decoder_net[0].weight.copy_(W)
        b = m.decoder_net[0].bias
        var = m.log_obs_var.exp()
        M = W.T @ W + var * torch.eye(L, dtype=torch.float64)
        A = torch.linalg.solve(M, W.T)  # posterior mean = A (x - b)
        enc = m.encoder[0]
        enc.weight.zero_()
        enc.weight[:L] = A
        post_var = var / M.diagonal()
        enc.bias[:L] = -A @ b + shift * post_var.sqrt()
        enc.bias[L:] = torch.log(widen * post_var)


# ---------------------------------------------------------------- KL in closed form
def test_gaussian_kl_matches_monte_carlo(gen):
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]], dtype=torch.float64)
    logvar = torch.tensor([[0.2, -1.0, 0.5], [-2.0, 0.0, 1.0]], dtype=torch.float64)
    n = 200_000
    z = mu + (0.5 * logvar).exp() * torch.randn(n, *mu.shape, generator=gen, dtype=torch.float64)
    log_q = -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)
    log_p = -0.5 * (z**2 + math.log(2 * math.pi)).sum(-1)
    d = log_q - log_p  # (n, B)
    se = d.std(0) / math.sqrt(n)
    err = (d.mean(0) - gaussian_kl(mu, logvar)).abs()
    assert (err < 4 * se).all(), (err, se)
    assert torch.equal(gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)), torch.zeros(1))


def test_gaussian_kl_full_against_torch_distributions(gen):
    B, L = 3, 4
    mu_q, mu_p = torch.randn(B, L, generator=gen, dtype=torch.float64), torch.randn(B, L, dtype=torch.float64)
    var_q = torch.rand(B, L, generator=gen, dtype=torch.float64) + 0.1
    A = torch.randn(L, L, generator=gen, dtype=torch.float64)
    cov_p = A @ A.T + 0.5 * torch.eye(L, dtype=torch.float64)
    q = torch.distributions.MultivariateNormal(mu_q, torch.diag_embed(var_q))
    p = torch.distributions.MultivariateNormal(mu_p, cov_p)
    expected = torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(gaussian_kl_full(mu_q, var_q, mu_p, cov_p), expected, rtol=0, atol=1e-10)
    batched = cov_p.expand(B, L, L)
    torch.testing.assert_close(gaussian_kl_full(mu_q, var_q, mu_p, batched), expected, rtol=0, atol=1e-10)
    # against N(0, I) it is gaussian_kl
    zero, eye = torch.zeros(B, L, dtype=torch.float64), torch.eye(L, dtype=torch.float64)
    torch.testing.assert_close(
        gaussian_kl_full(mu_q, var_q, zero, eye), gaussian_kl(mu_q, var_q.log()), atol=1e-12, rtol=0
    )


# ---------------------------------------------------------------- the ELBO identity on the linear VAE
def test_exact_log_prob_is_ppca_marginal(gen):
    m = _linear_vae()
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    W, b = m.decoder_net[0].weight, m.decoder_net[0].bias
    cov = W @ W.T + 0.5 * torch.eye(4, dtype=torch.float64)
    # brute force: ln N(x; b, C) from its formula
    diff = x - b
    expected = -0.5 * (diff @ torch.linalg.inv(cov) * diff).sum(1) - 0.5 * torch.logdet(2 * math.pi * cov)
    torch.testing.assert_close(m.exact_log_prob(x), expected, atol=1e-10, rtol=0)


def test_log_p_equals_elbo_plus_kl_to_the_posterior(gen):
    m = _linear_vae()  # random encoder: an arbitrary q(z | x), far from the posterior
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    mu, logvar = m.encode(x)
    post_mean, post_cov = m.exact_posterior(x)
    gap = gaussian_kl_full(mu, logvar.exp(), post_mean, post_cov)
    assert (gap > 0.1).all()  # q really is arbitrary
    with torch.no_grad():
        torch.testing.assert_close(m.exact_log_prob(x), m.exact_elbo(x) + gap, atol=1e-10, rtol=0)


def test_exact_posterior_against_bayes_rule(gen):
    m = _linear_vae()
    x = torch.randn(1, 4, generator=gen, dtype=torch.float64)
    mean, cov = m.exact_posterior(x)
    # ln p(z | x) = ln p(x | z) + ln p(z) - ln p(x) at a few z, against the Gaussian's own density
    z = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    log_joint = m.log_p_x_given_z(x.expand(5, 4), z) - 0.5 * (z**2).sum(1) - math.log(2 * math.pi)
    post = torch.distributions.MultivariateNormal(mean[0], cov)
    torch.testing.assert_close(log_joint - m.exact_log_prob(x), post.log_prob(z), atol=1e-10, rtol=0)


def test_monte_carlo_elbo_estimates_the_exact_elbo(gen):
    m = _linear_vae()
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    n = 20_000
    with torch.no_grad():
        draws = torch.stack([m.elbo(x, generator=gen) for _ in range(200)])  # (200, B), 1 sample each
        many = m.elbo(x, n_samples=n, generator=gen)
        exact = m.exact_elbo(x)
    se = draws.std(0) / math.sqrt(n)
    assert ((many - exact).abs() < 4 * se).all(), (many - exact, se)


def test_elbo_and_iwae_equal_log_p_when_q_is_the_posterior(gen):
    m = _linear_vae()
    _set_encoder_to_posterior(m, gen)
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    mu, logvar = m.encode(x)
    post_mean, post_cov = m.exact_posterior(x)
    torch.testing.assert_close(torch.diag_embed(logvar.exp()), post_cov.expand(5, 2, 2), atol=1e-12, rtol=0)
    torch.testing.assert_close(mu, post_mean, atol=1e-12, rtol=0)
    log_p = m.exact_log_prob(x)
    with torch.no_grad():
        torch.testing.assert_close(m.exact_elbo(x), log_p, atol=1e-10, rtol=0)
        # with q = p(z | x) every weight p(x, z) / q(z | x) equals p(x): zero-variance estimates
        torch.testing.assert_close(m.log_weights(x, 7, generator=gen), log_p.expand(7, 5), atol=1e-10, rtol=0)
        torch.testing.assert_close(m.iwae_bound(x, 7, generator=gen), log_p, atol=1e-10, rtol=0)


def test_iwae_bound_increases_with_k_towards_log_p(gen):
    m = _linear_vae()
    # q wider than the posterior (so the importance weights have a finite variance) and off-centre
    _set_encoder_to_posterior(m, gen, widen=4.0, shift=1.0)
    x = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    log_p = m.exact_log_prob(x)
    reps = 200
    means, ses = [], []
    for k in (1, 10, 100):
        est = torch.stack([m.iwae_bound(x, k, generator=gen, batch=512) for _ in range(reps)])  # (reps, B)
        means.append(est.mean(0))
        ses.append(est.std(0) / math.sqrt(reps))
    with torch.no_grad():
        torch.testing.assert_close(means[0], m.exact_elbo(x), atol=float(4 * ses[0].max()), rtol=0)  # K=1: ELBO
    for lo, hi, se_lo, se_hi in zip(means[:-1], means[1:], ses[:-1], ses[1:]):
        assert (hi > lo - 3 * (se_lo**2 + se_hi**2).sqrt()).all()
    assert (means[2] - means[0] > 1.0).all()  # the ELBO of this q is loose; K=100 is much tighter
    assert (means[2] < log_p + 4 * ses[2]).all()  # still a lower bound
    k = 20_000
    log_w = m.log_weights(x, k, generator=gen, batch=4096)  # (k, B), chunked over K
    big = torch.logsumexp(log_w, 0) - math.log(k)
    se = (log_w - big).exp().std(0) / math.sqrt(k)  # delta method: the standard error of ln mean(w)
    assert ((big - log_p).abs() < 4 * se).all(), (big - log_p) / se


def test_reparameterised_gradient_is_unbiased(gen):
    m = _linear_vae(dim=3, latent=2)
    x = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    params = [p for _, p in m.named_parameters()]
    exact = torch.autograd.grad(m.exact_elbo(x).sum(), params)
    reps = 2000
    draws = [[] for _ in params]
    for _ in range(reps):
        for d, g in zip(draws, torch.autograd.grad(m.elbo(x, generator=gen).sum(), params)):
            d.append(g)
    for name_p, e, d in zip(dict(m.named_parameters()), exact, draws):
        d = torch.stack(d)
        se = d.std(0) / math.sqrt(reps)
        z = (d.mean(0) - e).abs() / (se + 1e-12)
        assert (z < 4.5).all(), (name_p, z.max())
    # the encoder's gradient flows through z = mu + sigma * eps: nonzero, and not only via the KL
    assert exact[0].abs().sum() > 0


# ---------------------------------------------------------------- the categorical decoder
def test_categorical_log_likelihood_is_a_sum_of_log_softmax(gen):
    m = VAE(dim=5, latent=3, hidden=8, levels=4)
    x = torch.randint(0, 4, (3, 5), generator=gen)
    z = torch.randn(3, 3, generator=gen)
    logits = m.decode(z)
    assert logits.shape == (3, 5, 4)
    expected = torch.zeros(3)
    for b in range(3):
        for d in range(5):
            row = logits[b, d]
            expected[b] += row[x[b, d]] - torch.log(torch.exp(row).sum())
    torch.testing.assert_close(m.log_p_x_given_z(x, z), expected, atol=1e-5, rtol=0)


def test_bounds_on_a_tiny_discrete_model_bracket_the_exact_log_p(gen):
    torch.manual_seed(1)
    m = VAE(dim=2, latent=1, hidden=16, layers=1, levels=3, activation="tanh").double()
    with torch.no_grad():
        m.decoder_net[-1].weight.mul_(4)  # a decoder that varies with z, so p(x) is not a product
    xs = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # all 9 images
    # exact ln p(x) = ln int p(x | z) N(z; 0, 1) dz by the midpoint rule on [-10, 10]
    h = 1e-3
    zs = torch.arange(-10 + h / 2, 10, h, dtype=torch.float64)[:, None]  # (G, 1)
    with torch.no_grad():
        logp_x_z = m.decode(zs).log_softmax(-1)  # (G, 2, 3)
        log_lik = logp_x_z[:, 0, xs[:, 0]] + logp_x_z[:, 1, xs[:, 1]]  # (G, 9)
        log_p = torch.logsumexp(log_lik - 0.5 * zs**2 - 0.5 * math.log(2 * math.pi), 0) + math.log(h)
    torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-9, rtol=0)
    n = 4000
    with torch.no_grad():
        elbo = torch.stack([m.elbo(xs, generator=gen) for _ in range(n)])  # (n, 9)
    elbo_mean, elbo_se = elbo.mean(0), elbo.std(0) / math.sqrt(n)
    k = 5000
    log_w = m.log_weights(xs, k, generator=gen)
    iwae = torch.logsumexp(log_w, 0) - math.log(k)
    iwae_se = (log_w - iwae).exp().std(0) / math.sqrt(k)  # delta method: the standard error of ln mean(w)
    gap = log_p - elbo_mean
    assert (gap > -4 * elbo_se).all()  # -ELBO >= -ln p(x)
    assert gap.max() > 0.05  # and the bound is not tight everywhere, so the check can fail
    assert (iwae > elbo_mean + gap / 2).all()  # IWAE closes most of the gap ...
    assert ((iwae - log_p).abs() < 4 * iwae_se).all(), (iwae - log_p) / iwae_se  # ... all of it, within its noise


# ---------------------------------------------------------------- sampling, reconstruction, the digits
def test_sample_and_reconstruct_shapes(gen):
    m = VAE(dim=64, latent=4, hidden=16, layers=1)
    s = m.sample(7, generator=gen)
    assert s.shape == (7, 64) and s.dtype == torch.long and s.min() >= 0 and s.max() <= 16
    x = genbook.data.digits("val")[:5]
    r = m.reconstruct(x)
    assert r.shape == (5, 64) and r.dtype == torch.long
    g = VAE(dim=3, latent=2, hidden=8, decoder="gaussian", obs_var=0.1)
    assert g.sample(4, generator=gen).dtype == torch.float32 and g.sample(4).shape == (4, 3)


def test_categorical_samples_follow_the_decoder(gen):
    m = VAE(dim=1, latent=1, hidden=4, layers=1, levels=3)
    with torch.no_grad():
        m.decoder_net[-1].weight.zero_()  # p(x | z) no longer depends on z: the marginal is the softmax
        m.decoder_net[-1].bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    s = m.sample(30_000, generator=gen)[:, 0]
    freq = torch.bincount(s, minlength=3).double() / s.numel()
    p = torch.tensor([0.0, 1.0, -1.0]).softmax(0).double()
    assert ((freq - p).abs() < 4 * (p * (1 - p) / s.numel()).sqrt()).all()


def test_loss_is_minus_mean_elbo_and_bounds_have_their_signs(gen):
    m = VAE(dim=64, latent=4, hidden=16, layers=1)
    x = genbook.data.digits("val")[:8]
    torch.manual_seed(3)
    loss = m.loss(x)
    torch.manual_seed(3)
    assert torch.equal(loss, -m.elbo(x).mean())
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(m.nll_bound(x, n_samples=3, generator=g1), -m.elbo(x, n_samples=3, generator=g2))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(m.iw_nll_bound(x, n_samples=9, generator=g1), -m.iwae_bound(x, 9, generator=g2))
    rec, kl = m.elbo_terms(x)
    assert (kl >= 0).all() and (rec <= 0).all()  # a categorical likelihood is at most 1


def test_fit_improves_the_elbo_on_digits():
    x = genbook.data.digits("train")[:256]
    m = VAE(latent=4, hidden=32, layers=1)
    before = m.nll_bound(x, n_samples=4).mean()
    genbook.fit(m, x, epochs=15, batch_size=64, lr=3e-3)
    after = m.nll_bound(x, n_samples=4).mean()
    assert after < before - 40, (before, after)


# ---------------------------------------------------------------- bad input
def test_bad_inputs_name_the_argument():
    m = VAE(dim=4, latent=2, hidden=8, levels=5)
    with pytest.raises(ValueError, match="x must have length 4, got 3"):
        m.elbo(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must hold levels 0..4, found 5"):
        m.loss(torch.full((2, 4), 5))
    with pytest.raises(ValueError, match="x must hold integer levels"):
        m.encode(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"k must be an int >= 1, got 0"):
        m.iwae_bound(torch.zeros(2, 4, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        m.elbo(torch.zeros(2, 4, dtype=torch.long), n_samples=0)
    with pytest.raises(ValueError, match=r"z must be a floating-point tensor of shape \(2, 2\)"):
        m.log_p_x_given_z(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 3))
    g = VAE(dim=3, latent=2, hidden=8, decoder="gaussian")
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        g.elbo(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(B, 3\)"):
        g.elbo(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="exact_log_prob needs the linear-Gaussian VAE"):
        g.exact_log_prob(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="decoder must be 'categorical' or 'gaussian', got 'bernoulli'"):
        VAE(decoder="bernoulli")
    with pytest.raises(ValueError, match="obs_var applies only to decoder='gaussian'"):
        VAE(obs_var=1.0)
    with pytest.raises(ValueError, match="layers must be an int >= 0"):
        VAE(layers=-1)
    with pytest.raises(ValueError, match="generator must be a torch.Generator or None, got 3"):
        m.sample(2, generator=3)


def test_save_load_round_trip(tmp_path, gen):
    m = VAE(dim=64, latent=3, hidden=8, layers=1, activation="tanh")
    x = genbook.data.digits("val")[:4]
    genbook.fit(m, x, steps=3, batch_size=4)
    genbook.save(m, tmp_path / "vae.pt")
    loaded = genbook.load(tmp_path / "vae.pt")
    assert loaded.config() == m.config()
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(m.iwae_bound(x, 5, generator=g1), loaded.iwae_bound(x, 5, generator=g2))
    lin = _linear_vae()  # the learned observation variance travels with the state_dict
    genbook.save(lin, tmp_path / "lin.pt")
    assert genbook.load(tmp_path / "lin.pt").log_obs_var.item() == pytest.approx(math.log(0.5), rel=1e-6)


# ---------------------------------------------------------------- learned priors
def _learned_prior_vae(prior, latent, seed=0, decoder="categorical"):
    """A small VAE whose learned prior is far from N(0, I) (random, spread-out parameters), float64."""
    torch.manual_seed(seed)
    kw = dict(obs_var=0.5) if decoder == "gaussian" else {}
    m = VAE(dim=3, latent=latent, hidden=8, layers=1, levels=4, decoder=decoder, prior=prior, components=4, **kw)
    m = m.double()
    with torch.no_grad():
        if prior == "mog":
            m.prior_means.mul_(1.5)
            m.prior_logvars.uniform_(-1.5, 0.5)
            m.prior_logits.normal_()
        else:
            m.pseudo_inputs.normal_(0, 2)
            m.encoder[-1].weight.mul_(3)
    return m


@pytest.mark.parametrize("prior", ["mog", "vamp"])
@pytest.mark.parametrize("decoder", ["categorical", "gaussian"])
def test_learned_prior_density_integrates_to_one(prior, decoder):
    m = _learned_prior_vae(prior, latent=2, decoder=decoder)
    h = 0.03
    g = torch.arange(-18 + h / 2, 18, h, dtype=torch.float64)
    z = torch.cartesian_prod(g, g)  # (G^2, 2): midpoint rule on [-18, 18]^2
    with torch.no_grad():
        mass = m.log_prior(z).exp().sum() * h * h
        means, logvars, log_w = m._prior_mixture()
    assert means.abs().max() + 6 * (0.5 * logvars).exp().max() < 18  # the grid holds the whole mass
    standard = -0.5 * (z**2).sum(1) - math.log(2 * math.pi)
    with torch.no_grad():
        assert (m.log_prior(z[::997]) - standard[::997]).abs().max() > 1.0  # not N(0, I) in disguise
    torch.testing.assert_close(mass, torch.tensor(1.0, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(log_w.exp().sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_samples_from_a_learned_prior_follow_its_density(prior, gen):
    m = _learned_prior_vae(prior, latent=1)
    n = 40_000
    z = m.sample_prior(n, generator=gen)[:, 0]
    edges = torch.tensor([-math.inf, -1.0, 0.0, 1.0, math.inf], dtype=torch.float64)
    h = 1e-3
    grid = torch.arange(-15 + h / 2, 15, h, dtype=torch.float64)
    with torch.no_grad():
        dens = m.log_prior(grid[:, None]).exp() * h
    for lo, hi in zip(edges[:-1], edges[1:]):
        p = dens[(grid > lo) & (grid <= hi)].sum()
        freq = ((z > lo) & (z <= hi)).double().mean()
        assert (freq - p).abs() < 4 * (p * (1 - p) / n).sqrt() + 1e-6, (lo, hi, freq, p)
    assert m.sample(5, generator=gen).shape == (5, 3)


def test_generic_monte_carlo_kl_matches_the_closed_form_for_the_standard_prior(gen):
    torch.manual_seed(0)
    m = VAE(dim=3, latent=2, hidden=8, layers=1, levels=4).double()
    x = torch.randint(0, 4, (5, 3), generator=gen)
    n = 50_000
    with torch.no_grad():
        mu, logvar = m.encode(x)
        z = m._reparameterise(mu, logvar, n, gen)  # (n, B, L)
        d = m._log_q(z, mu, logvar) - m._log_prior(z)  # the learned priors' path, with p(z) = N(0, I)
        closed = m.elbo_terms(x, generator=gen)[1]
    se = d.std(0) / math.sqrt(n)
    assert ((d.mean(0) - closed).abs() < 4 * se).all(), (d.mean(0) - closed) / se
    torch.testing.assert_close(closed, gaussian_kl(mu, logvar))


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_iwae_is_at_least_the_elbo_with_a_learned_prior(prior, gen):
    m = _learned_prior_vae(prior, latent=2)
    x = torch.randint(0, 4, (6, 3), generator=gen)
    reps = 300
    with torch.no_grad():
        elbo = torch.stack([m.elbo(x, generator=gen) for _ in range(reps)])  # (reps, B)
        iwae = torch.stack([m.iwae_bound(x, 20, generator=gen) for _ in range(reps)])
        one = torch.stack([m.iwae_bound(x, 1, generator=gen) for _ in range(reps)])
    se = lambda a: a.std(0) / math.sqrt(reps)  # noqa: E731
    assert ((one.mean(0) - elbo.mean(0)).abs() < 4 * (se(one) ** 2 + se(elbo) ** 2).sqrt()).all()  # K=1: ELBO
    assert (iwae.mean(0) > elbo.mean(0) - 3 * (se(iwae) ** 2 + se(elbo) ** 2).sqrt()).all()
    assert (iwae.mean(0) - elbo.mean(0)).max() > 0.05  # and IWAE really is tighter somewhere
    rec, kl = m.elbo_terms(x, n_samples=4000, generator=gen)
    assert (kl > -4 * kl.detach().abs().mean() / math.sqrt(4000)).all()  # a KL estimate, >= 0 up to noise


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_learned_prior_bounds_bracket_the_exact_log_p(prior, gen):
    """On a 1-D latent, ln p(x) = ln int p(x | z) p(z) dz by quadrature: ELBO <= ln p(x) ~= IWAE(large K)."""
    m = _learned_prior_vae(prior, latent=1)
    xs = torch.cartesian_prod(torch.arange(4), torch.arange(4), torch.arange(4))  # all 64 images
    h = 2e-3
    zs = torch.arange(-15 + h / 2, 15, h, dtype=torch.float64)[:, None]
    with torch.no_grad():
        logp = m.decode(zs).log_softmax(-1)  # (G, 3, 4)
        log_lik = sum(logp[:, d, xs[:, d]] for d in range(3))  # (G, 64)
        log_p = torch.logsumexp(log_lik + m.log_prior(zs)[:, None], 0) + math.log(h)
        torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6, rtol=0)
        x = xs[:8]
        elbo = m.elbo(x, n_samples=20_000, generator=gen)
        log_w = m.log_weights(x, 20_000, generator=gen)
    iwae = torch.logsumexp(log_w, 0) - math.log(20_000)
    iwae_se = (log_w - iwae).exp().std(0) / math.sqrt(20_000)
    assert (elbo < log_p[:8] + 0.05).all()
    assert ((iwae - log_p[:8]).abs() < 4 * iwae_se + 1e-3).all(), (iwae - log_p[:8]) / iwae_se


def test_standard_prior_is_unchanged_by_the_prior_argument(gen):
    torch.manual_seed(4)
    a = VAE(dim=64, latent=3, hidden=8, layers=1)
    torch.manual_seed(4)
    b = VAE(dim=64, latent=3, hidden=8, layers=1, prior="standard", components=7)
    assert set(a.state_dict()) == set(b.state_dict())
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    x = genbook.data.digits("val")[:4]
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(a.elbo(x, generator=g1), b.elbo(x, generator=g2))


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_save_load_round_trip_with_a_learned_prior(prior, tmp_path):
    m = VAE(dim=64, latent=3, hidden=8, layers=1, prior=prior, components=6)
    x = genbook.data.digits("val")[:4]
    genbook.fit(m, x, steps=3, batch_size=4)
    genbook.save(m, tmp_path / "vae.pt")
    loaded = genbook.load(tmp_path / "vae.pt")
    assert loaded.config() == m.config() and loaded.config()["prior"] == prior
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(m.iwae_bound(x, 5, generator=g1), loaded.iwae_bound(x, 5, generator=g2))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(m.sample(4, generator=g1), loaded.sample(4, generator=g2))


def test_vamp_prior_ignores_dropout(gen):
    m = VAE(dim=8, latent=2, hidden=16, layers=1, levels=3, dropout=0.5, prior="vamp", components=5)
    z = torch.randn(6, 2, generator=gen)
    m.train()
    with torch.no_grad():
        a, b = m.log_prior(z), m.log_prior(z)
        m.eval()
        torch.testing.assert_close(a, m.log_prior(z), rtol=0, atol=0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_prior_is_refused():
    with pytest.raises(ValueError, match="prior must be one of 'standard', 'mog' or 'vamp', got 'gauss'"):
        VAE(prior="gauss")
    with pytest.raises(ValueError, match="components must be an int >= 1, got 0"):
        VAE(prior="mog", components=0)
    with pytest.raises(ValueError, match=r"z must be a floating-point tensor of shape \(N, 2\)"):
        VAE(dim=4, latent=2, hidden=8).log_prior(torch.zeros(3, 3))


# ---------------------------------------------------------------- the local autoregressive decoder (context > 0)
def test_causal_neighbours_read_only_earlier_pixels_in_their_window():
    x = torch.arange(9).reshape(1, 9)  # a 3x3 image, levels 0..8 in raster order
    nb = causal_neighbours(x, levels=9, context=1)  # up-left, up, up-right, left, then four flags
    assert nb.shape == (1, 9, 8)
    values, outside = nb[0, :, :4] * 8, nb[0, :, 4:]
    # the centre pixel (1, 1) = 4: up-left 0, up 1, up-right 2, left 3 (offsets in raster order)
    torch.testing.assert_close(values[4], torch.tensor([0.0, 1.0, 2.0, 3.0]))
    torch.testing.assert_close(outside[4], torch.zeros(4))
    torch.testing.assert_close(outside[0], torch.ones(4))  # the first pixel has no neighbours
    torch.testing.assert_close(outside[5], torch.tensor([0.0, 0.0, 1.0, 0.0]))  # (1, 2): no up-right
    assert causal_neighbours(torch.zeros(2, 64, dtype=torch.long), 17, 2).shape == (2, 64, 24)
    # changing pixel d changes no row before or at d
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 17, (1, 64), generator=g)
    for d in (0, 9, 37, 63):
        y = x.clone()
        y[0, d] = (y[0, d] + 5) % 17
        diff = (causal_neighbours(x, 17, 2) != causal_neighbours(y, 17, 2)).any(-1)[0]
        assert not diff[: d + 1].any() and (d == 63 or diff[d + 1 :].any())


def _tiny_local_vae(seed=1):
    """A 2x2-image VAE with 3 levels, one latent and the local decoder, its weights scaled up so
    that p(x | z) depends strongly on z and on the neighbours."""
    torch.manual_seed(seed)
    m = VAE(dim=4, latent=1, hidden=16, layers=1, levels=3, activation="tanh", context=1).double()
    with torch.no_grad():
        m.decoder_net[-1].weight.mul_(4)
        m.local_net[-1].weight.mul_(4)
    return m


def test_local_decoder_is_a_normalised_distribution_over_images():
    m = _tiny_local_vae()
    xs = torch.cartesian_prod(*[torch.arange(3)] * 4)  # all 81 images
    for z in (-1.5, 0.0, 2.0):
        with torch.no_grad():
            log_p = m.log_p_x_given_z(xs, torch.full((81, 1), z, dtype=torch.float64))
        torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-12, rtol=0)


def test_local_decoder_bounds_bracket_the_exact_log_p(gen):
    m = _tiny_local_vae()
    xs = torch.cartesian_prod(*[torch.arange(3)] * 4)
    h = 2e-2
    zs = torch.arange(-10 + h / 2, 10, h, dtype=torch.float64)  # (G,)
    with torch.no_grad():  # exact ln p(x) = ln int p(x | z) N(z; 0, 1) dz by the midpoint rule
        log_lik = m._log_px_z(xs, zs[:, None, None].expand(-1, 81, 1))  # (G, 81)
        log_p = torch.logsumexp(log_lik - 0.5 * zs[:, None] ** 2 - 0.5 * math.log(2 * math.pi), 0) + math.log(h)
        elbo = m.elbo(xs.repeat(1000, 1), generator=gen).reshape(1000, 81)  # 1000 one-draw estimates each
    torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-9, rtol=0)
    elbo_mean, elbo_se = elbo.mean(0), elbo.std(0) / math.sqrt(elbo.shape[0])
    k = 2000
    log_w = m.log_weights(xs, k, generator=gen)
    iwae = torch.logsumexp(log_w, 0) - math.log(k)
    iwae_se = (log_w - iwae).exp().std(0) / math.sqrt(k)
    gap = log_p - elbo_mean
    assert (gap > -4 * elbo_se).all() and gap.max() > 0.05
    assert ((iwae - log_p).abs() < 4 * iwae_se + 1e-3).all(), (iwae - log_p) / iwae_se


def test_local_decoder_samples_follow_its_conditionals(gen):
    m = _tiny_local_vae(seed=2)
    with torch.no_grad():
        m.decoder_net[-1].weight.zero_()  # p(x | z) independent of z: p(x) is the decoder's distribution
    xs = torch.cartesian_prod(*[torch.arange(3)] * 4)
    with torch.no_grad():
        p = m.log_p_x_given_z(xs, torch.zeros(81, 1, dtype=torch.float64)).exp()
    s = m.sample(40_000, generator=gen)
    freq = torch.bincount((s * torch.tensor([27, 9, 3, 1])).sum(1), minlength=81).double() / s.shape[0]
    assert ((freq - p).abs() < 4.5 * (p * (1 - p) / s.shape[0]).sqrt() + 1e-4).all()
    assert p.max() > 3 * p.min()  # the pixels are far from uniform and independent: the check can fail


def test_local_reconstruction_is_greedy_in_raster_order(gen):
    torch.manual_seed(0)
    m = VAE(dim=64, latent=4, hidden=16, layers=1, context=1)
    x = genbook.data.digits("val")[:5]
    r = m.reconstruct(x)
    assert r.shape == (5, 64) and r.dtype == torch.long
    with torch.no_grad():  # every pixel is the argmax of its conditional given the pixels chosen before it
        logits = m._local_logits(r, m.decode(m.encode(x)[0]))
    assert torch.equal(logits.argmax(-1), r)


@pytest.mark.parametrize("context", [0, 1])
def test_importance_weighted_training_loss(context, gen):
    m = VAE(dim=64, latent=4, hidden=16, layers=1, train_k=5, context=context)
    m.eval()
    x = genbook.data.digits("val")[:6]
    torch.manual_seed(7)
    loss = m.loss(x)
    torch.manual_seed(7)
    torch.testing.assert_close(loss.double(), -m.iwae_bound(x, 5).mean())  # the same draws, with gradients
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    with torch.no_grad():  # tighter than the ELBO, on average over draws
        iw = torch.stack([-m.loss(x) for _ in range(200)]).mean()
        elbo = m.elbo(x, n_samples=1000).mean()
    assert iw > elbo


def test_local_decoder_bad_arguments_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match="context > 0 needs decoder='categorical' and square images"):
        VAE(dim=4, decoder="gaussian", context=1)
    with pytest.raises(ValueError, match="context > 0 needs .* got context=1, decoder='categorical', dim=10"):
        VAE(dim=10, context=1)
    with pytest.raises(ValueError, match="context must be an int >= 0, got -1"):
        VAE(context=-1)
    with pytest.raises(ValueError, match="train_k must be an int >= 1, got 0"):
        VAE(train_k=0)
    m = VAE(dim=64, latent=3, hidden=8, layers=1, context=2, train_k=2)
    x = genbook.data.digits("val")[:4]
    genbook.fit(m, x, steps=3, batch_size=4)
    genbook.save(m, tmp_path / "vae.pt")
    back = genbook.load(tmp_path / "vae.pt")
    assert back.context == 2 and back.train_k == 2
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    torch.testing.assert_close(back.iwae_bound(x, 4, generator=g1), m.iwae_bound(x, 4, generator=g2))
