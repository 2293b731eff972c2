import math
import warnings

import pytest
import torch
from torch import nn

import genbook
from genbook import evaluate, fit


class Gaussian1D(nn.Module):
    """N(mu, sigma^2) with learnable mu and log sigma; its MLE is the sample mean and (biased) std."""

    def __init__(self, mu=0.0, log_sigma=0.0):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor(mu, dtype=torch.float64))
        self.log_sigma = nn.Parameter(torch.tensor(log_sigma, dtype=torch.float64))

    def log_prob(self, x):
        return torch.distributions.Normal(self.mu, self.log_sigma.exp()).log_prob(x)

    def loss(self, x):
        return -self.log_prob(x).mean()


class Mean(nn.Module):
    """A learnable point; loss = mean squared distance to the batch."""

    def __init__(self, init=0.0):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor(init, dtype=torch.float64))

    def loss(self, x):
        return ((x - self.mu) ** 2).mean()


class Line(nn.Module):
    """y = w x + b; loss(x, y) takes two tensors (tuple data)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def loss(self, x, y):
        return ((self.w * x + self.b - y) ** 2).mean()


class Bomb(nn.Module):
    """A finite loss until call number ``at``, then ``value`` (NaN or inf)."""

    def __init__(self, at, value):
        super().__init__()
        self.w = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.at, self.value, self.calls = at, value, 0

    def loss(self, x):
        self.calls += 1
        out = ((x - self.w) ** 2).mean()
        return out * self.value if self.calls == self.at else out


class Recorder(Mean):
    """Remembers every batch it was trained on."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def loss(self, x):
        self.seen.append(x.detach().clone())
        return super().loss(x)


# ---------------------------------------------------------------- convergence
def test_fit_reaches_gaussian_mle():
    x = 2.0 + 0.5 * torch.randn(256, dtype=torch.float64)
    model = Gaussian1D()
    hist = fit(model, x, steps=1000, batch_size=256, lr=0.1, progress=False)
    assert model.mu.item() == pytest.approx(float(x.mean()), abs=1e-6)
    assert model.log_sigma.exp().item() == pytest.approx(float(x.std(unbiased=False)), abs=1e-6)
    # the final loss is the closed-form minimum: 1/2 ln(2 pi e s^2)
    s2 = float(x.var(unbiased=False))
    assert evaluate(model, x) == pytest.approx(0.5 * math.log(2 * math.pi * math.e * s2), abs=1e-9)
    assert hist.train_loss[-1] < hist.train_loss[0]


def test_fit_tuple_data_calls_loss_with_each_tensor():
    x = torch.randn(128, dtype=torch.float64)
    y = 2 * x + 1 + 0.1 * torch.randn(128, dtype=torch.float64)
    model = Line()
    fit(model, (x, y), steps=1000, batch_size=128, lr=0.05, progress=False)
    A = torch.stack([x, torch.ones_like(x)], 1)
    w, b = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
    assert model.w.item() == pytest.approx(float(w), abs=1e-5)
    assert model.b.item() == pytest.approx(float(b), abs=1e-5)


# ---------------------------------------------------------------- step accounting
def test_steps_count_equals_history_length():
    hist = fit(Mean(), torch.randn(50, dtype=torch.float64), steps=37, batch_size=8, progress=False)
    assert hist.steps == 37 == len(hist.train_loss)
    assert all(math.isfinite(v) for v in hist.train_loss)


def test_epochs_are_converted_to_steps():
    hist = fit(Mean(), torch.randn(100, dtype=torch.float64), epochs=3, batch_size=32, progress=False)
    assert hist.steps == 3 * math.ceil(100 / 32)


def test_each_epoch_sees_every_example_once():
    data = torch.arange(100, dtype=torch.float64)
    model = Recorder()
    fit(model, data, epochs=2, batch_size=32, progress=False)
    assert [len(b) for b in model.seen] == [32, 32, 32, 4] * 2
    for epoch in (model.seen[:4], model.seen[4:]):
        assert torch.equal(torch.cat(epoch).sort().values, data)
    assert not torch.equal(torch.cat(model.seen[:4]), data)  # shuffled


