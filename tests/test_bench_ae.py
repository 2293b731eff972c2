"""The chapter 6 bench's pieces: the anchor's VAE network and loss."""

from __future__ import annotations

import math

import torch

from benchmarks.anchor_vae import AnchorVAE
from genbook import data
from genbook.vae import gaussian_kl

LOG_2PI = math.log(2 * math.pi)


def _normal_logpdf(z, mu, logvar):
    return (-0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + LOG_2PI)).sum(-1)


def test_anchor_network_has_the_anchor_shapes():
    model = AnchorVAE()
    linears = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 256), (256, 256), (256, 32)]
    linears = [m for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 256), (256, 256), (256, 64 * 17)]
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in [*model.encoder, *model.decoder]) == 4
    x = data.digits("train")[:5]
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 16)
    assert model.logits(mu).shape == (5, 64, 17)
    assert model.one_draw_elbo(x).shape == (5,)


def test_anchor_loss_is_the_one_draw_negative_elbo_by_hand():
    torch.manual_seed(0)
    model = AnchorVAE()
    x = data.digits("train")[:3]
    eps = torch.randn(3, 16)
    got = model.one_draw_elbo(x, eps)
    h = model.encoder(x.float())  # raw levels in, not rescaled
    mu, logvar = h[:, :16], h[:, 16:]
    z = mu + (0.5 * logvar).exp() * eps
    probs = torch.softmax(model.decoder(z).reshape(3, 64, 17), -1)
    log_px = torch.stack([probs[b, torch.arange(64), x[b]].log().sum() for b in range(3)])
    log_pz = _normal_logpdf(z, torch.zeros_like(z), torch.zeros_like(z))
    want = log_px + log_pz - _normal_logpdf(z, mu, logvar)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-3)
    torch.manual_seed(1)
    loss = model.loss(x)
    torch.manual_seed(1)
    torch.testing.assert_close(loss, -model.one_draw_elbo(x, torch.randn(3, 16)).mean())


def test_anchor_evaluation_uses_the_closed_form_kl():
    torch.manual_seed(0)
    model = AnchorVAE()
    x = data.digits("val")[:4]
    gen = torch.Generator().manual_seed(3)
    got = model.neg_elbo(x, n_samples=7, generator=gen)
    mu, logvar = model.encode(x)
    eps = torch.randn((7, 4, 16), generator=torch.Generator().manual_seed(3))
    rec = model.log_px_z(x, mu + (0.5 * logvar).exp() * eps).mean(0)
    torch.testing.assert_close(got, (gaussian_kl(mu, logvar) - rec).detach())
    # the one-draw estimate averages to the same bound
    with torch.no_grad():
        draws = torch.stack([-model.one_draw_elbo(x) for _ in range(4000)]).mean(0)
    assert (draws - model.neg_elbo(x, n_samples=4000)).abs().max() < 1.0
