"""The loss is the negative ELBO the issue defines: summed per image, averaged over the batch."""

import math

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from training.evaluate import importance_sampled_nll
from training.model import VAE, Architecture

ARCH = Architecture(latent_dim=4, channels=8, hidden=32)


def test_kl_matches_torch_distributions_and_is_summed_per_image():
    torch.manual_seed(0)
    model = VAE(ARCH, "bernoulli")
    x = torch.rand(5, 1, 28, 28).bernoulli()
    out = model(x)
    terms = model.loss(x, out)
    expected = kl_divergence(Normal(out.mu, (0.5 * out.logvar).exp()), Normal(0.0, 1.0)).sum(-1).mean()
    torch.testing.assert_close(terms.kl, expected)


def test_bernoulli_reconstruction_is_summed_bce_per_image():
    torch.manual_seed(0)
    model = VAE(ARCH, "bernoulli")
    x = torch.rand(3, 1, 28, 28).bernoulli()
    out = model(x)
    expected = -Bernoulli(logits=out.logits).log_prob(x).flatten(1).sum(1).mean()
    torch.testing.assert_close(model.loss(x, out).recon, expected)


def test_gaussian_reconstruction_is_squared_error_summed_over_pixels():
    torch.manual_seed(0)
    model = VAE(ARCH, "gaussian")
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    sse = (torch.sigmoid(out.logits) - x).pow(2).flatten(1).sum(1).mean()
    constant = 784 * 0.5 * math.log(math.pi)  # -log N(x; x_hat, 1/2) = sse + this
    torch.testing.assert_close(model.loss(x, out).recon, sse + constant)


def test_beta_scales_only_the_kl_term():
    torch.manual_seed(0)
    model = VAE(ARCH, "bernoulli")
    x = torch.rand(4, 1, 28, 28).bernoulli()
    out = model(x)
    plain, weighted = model.loss(x, out, beta=1.0), model.loss(x, out, beta=0.25)
    torch.testing.assert_close(weighted.loss, plain.recon + 0.25 * plain.kl)


class LinearGaussian(torch.nn.Module):
    """p(z) = N(0, 1), p(x|z) = N(x; z, s^2): log p(x) = log N(x; 0, 1 + s^2) exactly.

    The encoder is a deliberately poor proposal q(z|x) = N(x/2, 1), so only importance
    sampling, not the ELBO, recovers the exact marginal likelihood.
    """

    noise = 0.5

    def encode(self, x):
        flat = x.flatten(1)
        return flat / 2, torch.zeros_like(flat)

    def decode(self, z):
        return z.view(-1, 1, 1, 1)

    def log_likelihood(self, mean, x):
        return Normal(mean, self.noise).log_prob(x).flatten(start_dim=-3).sum(-1)


def test_importance_sampled_nll_recovers_an_exact_marginal_likelihood():
    x = torch.linspace(-2, 2, 9).view(-1, 1, 1, 1)
    exact = -Normal(0.0, math.sqrt(1 + LinearGaussian.noise**2)).log_prob(x.flatten())
    estimate = importance_sampled_nll(LinearGaussian(), x, k=5000, seed=0)
    torch.testing.assert_close(estimate, exact, atol=0.05, rtol=0)
    one_sample = importance_sampled_nll(LinearGaussian(), x, k=1, seed=0)
    assert (one_sample - exact).mean() > 0.3  # k=1 is the ELBO: a looser bound


def test_importance_sampled_nll_does_not_depend_on_how_work_is_chunked():
    torch.manual_seed(0)
    model = VAE(ARCH, "bernoulli").eval()
    x = torch.rand(6, 1, 28, 28).bernoulli()
    # One image per pass with every sample, versus all images in one pass: same seed, same draws
    # only when the chunking is the same, so compare two large-k estimates for closeness instead.
    coarse = importance_sampled_nll(model, x, k=2000, seed=1, max_rows=12_000)
    fine = importance_sampled_nll(model, x, k=2000, seed=2, max_rows=500)
    torch.testing.assert_close(coarse, fine, atol=1.0, rtol=0)