def test_fit_is_deterministic_given_generator():
    data = torch.randn(64, dtype=torch.float64)
    runs = []
    for _ in range(2):
        model = Mean()
        hist = fit(
            model, data, steps=20, batch_size=10, lr=0.05, progress=False, generator=torch.Generator().manual_seed(1)
        )
        runs.append((hist.train_loss, model.mu.item()))
    assert runs[0] == runs[1]


def test_history_throughput():
    hist = fit(Mean(), torch.randn(100, dtype=torch.float64), epochs=1, batch_size=32, progress=False)
    assert hist.seconds > 0
    assert hist.examples_per_second * hist.seconds == pytest.approx(100)


@pytest.mark.parametrize("kwargs", [dict(), dict(epochs=1, steps=1)])
def test_exactly_one_of_epochs_or_steps(kwargs):
    with pytest.raises(ValueError, match="exactly one of epochs or steps"):
        fit(Mean(), torch.randn(10), progress=False, **kwargs)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(steps=0), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(epochs=-1), "epochs"),
        (dict(steps=5, batch_size=0), "batch_size"),
        (dict(steps=5, patience=0), "patience"),
        (dict(steps=True), "steps"),
        (dict(steps=5, batch_size=True), "batch_size"),
        (dict(steps=5, patience=2.0), "patience"),
        (dict(steps=5, eval_every=0), "eval_every"),
    ],
)
def test_bad_counts_raise(kwargs, word):
    # one message for every count (genbook._checks.check_int): "steps must be an int >= 1 or None, got True (bool)"
    with pytest.raises(ValueError, match=f"^{word} must be an int >= 1( or None)?, got"):
        fit(Mean(), torch.randn(10), progress=False, **kwargs)


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan"), float("inf"), True, "1e-3"])
def test_nonpositive_lr_raises(lr):
    # genbook._checks.check_float: a finite real number, bool and strings refused
    with pytest.raises(ValueError, match="^lr must be a finite number > 0, got"):
        fit(Mean(), torch.randn(10), steps=1, lr=lr, progress=False)


# ---------------------------------------------------------------- validation and early stopping
def _drifting_problem():
    # Training pulls mu from 5 to 0; the validation data sit at 4, so the validation
    # loss falls until mu passes 4 and rises after.
    train = 0.1 * torch.randn(64, dtype=torch.float64)
    val = 4.0 + 0.1 * torch.randn(64, dtype=torch.float64)
    return Mean(init=5.0), train, val


def test_early_stopping_restores_best_parameters():
    model, train, val = _drifting_problem()
    hist = fit(model, train, val=val, steps=500, batch_size=64, lr=0.1, eval_every=1, patience=3, progress=False)
    assert hist.stopped_early
    assert hist.steps < 500 and hist.steps == hist.val_step[-1]
    best = min(range(len(hist.val_loss)), key=hist.val_loss.__getitem__)
    assert hist.best_val == min(hist.val_loss)
    assert hist.best_step == hist.val_step[best]
    assert len(hist.val_loss) - 1 - best == 3  # stopped after `patience` evaluations without improvement
    assert evaluate(model, val) == pytest.approx(hist.best_val, abs=1e-12)
    assert model.mu.item() == pytest.approx(float(val.mean()), abs=0.1)


def test_validation_without_patience_runs_all_steps_and_keeps_best():
    model, train, val = _drifting_problem()
    hist = fit(model, train, val=val, steps=80, batch_size=64, lr=0.1, eval_every=5, progress=False)
    assert not hist.stopped_early
    assert hist.steps == 80
    assert hist.val_step == list(range(5, 81, 5))
    assert hist.val_loss[-1] > hist.best_val  # training went past the best point ...
    assert evaluate(model, val) == pytest.approx(hist.best_val, abs=1e-12)  # ... and came back to it


