"""The loss is the negative ELBO the issue defines: summed per image, averaged over the batch."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from training.evaluate import importance_sampled_nll
from training.model import VAE, Architecture, bits_per_dim, dequantize

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


@pytest.mark.parametrize(
    "image_shape, sides",
    [
        ((1, 28, 28), [(28, 28), (14, 14), (7, 7)]),  # MNIST: two stages, as shipped
        ((3, 32, 32), [(32, 32), (16, 16), (8, 8), (4, 4)]),
        ((3, 24, 32), [(24, 32), (12, 16), (6, 8)]),  # the shorter side decides
        ((3, 30, 30), [(30, 30), (15, 15), (7, 7)]),  # odd sides are restored by output_padding
        ((1, 8, 8), [(8, 8), (4, 4)]),
    ],
)
def test_the_number_of_down_sampling_stages_follows_the_image_size(image_shape, sides):
    arch = Architecture(image_shape=image_shape, latent_dim=4, channels=8, hidden=16)
    assert arch.sides == sides
    model = VAE(arch, "bernoulli")
    assert model(torch.rand(2, *image_shape)).logits.shape == (2, *image_shape)


def test_a_spatial_latent_sits_at_the_lowest_resolution():
    arch = Architecture(image_shape=(3, 24, 32), channels=8, latent_channels=3)
    out = VAE(arch, "bernoulli")(torch.rand(2, 3, 24, 32))
    assert arch.latent_shape == (3, 6, 8) and out.mu.shape == out.z.shape == (2, 3, 6, 8)
    assert out.logits.shape == (2, 3, 24, 32)


def test_the_learned_gaussian_is_a_normal_density_with_one_sigma_per_channel():
    torch.manual_seed(0)
    model = VAE(Architecture(image_shape=(3, 16, 16), latent_dim=4, channels=8, hidden=16), "gaussian", "learned")
    with torch.no_grad():
        model.log_scale.copy_(torch.tensor([-1.0, -2.0, -3.0]).view(3, 1, 1))
    x = torch.rand(2, 3, 16, 16)
    logits = torch.randn(2, 3, 16, 16)
    sigma = model.log_scale.exp()
    expected = Normal(torch.sigmoid(logits), sigma).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(model.log_likelihood(logits, x), expected)


def test_dequantized_pixels_stay_inside_their_8_bit_bin():
    pixels = torch.arange(256.0).view(1, 1, 16, 16) / 255
    noisy = dequantize(pixels, torch.Generator().manual_seed(0))
    assert torch.equal(torch.floor(noisy * 256), torch.round(pixels * 255))


def test_bits_per_dim_of_the_uniform_density_on_the_unit_cube_is_eight():
    assert bits_per_dim(0.0, dims=3 * 32 * 32) == pytest.approx(8.0)
    assert bits_per_dim(-3 * 32 * 32 * math.log(2), dims=3 * 32 * 32) == pytest.approx(7.0)
