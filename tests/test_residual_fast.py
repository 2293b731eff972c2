"""The fast path of exact residual flows (``genbook._residual_fast``) against the readable ``ResidualBlock``.

``ResidualFlow.forward`` sends exact blocks through a batched forward and an autograd Function with a
hand-written backward; a lone ``ResidualBlock`` uses plain autograd. Here the two agree: outputs,
log-determinants and the gradients in the input and every parameter, in eval mode (fixed spectral
norms) and in a training call (which refines them first), and the Function's backward passes
``gradcheck``. Flows are randomised in float64 so that they are far from the identity.
"""

import copy

import pytest
import torch
from test_flows import _randomise  # N(0, scale^2) on every parameter, float64, norms converged, eval

from genbook._residual_fast import ResidualStack, stacked_inputs
from genbook.flows import ActNorm, Flow, ResidualBlock, ResidualFlow, SpectralLinear

TOL = dict(atol=1e-10, rtol=1e-10)


def _flow(dim=2, blocks=3, hidden=8, layers=2, actnorm=True, seed=0):
    """A randomised exact flow whose first block has one layer with ``sigma < coeff`` (spectral scale
    clamped at 1), so both branches of ``max(1, sigma / coeff)`` are compared."""
    flow = _randomise(
        ResidualFlow(dim=dim, hidden=hidden, blocks=blocks, layers=layers, lipschitz=0.8, actnorm=actnorm, exact=True),
        scale=2.0,
        seed=seed,
    )
    first = flow.transforms[1 if actnorm else 0].g[0]
    with torch.no_grad():
        first.weight.mul_(1e-3)
        first.power_iteration(100)
        assert float(first.scale()) == 1.0
    return flow


def _points(n, dim, seed=1):
    return 1.5 * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _readable(flow, x):
    """The flow with every transform called in turn: each ``ResidualBlock`` on its readable path."""
    return Flow.forward(flow, x)


def _outputs_and_gradients(forward, flow, x):
    """``z``, ``log|det|`` and the gradients of a loss using both, in ``x`` and every parameter."""
    x = x.clone().requires_grad_(True)
    z, logdet = forward(x)
    loss = (z.sin() * torch.arange(1, z.shape[1] + 1, dtype=z.dtype)).sum() + (logdet * logdet.cos()).sum()
    grads = torch.autograd.grad(loss, [x, *flow.parameters()])
    return z.detach(), logdet.detach(), grads


CONFIGS = [
    dict(dim=2),
    dict(dim=2, actnorm=False),
    dict(dim=2, layers=1, blocks=2),
    dict(dim=2, layers=3),
    dict(dim=3, blocks=2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_fast_path_equals_the_readable_blocks(config):
    flow = _flow(**config)
    x = _points(16, flow.dim)
    z, logdet, grads = _outputs_and_gradients(flow, flow, x)
    z_ref, logdet_ref, grads_ref = _outputs_and_gradients(lambda v: _readable(flow, v), flow, x)
    assert logdet.abs().max() > 0.1 and not torch.allclose(z, x, atol=0.1)  # far from the identity
    torch.testing.assert_close(z, z_ref, **TOL)
    torch.testing.assert_close(logdet, logdet_ref, **TOL)
    names = ["x"] + [name for name, _ in flow.named_parameters()]
    assert len(grads) == len(names) and all(g.abs().max() > 0 for g in grads)
    for name, g, g_ref in zip(names, grads, grads_ref):
        torch.testing.assert_close(g, g_ref, **TOL, msg=lambda m: f"d loss / d {name}: {m}")
    with torch.no_grad():  # without gradients the fast path runs its forward alone
        z_ng, logdet_ng = flow(x)
    torch.testing.assert_close(z_ng, z_ref, **TOL)
    torch.testing.assert_close(logdet_ng, logdet_ref, **TOL)


def test_a_training_call_refines_and_differentiates_the_same_on_both_paths():
    """One training call (``loss.backward()``) through the fast path and through the readable blocks,
    from the same state with the weights moved: the same refined ``u, v`` and the same gradients."""
    fast = _flow(dim=2, blocks=3)
    with torch.no_grad():
        for m in fast.modules():
            if isinstance(m, SpectralLinear):
                m.weight.mul_(1.5)  # the stored vectors are now one step behind
    readable = copy.deepcopy(fast)
    fast.train(), readable.train()
    x = _points(32, 2)
    fast.loss(x).backward()
    z, logdet = _readable(readable, x)
    (-(readable.base.log_prob(z) + logdet).mean()).backward()
    for (name, a), b in zip(fast.named_buffers(), readable.buffers()):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0, msg=lambda m: f"{name}: {m}")  # batched vs one by one
    for (name, a), b in zip(fast.named_parameters(), readable.parameters()):
        torch.testing.assert_close(a.grad, b.grad, **TOL, msg=lambda m: f"{name}: {m}")


def test_a_flow_takes_the_fast_path_and_a_lone_block_the_readable_one():
    flow = _flow(dim=2, blocks=2)
    x = _points(4, 2).requires_grad_(True)
    assert type(flow(x)[1].grad_fn).__name__ == "ResidualStackBackward"
    block = flow.transforms[1]
    assert isinstance(block, ResidualBlock) and "ResidualStack" not in type(block(x)[1].grad_fn).__name__
    series = _randomise(ResidualFlow(dim=2, hidden=8, blocks=2, exact=False, n_terms=2), scale=1.0)
    assert "ResidualStack" not in type(series(x)[1].grad_fn).__name__


def _stack_inputs(blocks, actnorms):
    """What ``exact_residual_stack`` hands :class:`ResidualStack`, as fresh leaves for ``gradcheck``."""
    return [
        None if t is None else t.detach().clone().requires_grad_(True)
        for t in stacked_inputs(blocks, actnorms, refine=False)
    ]


@pytest.mark.parametrize("dim, hidden, layers", [(2, 5, 2), (3, 4, 1), (2, 3, 3)])
def test_hand_written_backward_matches_finite_differences(dim, hidden, layers):
    """``gradcheck`` of :class:`ResidualStack`: two blocks with actnorms, and one without, for both
    outputs in every input (the point, actnorm scales and shifts, weights, biases, divisors and
    LipSwish betas); one layer's spectral clamp inactive, the others active."""
    flow = _flow(dim=dim, blocks=2, hidden=hidden, layers=layers)
    blocks, actnorms = list(flow.transforms[1::2]), list(flow.transforms[0::2])
    assert all(isinstance(a, ActNorm) for a in actnorms)
    with torch.no_grad():
        assert all(float(m.scale()) > 1 for b in blocks for m in b.linears()[1:])
    x = _points(4, dim).requires_grad_(True)
    assert torch.autograd.gradcheck(ResidualStack.apply, (x, *_stack_inputs(blocks, actnorms)))
    assert torch.autograd.gradcheck(ResidualStack.apply, (x, *_stack_inputs(blocks[1:], None)))