def test_default_evaluation_is_once_per_epoch():
    model, train, val = _drifting_problem()
    hist = fit(model, train, val=val, epochs=3, batch_size=16, progress=False)
    assert hist.val_step == [4, 8, 12]


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nonfinite_loss_names_the_step(value):
    with pytest.raises(FloatingPointError, match=r"at step 4 of 10") as err:
        fit(Bomb(at=4, value=value), torch.randn(20, dtype=torch.float64), steps=10, batch_size=20, progress=False)
    assert ("nan" if math.isnan(value) else "inf") in str(err.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("which", ["train", "val"])
def test_nonfinite_data_raises(bad, which):
    good = torch.randn(10, dtype=torch.float64)
    broken = good.clone()
    broken[3] = bad
    kwargs = dict(train=broken, val=good) if which == "train" else dict(train=good, val=broken)
    with pytest.raises(ValueError, match=f"{which} contains NaN"):
        fit(Mean(), kwargs["train"], val=kwargs["val"], steps=2, progress=False)


def test_mismatched_tuple_lengths_raise():
    with pytest.raises(ValueError, match="same first dimension"):
        fit(Line(), (torch.randn(10), torch.randn(9)), steps=1, progress=False)


def test_non_tensor_data_raises():
    with pytest.raises(TypeError, match="tensor or a tuple of tensors"):
        fit(Mean(), [1.0, 2.0], steps=1, progress=False)


def test_model_without_parameters_raises():
    class Frozen(Mean):
        def __init__(self):
            super().__init__()
            self.mu.requires_grad_(False)

    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(Frozen(), torch.randn(10), steps=1, progress=False)


# ---------------------------------------------------------------- output
def test_progress_false_prints_nothing(capsys):
    fit(Mean(), torch.randn(10), steps=5, batch_size=5, progress=False)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


def test_progress_true_draws_a_bar(capsys):
    fit(Mean(), torch.randn(10), steps=5, batch_size=5, progress=True)
    assert "Mean" in capsys.readouterr().err  # the bar is labelled with the model's class


def test_progress_env_off(capsys, monkeypatch):
    monkeypatch.setenv("GENBOOK_PROGRESS", "0")
    fit(Mean(), torch.randn(10), steps=5, batch_size=5)
    assert capsys.readouterr().err == ""


def test_fit_emits_no_warnings():
    # torch reports some warnings once per process; warn_always makes them repeatable.
    was = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fit(Gaussian1D(), torch.randn(32, dtype=torch.float64), steps=3, batch_size=8, progress=False)
    finally:
        torch.set_warn_always(was)


# ---------------------------------------------------------------- evaluate
def test_evaluate_weights_batches_by_size():
    model = Gaussian1D(mu=0.3, log_sigma=-0.2)
    x = torch.randn(50, dtype=torch.float64)
    full = model.loss(x).item()
    assert evaluate(model, x, batch_size=7) == pytest.approx(full, abs=1e-12)


def test_evaluate_restores_training_mode():
    model = Mean()
    model.train()
    evaluate(model, torch.randn(5))
    assert model.training
    model.eval()
    evaluate(model, torch.randn(5))
    assert not model.training


def test_fit_is_exported_at_top_level():
    assert genbook.fit is fit and genbook.evaluate is evaluate


# ---------------------------------------------------------------- optimizer, schedule, callback
class Slope(nn.Module):
    """loss(x) = -w mean(x): with x = 1 the gradient is -1 at every w, so an SGD step moves w by the lr."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def loss(self, x):
        return -(self.w * x).mean()


def _trajectory(model, data, **kwargs):
    """Run fit and record (step, w) after every step through the callback."""
    seen = []
    fit(model, data, progress=False, callback=lambda step: seen.append((step, model.w.item())), **kwargs)
    return seen


def test_sgd_one_step_is_the_hand_computed_step():
    x = torch.tensor([1.0, 2.0, 4.0, 5.0], dtype=torch.float64)  # mean 3
    model = Mean(init=0.5)
    fit(model, x, steps=1, batch_size=4, lr=0.1, optimizer="sgd", progress=False)
    # d/dmu mean (x - mu)^2 = -2 (mean x - mu) = -5: mu' = 0.5 + 0.1 * 5
    assert model.mu.item() == pytest.approx(1.0, abs=1e-14)
    # the default, AdamW, moves by about lr on its first step, not by lr * |gradient|
    adam = Mean(init=0.5)
    fit(adam, x, steps=1, batch_size=4, lr=0.1, progress=False)
    assert adam.mu.item() == pytest.approx(0.6, abs=1e-6)


def test_sgd_with_momentum_matches_heavy_ball_by_hand():
    x = torch.tensor([1.0, 2.0, 4.0, 5.0], dtype=torch.float64)
    lr, m = 0.05, 0.9
    model = Mean(init=0.5)
    fit(model, x, steps=4, batch_size=4, lr=lr, momentum=m, optimizer="sgd", progress=False)
    mu, v = 0.5, 0.0
    for i in range(4):
        g = -2 * (float(x.mean()) - mu)
        v = g if i == 0 else m * v + g  # torch's SGD: the first buffer is the gradient itself
        mu -= lr * v
    assert model.mu.item() == pytest.approx(mu, abs=1e-12)
    # and momentum 0 is plain gradient descent
    plain = Mean(init=0.5)
    fit(plain, x, steps=4, batch_size=4, lr=lr, optimizer="sgd", progress=False)
    mu = 0.5
    for _ in range(4):
        mu -= lr * -2 * (float(x.mean()) - mu)
    assert plain.mu.item() == pytest.approx(mu, abs=1e-12)


def test_sgd_weight_decay_is_added_to_the_gradient():
    x = torch.tensor([1.0, 2.0, 4.0, 5.0], dtype=torch.float64)
    model = Mean(init=0.5)
    fit(model, x, steps=1, batch_size=4, lr=0.1, weight_decay=0.2, optimizer="sgd", progress=False)
    assert model.mu.item() == pytest.approx(0.5 - 0.1 * (-5.0 + 0.2 * 0.5), abs=1e-14)


def test_callback_is_called_once_per_step_after_the_update():
    seen = _trajectory(Slope(), torch.ones(10, dtype=torch.float64), epochs=2, batch_size=4, lr=0.5, optimizer="sgd")
    assert [s for s, _ in seen] == list(range(1, 7))  # 2 epochs of ceil(10 / 4) = 3 steps
    assert seen[0][1] == pytest.approx(0.5, abs=1e-14)  # w has already moved when the callback runs


def test_callback_with_validation_and_early_stopping():
    model, train, val = _drifting_problem()
    steps = []
    hist = fit(
        model,
        train,
        val=val,
        steps=500,
        batch_size=64,
        lr=0.1,
        eval_every=1,
        patience=3,
        progress=False,
        callback=steps.append,
    )
    assert steps == list(range(1, hist.steps + 1))


def test_constant_schedule_keeps_the_lr():
    seen = _trajectory(Slope(), torch.ones(4, dtype=torch.float64), steps=5, batch_size=4, lr=0.3, optimizer="sgd")
    w = [0.0] + [v for _, v in seen]
    assert [b - a for a, b in zip(w, w[1:])] == pytest.approx([0.3] * 5, abs=1e-14)


@pytest.mark.parametrize("total", [1, 5, 8])
def test_linear_schedule_decays_to_lr_over_total_at_the_last_step(total):
    lr = 0.4
    seen = _trajectory(
        Slope(),
        torch.ones(4, dtype=torch.float64),
        steps=total,
        batch_size=4,
        lr=lr,
        optimizer="sgd",
        schedule="linear",
    )
    w = [0.0] + [v for _, v in seen]
    sizes = [b - a for a, b in zip(w, w[1:])]
    assert sizes == pytest.approx([lr * (1 - s / total) for s in range(total)], abs=1e-14)
    assert sizes[0] == pytest.approx(lr, abs=1e-14)
    assert sizes[-1] == pytest.approx(lr / total, abs=1e-14)


def test_linear_schedule_counts_epochs_as_steps():
    lr = 0.6
    seen = _trajectory(
        Slope(), torch.ones(10, dtype=torch.float64), epochs=2, batch_size=4, lr=lr, optimizer="sgd", schedule="linear"
    )
    w = [0.0] + [v for _, v in seen]
    assert [b - a for a, b in zip(w, w[1:])] == pytest.approx([lr * (1 - s / 6) for s in range(6)], abs=1e-14)


def test_linear_schedule_also_applies_to_adamw():
    # with a constant gradient every AdamW step moves w by the current lr (up to eps)
    lr, total = 0.2, 5
    seen = _trajectory(Slope(), torch.ones(4, dtype=torch.float64), steps=total, batch_size=4, lr=lr, schedule="linear")
    w = [0.0] + [v for _, v in seen]
    assert [b - a for a, b in zip(w, w[1:])] == pytest.approx([lr * (1 - s / total) for s in range(total)], rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(optimizer="adam"), "optimizer"),
        (dict(optimizer="SGD"), "optimizer"),
        (dict(optimizer=None), "optimizer"),
        (dict(schedule="cosine"), "schedule"),
        (dict(schedule=None), "schedule"),
        (dict(optimizer="sgd", momentum=-0.1), "momentum"),
        (dict(optimizer="sgd", momentum=1.0), "momentum"),
        (dict(optimizer="sgd", momentum=float("nan")), "momentum"),
    ],
)
def test_bad_optimizer_schedule_or_momentum_raise(kwargs, word):
    model = Mean(init=0.5)
    with pytest.raises(ValueError, match=word):
        fit(model, torch.randn(10, dtype=torch.float64), steps=1, progress=False, **kwargs)
    assert model.mu.item() == 0.5  # raised before training


# ---------------------------------------------------------------- models that train themselves (training_step)
class TwoPlayers(nn.Module):
    """Two scalars with their own SGD optimisers (b's learning rate twice a's): a descends
    (a - x)^2, b ascends -(b - x)^2, one update each per step; records what fit passed."""

    def __init__(self, nan_at=None):
        super().__init__()
        self.a = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.nan_at, self.steps, self.batches, self.configured = nan_at, [], [], []

    def configure_optimizers(self, lr):
        self.configured.append(lr)
        self.opts = [torch.optim.SGD([self.a], lr=lr), torch.optim.SGD([self.b], lr=2 * lr)]
        return self.opts

    def training_step(self, batch, step):
        self.steps.append(step)
        self.batches.append(batch)
        x = batch if isinstance(batch, torch.Tensor) else batch[0]
        out = {}
        for name, p, opt in (("a_loss", self.a, self.opts[0]), ("b_loss", self.b, self.opts[1])):
            loss = ((p - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            out[name] = loss.detach()
        if self.nan_at == step + 1:
            out["b_loss"] = float("nan")
        out["b_loss"] = float(out["b_loss"])  # a float is accepted as well as a tensor
        return out


def test_training_step_replaces_loss_and_each_loss_is_recorded():
    x = torch.tensor([1.0, 3.0], dtype=torch.float64)  # mean 2
    model = TwoPlayers()
    hist = fit(model, x, steps=5, batch_size=2, lr=0.1, progress=False)
    assert model.configured == [0.1] and model.steps == [0, 1, 2, 3, 4]
    assert all(isinstance(b, torch.Tensor) for b in model.batches)  # one tensor in, one tensor per batch
    assert hist.steps == 5 and hist.train_loss == [] and list(hist.losses) == ["a_loss", "b_loss"]
    # by hand: gradient descent on mean (p - x)^2 = (p - 2)^2 + 1 with steps 0.1 and 0.2
    a, b, want_a, want_b = 0.0, 0.0, [], []
    for _ in range(5):
        want_a.append((a - 2) ** 2 + 1)
        want_b.append((b - 2) ** 2 + 1)
        a, b = a + 0.1 * 2 * (2 - a), b + 0.2 * 2 * (2 - b)
    assert hist.losses["a_loss"] == pytest.approx(want_a, abs=1e-12)
    assert hist.losses["b_loss"] == pytest.approx(want_b, abs=1e-12)
    assert model.a.item() == pytest.approx(a, abs=1e-12) and model.b.item() == pytest.approx(b, abs=1e-12)
    assert not model.training


def test_training_step_gets_tuple_batches_for_tuple_data_and_fresh_optimisers_each_fit():
    model = TwoPlayers()
    x = torch.randn(6, dtype=torch.float64)
    fit(model, (x, 2 * x), epochs=1, batch_size=4, lr=0.1, progress=False)
    fit(model, (x, 2 * x), steps=1, batch_size=4, lr=0.05, progress=False)
    assert [len(b) for b in model.batches] == [2, 2, 2]
    assert torch.equal(model.batches[0][1], 2 * model.batches[0][0])
    assert model.configured == [0.1, 0.05] and model.steps == [0, 1, 0]


def test_linear_schedule_scales_each_optimisers_own_lr():
    model = TwoPlayers()
    lrs = []
    fit(
        model,
        torch.ones(4, dtype=torch.float64),
        steps=4,
        batch_size=4,
        lr=0.1,
        schedule="linear",
        progress=False,
        callback=lambda step: lrs.extend(o.param_groups[0]["lr"] for o in model.opts),
    )
    assert lrs == pytest.approx([r * (1 - s / 4) for s in range(4) for r in (0.1, 0.2)], abs=1e-15)


def test_nonfinite_training_step_loss_names_the_loss_and_the_step():
    with pytest.raises(FloatingPointError, match=r"^b_loss became nan at step 3 of 10 \(epoch 2\); last finite b_loss"):
        fit(TwoPlayers(nan_at=3), torch.randn(4, dtype=torch.float64), steps=10, batch_size=2, progress=False)


def test_training_step_must_return_named_losses():
    class Silent(TwoPlayers):
        def training_step(self, batch, step):
            super().training_step(batch, step)
            return 0.5

    with pytest.raises(TypeError, match="training_step must return a non-empty dict of named losses, got float"):
        fit(Silent(), torch.randn(4, dtype=torch.float64), steps=2, batch_size=2, progress=False)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(grad_clip=1.0), "grad_clip"),
        (dict(weight_decay=0.1), "weight_decay"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(momentum=0.5), "momentum"),
        (dict(val=torch.randn(4, dtype=torch.float64)), "val"),
    ],
)
def test_training_step_models_refuse_fits_optimiser_settings_and_val_without_loss(kwargs, word):
    model = TwoPlayers()
    with pytest.raises(ValueError, match=f"^{word}"):
        fit(model, torch.randn(4, dtype=torch.float64), steps=1, progress=False, **kwargs)
    assert model.steps == [] and model.a.item() == 0.0


def test_training_step_model_with_a_loss_gets_validation_and_early_stopping():
    class Judged(TwoPlayers):
        def loss(self, x):  # only for validation: fit trains through training_step
            return ((self.a - x) ** 2).mean()

    model = Judged()
    train = 0.1 * torch.randn(8, dtype=torch.float64)
    val = 0.05 + 0.1 * torch.randn(8, dtype=torch.float64)
    hist = fit(model, train, val=val, steps=40, batch_size=8, lr=0.3, eval_every=2, progress=False)
    assert hist.val_step == list(range(2, 41, 2)) and len(hist.losses["a_loss"]) == 40
    assert evaluate(model, val) == pytest.approx(hist.best_val, abs=1e-12)


def test_loss_models_take_exactly_the_hand_written_adamw_steps():
    # the loop every other model relies on, written out: same batches, fused AdamW, clipping, linear schedule
    data = torch.randn(20, dtype=torch.float64)
    model = Gaussian1D(mu=0.3)
    hist = fit(
        model,
        data,
        steps=7,
        batch_size=8,
        lr=0.05,
        grad_clip=0.5,
        schedule="linear",
        progress=False,
        generator=torch.Generator().manual_seed(4),
    )
    ref = Gaussian1D(mu=0.3)
    params = list(ref.parameters())
    opt = torch.optim.AdamW(params, lr=0.05, weight_decay=0.0, fused=True)
    gen, losses, step = torch.Generator().manual_seed(4), [], 0
    while step < 7:
        order = torch.randperm(20, generator=gen)
        for i in range(0, 20, 8):
            if step == 7:
                break
            loss = ref.loss(data[order[i : i + 8]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 0.5)
            opt.param_groups[0]["lr"] = 0.05 * (1 - step / 7)
            opt.step()
            losses.append(loss.item())
            step += 1
    assert hist.train_loss == losses and hist.losses == {}
    assert torch.equal(model.mu, ref.mu) and torch.equal(model.log_sigma, ref.log_sigma)
