"""The IWAE objective: its value is the negative bound, the decoder's gradient is the bound's,
and a short run on it trains; --init-from starts from another model's weights."""

from __future__ import annotations

import json
import math

import pytest
import torch

from training.config import TrainConfig
from training.data import Dataset, Split, load_dataset
from training.model import LOG_2PI
from training.train import train

TINY = dict(latent_dim=4, channels=8, hidden=32, batch_size=64, limit_train=512, limit_test=128)


def test_the_loss_is_the_negative_bound_and_the_decoder_gets_the_bounds_gradient():
    torch.manual_seed(0)
    model = TrainConfig(**TINY).build_model()
    x = torch.rand(6, 1, 28, 28).bernoulli()
    torch.manual_seed(1)
    out = model(x, samples=5)
    terms = model.iwae_loss(x, out)
    log_px = model.log_likelihood(out.logits, x.expand(5, *x.shape))
    log_q = -0.5 * ((out.z - out.mu).pow(2) / out.logvar.exp() + out.logvar + LOG_2PI).sum(-1)
    log_p = -0.5 * (out.z.pow(2) + LOG_2PI).sum(-1)
    bound = (torch.logsumexp(log_px + log_p - log_q, 0) - math.log(5)).mean()
    assert terms.loss.item() == pytest.approx(-bound.item(), rel=1e-5)
    decoder = list(model.decoder.parameters())
    ours = torch.autograd.grad(terms.loss, decoder, retain_graph=True)
    reference = torch.autograd.grad(-bound, decoder)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_the_iwae_bound_is_not_looser_than_the_elbo_on_the_same_model():
    torch.manual_seed(0)
    model = TrainConfig(**TINY).build_model()
    x = torch.rand(32, 1, 28, 28).bernoulli()
    with torch.no_grad():
        elbo = model.loss(x, model(x)).loss.item()
        iwae = model.iwae_loss(x, model(x, samples=50)).loss.item()
    assert iwae <= elbo


def test_a_short_iwae_fine_tune_from_another_run_trains(tmp_path):
    full = load_dataset("mnist")
    small = Dataset("mnist", Split(full.train.images[:2_000], full.train.labels[:2_000]), full.test)
    first = tmp_path / "vae"
    train(TrainConfig(epochs=1, **TINY), first, dataset=small, threads=1)
    tuned = tmp_path / "iwae"
    train(TrainConfig(epochs=2, iw_samples=4, init_from=str(first), **TINY), tuned, dataset=small, threads=1)
    before = json.loads((first / "metrics.jsonl").read_text().splitlines()[-1])
    after = [json.loads(line) for line in (tuned / "metrics.jsonl").read_text().splitlines()]
    # It starts where the first run ended (not from scratch) and its own objective improves.
    assert after[0]["test_neg_elbo"] < before["test_neg_elbo"] + 5
    assert after[1]["train_loss"] < after[0]["train_loss"]


def test_iwae_refuses_a_kl_weight():
    with pytest.raises(ValueError, match="keep --beta 1"):
        TrainConfig(iw_samples=5, beta=0.5)
