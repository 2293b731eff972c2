import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import genbook
from genbook.autoregressive import ConvARM

WORKER = Path(__file__).with_name("_ddp_worker.py")
ROOT = WORKER.parent.parent


def _run(args: list[str], out: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, *args, str(WORKER), str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The worker as one process, and as two gloo processes under torchrun."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    _run([], one)
    _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], two)
    return one, two


def _close(a: dict, b: dict, atol: float) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0) for k in a)


def test_two_processes_take_the_steps_of_one_on_the_same_global_batch(runs):
    one, two = runs
    single = torch.load(one / "rank0.pt")
    ranks = [torch.load(two / f"rank{r}.pt") for r in (0, 1)]
    assert single["world"] == 1 and [r["world"] for r in ranks] == [2, 2]
    # the same parameters after 9 steps, uneven last shares included, and the same on both processes
    assert _close(ranks[0]["steps"], ranks[1]["steps"], atol=0.0)
    assert _close(single["steps"], ranks[0]["steps"], atol=1e-5)
    moved = max(
        (single["steps"][k] - ConvARM(levels=3, length=6, channels=8, kernel_size=3, layers=2).state_dict()[k])
        .abs()
        .max()
        .item()
        for k in single["steps"]
        if k.endswith("weight")
    )
    assert moved > 1e-3  # training did change the parameters (the comparison is not between two inits)
    # the recorded training loss is the global batch's mean on every process
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"]
    assert torch.allclose(torch.tensor(single["train_loss"]), torch.tensor(ranks[0]["train_loss"]), atol=1e-5)


def test_early_stopping_stops_every_process_at_the_same_step(runs):
    one, two = runs
    single = torch.load(one / "rank0.pt")
    ranks = [torch.load(two / f"rank{r}.pt") for r in (0, 1)]
    assert single["stopped_early"] and single["early_steps"] < 60 * 3  # it did stop early
    for key in ("val_step", "best_step", "stopped_early", "early_steps", "val_loss"):
        assert ranks[0][key] == ranks[1][key], key
        assert ranks[0][key] == single[key] if key != "val_loss" else True, key
    assert torch.allclose(torch.tensor(single["val_loss"]), torch.tensor(ranks[0]["val_loss"]), atol=1e-5)
    assert _close(ranks[0]["early"], ranks[1]["early"], atol=0.0)  # both restored the same best parameters
    assert _close(single["early"], ranks[0]["early"], atol=1e-5)


def test_only_rank_zero_writes(runs):
    one, two = runs
    assert (two / "saved_by_rank0.pt").exists() and not (two / "saved_by_rank1.pt").exists()
    loaded = genbook.load(two / "saved_by_rank0.pt")
    expected = torch.load(two / "rank0.pt")["steps"]
    assert _close(loaded.state_dict(), expected, atol=0.0)


def test_one_process_is_not_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not genbook.distributed.launched() and not genbook.distributed.setup()
    assert genbook.distributed.world_size() == 1 and genbook.distributed.rank() == 0 and genbook.distributed.is_main()


def test_a_world_without_a_rendezvous_raises(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(
        RuntimeError,
        match=r"WORLD_SIZE=2 asks for distributed training, but \['RANK', 'MASTER_ADDR', 'MASTER_PORT'\] are not set: "
        r"start the script with torchrun",
    ):
        genbook.fit(
            ConvARM(levels=3, length=6, channels=4, kernel_size=2, layers=1),
            torch.zeros(4, 6, dtype=torch.long),
            steps=1,
        )
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer, got 'two'"):
        genbook.distributed.launched()


# ---------------------------------------------------------------- mixed precision
def test_bf16_loss_matches_float32_within_tolerance(gen):
    x = torch.randint(0, 17, (64, 64), generator=gen)
    losses = {}
    for precision in ("fp32", "bf16"):
        genbook.seed(0)
        m = ConvARM(levels=17, length=64, channels=16, kernel_size=3, layers=2, dropout=0.0)
        hist = genbook.fit(
            m, x, steps=20, batch_size=32, lr=1e-2, precision=precision, generator=torch.Generator().manual_seed(1)
        )
        losses[precision] = torch.tensor(hist.train_loss)
    # the first loss (same parameters, same batch) within 1 %, bf16's 8-bit mantissa; the whole run within 3 %
    assert losses["bf16"][0].item() == pytest.approx(losses["fp32"][0].item(), rel=1e-2)
    assert torch.allclose(losses["bf16"], losses["fp32"], rtol=3e-2)
    assert losses["bf16"][-1] < losses["bf16"][0] - 0.5  # and it trains
    assert not torch.equal(losses["bf16"], losses["fp32"])  # bf16 was really used


def test_bad_precision_raises(gen):
    from genbook.gan import GAN

    with pytest.raises(ValueError, match="^precision must be"):
        genbook.fit(
            ConvARM(levels=3, length=6, channels=4, kernel_size=2, layers=1),
            torch.zeros(4, 6, dtype=torch.long),
            steps=1,
            precision="fp16",
        )
    with pytest.raises(
        ValueError, match="precision='bf16' applies to models trained through loss; GAN supplies training_step"
    ):
        genbook.fit(GAN(dim=2, latent=2, hidden=4, layers=1), torch.zeros(8, 2), steps=1, precision="bf16")


# ---------------------------------------------------------------- the command line
def test_train_cli_trains_writes_and_scores(tmp_path, capsys):
    import json

    from genbook import train_cli

    assert train_cli.main(["arm", "--steps", "3", "--batch-size", "16", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "arm_test.json").read_text())
    assert result["the number is"] == "exact" and result["processes"] == 1
    assert result["ci95"][0] < result["test_nats"] < result["ci95"][1]
    model = genbook.load(tmp_path / "arm_digits.pt")
    assert genbook.load_meta(tmp_path / "arm_digits.pt")["steps"] == 3
    nll = -model.log_prob(genbook.data.digits("test")).double().mean().item()
    assert result["test_nats"] == pytest.approx(nll, rel=1e-6)  # the score is the saved model's
    assert "arm: trained in" in capsys.readouterr().out


def test_train_cli_refuses_models_it_cannot_distribute(tmp_path):
    from genbook import train_cli

    with pytest.raises(SystemExit):
        train_cli.main(["gan", "--out", str(tmp_path)])
