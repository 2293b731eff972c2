"""A faster, equivalent implementation of a row of exact residual blocks, ``ResidualFlow``'s path for them.

:class:`genbook.flows.ResidualBlock` is the readable version: plain autograd through the
Jacobian carried along the layers. A 2-D flow's training step costs what PyTorch spends
launching its operations, not their arithmetic, so this module computes all the blocks'
spectral norms in one batched operation per layer position and runs the blocks through one
autograd Function with a hand-written backward: about half the operations of a training
step through the readable blocks. ``tests/test_residual_fast.py`` checks that it gives the
readable blocks' outputs and gradients, and its backward against finite differences.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .flows import ActNorm, LipSwish, ResidualBlock, power_iteration, spectral_scale


def stack_forward(
    x: torch.Tensor,
    log_scale: torch.Tensor | None,
    shift: torch.Tensor | None,
    betas: torch.Tensor,
    layers: Sequence[torch.Tensor],
    *,
    keep: bool,
) -> tuple:
    """``K`` exact residual blocks in a row, each after an actnorm when ``log_scale`` is given; the
    inputs are :class:`ResidualStack`'s.

    Per sample the stack carries the activations ``h`` and their tangents ``T[j] = dh/dz_j`` through
    a block's layers (the transpose of ``ResidualBlock.g_and_jacobian``'s ``J``). Returns the output
    ``(B, D)``, the summed ``log|det|`` ``(B,)`` of all actnorms and blocks, and what the backward
    pass needs: ``records`` per block (when ``keep``), the weights ``W / d`` and the actnorm scales."""
    B, D = x.shape
    n = len(layers) // 3
    weights = [layers[3 * l] / layers[3 * l + 2][:, None, None] for l in range(n)]
    biases = layers[1::3]
    scale = log_scale.exp() if log_scale is not None else None
    K = weights[0].shape[0]
    # per layer, per block: (in, out); the first contiguous, or the tangents it broadcasts into would be
    # laid out transposed and every later product with them would copy and batch them
    wt = [(w.mT.contiguous() if l == 0 else w.mT).unbind(0) for l, w in enumerate(weights)]
    bs = [b.unbind(0) for b in biases]
    bt = betas.unbind(0)
    sc, sh = (scale.unbind(0), shift.unbind(0)) if scale is not None else (None, None)
    eye = torch.eye(D, dtype=x.dtype, device=x.device)
    logdets, records = [], []
    for k in range(K):
        z = torch.addcmul(sh[k], x, sc[k]) if sc is not None else x
        rec = [x, z]
        h, beta_k = z, bt[k].unbind(0)
        tangents = None  # dh/dz of the layer below, from layer 1 on
        for l in range(n):
            a = torch.addmm(bs[l][k], h, wt[l][k])  # pre-activation
            # d a / dz: (D, out), the same for every sample at l = 0
            tangent = wt[l][k] if l == 0 else tangents @ wt[l][k]
            if l == n - 1:
                break
            ba = a * beta_k[l]
            sig = torch.sigmoid(ba)
            q = 1 - sig
            sq = sig * q
            bsq = ba * sq
            slope = sig + bsq  # phi'(a)
            h = a * sig  # phi(a)
            tangents = tangent * slope[:, None, :]
            rec += [h, tangents, tangent, a, sig, q, sq, bsq, slope]
        m = tangent + eye  # I + J^T: the same determinant as I + J
        if D == 2:  # the 2 x 2 formula: a few elementwise operations instead of an LU per point
            mf = m.flatten(1)
            det = mf[:, 0] * mf[:, 3] - mf[:, 1] * mf[:, 2]
            logdets.append(torch.log(det))
        else:  # ||J|| < 1, so the determinant is positive
            det = None
            logdets.append(torch.linalg.slogdet(m)[1])
        if keep:
            records.append(rec + [m, det])
        x = z + a
    logdet = torch.stack(logdets).sum(0)
    if log_scale is not None:
        logdet = logdet + log_scale.sum()
    return x, logdet, records, weights, scale


class ResidualStack(torch.autograd.Function):
    """A row of exact residual blocks (each after an optional actnorm) with a hand-written backward.

    The forward pass is :func:`stack_forward`, which without gradients runs alone, keeping only one
    block's intermediate tensors alive at a time. The backward runs through the blocks and their
    layers in reverse; because the tangents depend on the pre-activations through the slopes
    ``phi'``, it needs LipSwish's second derivative ``phi''`` too. A 2-D flow's training step costs
    what PyTorch spends launching its operations, not their arithmetic; this Function launches
    about half of what autograd through the readable blocks does, records no graph, and adds all
    the blocks' log-determinants itself. ``tests/test_residual_fast.py`` checks it against finite
    differences (``gradcheck``). It gives first derivatives only (training); the readable
    ``ResidualBlock`` supports ``create_graph``.

    Inputs: ``x (B, D)``; the actnorms' ``log_scale, shift (K, D)`` or ``None``; ``betas (K, n - 1)``,
    the activations being ``phi(a) = a sigmoid(beta a)``; then per linear layer ``W (K, out, in)``,
    ``b (K, out)`` and ``d (K,)``, the layer computing ``(W / d) h + b``. LipSwish's ``1 / 1.1`` and
    the spectral scale ``max(1, sigma / coeff)`` are both in ``d``. Returns the output ``(B, D)``
    and the summed ``log|det|`` ``(B,)`` of all actnorms and blocks.
    """

    @staticmethod
    def forward(ctx, x, log_scale, shift, betas, *layers):
        out, logdet, records, weights, scale = stack_forward(x, log_scale, shift, betas, layers, keep=True)
        ctx.n, ctx.actnorm, ctx.per_block = len(weights), log_scale is not None, len(records[0])
        ctx.save_for_backward(betas, scale, *layers, *weights, *(t for rec in records for t in rec))
        return out, logdet

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, x_bar, logdet_bar):
        n, per = ctx.n, ctx.per_block
        saved = ctx.saved_tensors
        betas, scale, layers = saved[0], saved[1], saved[2 : 2 + 3 * n]
        weights = saved[2 + 3 * n : 2 + 4 * n]
        flat = saved[2 + 4 * n :]
        records = [flat[i : i + per] for i in range(0, len(flat), per)]
        K = len(records)
        w_bar = [torch.empty_like(w) for w in weights]  # d loss / d (W / d)
        b_bar = [torch.empty_like(b) for b in layers[1::3]]
        w_bar_k, b_bar_k = [w.unbind(0) for w in w_bar], [b.unbind(0) for b in b_bar]
        ws = [w.unbind(0) for w in weights]
        beta_bar = [[None] * (n - 1) for _ in range(K)]
        bt = betas.unbind(0)
        if ctx.actnorm:
            sc, total_bar = scale.unbind(0), logdet_bar.sum()
            scale_bar, shift_bar = [None] * K, [None] * K
        flip = None
        for k in reversed(range(K)):
            rec = records[k]
            x_in, z, m, det = rec[0], rec[1], rec[-2], rec[-1]
            # d log det(M) / dM = M^{-T}; in 2-D, M^{-T} = [[m11, -m10], [-m01, m00]] / det(M)
            if det is not None:
                if flip is None:
                    flip = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=m.dtype, device=m.device)
                t_bar = m.flip(1, 2) * flip * (logdet_bar / det)[:, None, None]
            else:
                t_bar = logdet_bar[:, None, None] * torch.linalg.inv(m).mT
            a_bar = x_bar  # d loss / d g
            beta_k = bt[k].unbind(0)
            for l in reversed(range(n)):
                if l == 0:
                    h_in = z  # the first layer's tangents are its weights, summed over the batch
                    torch.addmm(t_bar.sum(0), h_in.T, a_bar, out=w_bar_k[0][k].T)
                else:
                    h_in, t_in = rec[2 + 9 * (l - 1)], rec[3 + 9 * (l - 1)]
                    torch.addmm(t_in.flatten(0, 1).T @ t_bar.flatten(0, 1), h_in.T, a_bar, out=w_bar_k[l][k].T)
                torch.sum(a_bar, 0, out=b_bar_k[l][k])
                h_bar = a_bar @ ws[l][k]  # d loss / d h_in
                if l == 0:
                    break
                tangents_bar = t_bar @ ws[l][k]
                _, _, tangent, a, sig, q, sq, bsq, slope = rec[2 + 9 * (l - 1) : 11 + 9 * (l - 1)]
                beta = beta_k[l - 1]
                r = (tangents_bar * tangent).sum(1)  # d loss / d phi'(a)
                curv = beta * sq * (2 + beta * a * (q - sig))  # phi''(a)
                e = torch.addcmul(h_bar * bsq, r, curv)
                a_bar = torch.addcmul(e, h_bar, sig)  # h_bar phi'(a) + r phi''(a)
                t_bar = tangents_bar * slope[:, None, :]
                # d phi / d beta = (a / beta) bsq and d phi' / d beta = (a / beta) phi''
                beta_bar[k][l - 1] = (a * e).sum() / beta
            z_bar = x_bar + h_bar
            if ctx.actnorm:
                shift_bar[k] = z_bar.sum(0)
                scale_bar[k] = (z_bar * x_in).sum(0) * sc[k] + total_bar  # d/d log_scale
                x_bar = z_bar * sc[k]
            else:
                x_bar = z_bar
        grads = []
        for l in range(n):
            d = layers[3 * l + 2]
            grads += [w_bar[l] / d[:, None, None], b_bar[l], -(w_bar[l] * weights[l]).sum((1, 2)) / d]
        beta_grad = torch.stack([torch.stack(row) for row in beta_bar])
        if ctx.actnorm:
            return (x_bar, torch.stack(scale_bar), torch.stack(shift_bar), beta_grad, *grads)
        return (x_bar, None, None, beta_grad, *grads)


def stacked_inputs(
    blocks: Sequence[ResidualBlock], actnorms: Sequence[ActNorm] | None, *, refine: bool
) -> list[torch.Tensor | None]:
    """:class:`ResidualStack`'s inputs after ``x`` for ``actnorms[k]`` then ``blocks[k]``, ``k = 0..K-1``
    (``actnorms`` may be ``None``): the parameters of all blocks stacked, their spectral norms refined
    first when ``refine`` (a training step) and computed in one batched operation per layer position."""
    lins = list(zip(*(b.linears() for b in blocks)))  # per layer position, per block
    layers = []
    for l, layer in enumerate(lins):
        W = torch.stack([m.weight for m in layer])
        u, v = torch.stack([m.u for m in layer]), torch.stack([m.v for m in layer])
        if refine:
            with torch.no_grad():
                u, v = power_iteration(W.detach(), u, v, layer[0].n_power_iterations)
            for m, m_u, m_v in zip(layer, u, v):
                m.u, m.v = m_u, m_v
        d = spectral_scale(W, u, v, layer[0].coeff)
        layers += [W, torch.stack([m.bias for m in layer]), d if l == 0 else 1.1 * d]  # LipSwish's 1 / 1.1 in d
    raw = torch.stack([m.raw_beta for b in blocks for m in b.g if isinstance(m, LipSwish)])
    betas = F.softplus(raw).view(len(blocks), -1)
    if actnorms is None:
        return [None, None, betas, *layers]
    return [torch.stack([a.log_scale for a in actnorms]), torch.stack([a.shift for a in actnorms]), betas, *layers]


def exact_residual_stack(
    x: torch.Tensor, blocks: Sequence[ResidualBlock], actnorms: Sequence[ActNorm] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, log|det|)`` of ``actnorms[k]`` then ``blocks[k]`` for ``k = 0..K-1`` (``actnorms`` may be
    ``None``) through :class:`ResidualStack`, or through :func:`stack_forward` alone without gradients."""
    if not torch.is_grad_enabled():
        log_scale, shift, betas, *layers = stacked_inputs(blocks, actnorms, refine=False)
        return stack_forward(x, log_scale, shift, betas, layers, keep=False)[:2]
    return ResidualStack.apply(x, *stacked_inputs(blocks, actnorms, refine=blocks[0].training))
