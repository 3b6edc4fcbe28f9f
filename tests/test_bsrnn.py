from __future__ import annotations

import math

import pytest
import torch
from fitting import fit_one_batch
from torch import nn

from train.models import MODELS, build_model
from train.models.bands import band_edges, band_table, band_widths
from train.models.bsrnn import apply_complex_mask, spectral_l1_loss
from train.models.se import SqueezeExcitation

SR = 44100
NAMES = ("bsrnn", "se-bsrnn")
TINY = {"dim": 16, "num_layers": 1}
SOURCE_FRAMES = 263  # the unofficial implementation's LayerNorms hold one affine weight per frame


def tiny(name: str = "bsrnn", source: str = "vocals", **kwargs) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_model(name, sources=[source], sample_rate=SR, **{**TINY, **kwargs})


def paper_size(name: str, source: str) -> nn.Module:
    with torch.device("meta"):
        return build_model(name, sources=[source], sample_rate=SR)


def noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def band_norm_affine(model: nn.Module) -> int:
    """Affine weights of the band-split and mask-head LayerNorms (the ones the source makes
    per-frame); the sequence norms are the same size in both."""
    parts = (model.band_split, model.mask_estimator)
    norms = [m for part in parts for m in part.modules() if isinstance(m, nn.LayerNorm)]
    return sum(p.numel() for norm in norms for p in norm.parameters())


def source_equivalent_count(model: nn.Module) -> int:
    return model.parameter_count() + (SOURCE_FRAMES - 1) * band_norm_affine(model)


@pytest.mark.parametrize(
    ("source", "bands"), [("vocals", 41), ("other", 41), ("bass", 30), ("drums", 55)]
)
def test_band_counts_match_the_source(source, bands):
    widths = band_widths(source, SR, 2048)
    assert len(widths) == bands
    assert sum(widths) == 1025
    assert min(widths) >= 1


def test_band_edges_follow_bin_centres():
    edges = band_edges(band_table("vocals"), SR, 2048)
    # bin 4 is at 86 Hz, bin 5 at 108 Hz: the first 100 Hz band holds bins 0..4
    assert edges[1] == 5
    # bin 46 at 990 Hz, bin 47 at 1012 Hz: ten 100 Hz bands end at 1000 Hz
    assert edges[10] == 47
    # the rest, from 20 kHz (bin 929 at 20006 Hz) to Nyquist, is one band
    assert edges[-2:] == (929, 1025)


def test_low_sample_rates_keep_every_band_non_empty():
    widths = band_widths("drums", 8000, 512)
    assert sum(widths) == 257
    assert min(widths) >= 1
    assert len(widths) < 55


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        tiny(source="piano")


def test_more_than_one_source_is_refused():
    with pytest.raises(ValueError, match="one target per model"):
        build_model("bsrnn", sources=["vocals", "bass"], sample_rate=SR)


def test_registry_holds_both_models():
    assert {"bsrnn", "se-bsrnn"} <= set(MODELS)


def test_paper_size_vocals_count_and_its_relation_to_the_source():
    plain, se = paper_size("bsrnn", "vocals"), paper_size("se-bsrnn", "vocals")
    assert plain.num_bands == se.num_bands == 41
    assert plain.parameter_count() == 27_516_276
    assert se.parameter_count() - plain.parameter_count() == 101_760
    # the source's per-frame LayerNorms: 263 copies of each affine weight = 4,917,048
    assert SOURCE_FRAMES * band_norm_affine(plain) == 4_917_048
    assert source_equivalent_count(plain) == 32_414_628
    assert source_equivalent_count(se) == 32_516_388


def test_dual_path_blocks_match_the_source_size():
    model = paper_size("bsrnn", "vocals")
    sequence = sum(p.numel() for p in model.blocks.parameters())
    assert sequence == 24 * 856_448 == 20_554_752


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("source", "bands", "source_millions"), [("bass", 30, 33.4), ("drums", 55, 36.0)]
)
def test_paper_size_other_targets(name, source, bands, source_millions):
    model = paper_size(name, source)
    assert model.num_bands == bands
    se_millions = 0.1 if name == "se-bsrnn" else 0.0
    assert source_equivalent_count(model) / 1e6 == pytest.approx(
        source_millions + se_millions, abs=0.06
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("channels", "length"), [(2, 22051), (2, 9001), (1, 1025)])
def test_output_keeps_odd_lengths(name, channels, length):
    model = tiny(name, channels=channels).eval()
    with torch.no_grad():
        out = model(noise(2, channels, length))
    assert out.shape == (2, 1, channels, length)
    assert torch.isfinite(out).all()


def test_inputs_of_the_wrong_shape_are_refused():
    model = tiny()
    with pytest.raises(ValueError, match="expects mix shaped"):
        model(noise(1, 1, 4000))
    with pytest.raises(ValueError, match="more than n_fft // 2"):
        model(noise(1, 2, 1024))
    with pytest.raises(ValueError, match="expects targets shaped"):
        model.training_loss(noise(1, 2, 4000), noise(1, 2, 2, 4000))


def test_se_reduction_must_divide_the_features():
    with pytest.raises(ValueError, match="se_reduction"):
        tiny("se-bsrnn", se_reduction=3)


def test_se_gates_sit_after_every_blstm():
    plain, se = tiny("bsrnn", num_layers=2), tiny("se-bsrnn", num_layers=2)
    assert not any(isinstance(m, SqueezeExcitation) for m in plain.modules())
    assert sum(isinstance(m, SqueezeExcitation) for m in se.modules()) == 4


def test_se_gate_is_in_the_signal_path():
    model = tiny("se-bsrnn").eval()
    mix = noise(1, 2, 11025)
    with torch.no_grad():
        before = model(mix)
        gate = model.blocks[0].over_bands.gate
        gate.excite.weight.zero_()
        gate.excite.bias.zero_()
        after = model(mix)
    assert not torch.allclose(before, after, atol=1e-6)


def test_apply_complex_mask_is_a_complex_product():
    spec = torch.complex(noise(2, 3, 4), noise(2, 3, 4, seed=1))
    rotate = torch.stack([torch.zeros(2, 3, 4), torch.ones(2, 3, 4)], dim=-1)  # mask = i
    rotated = apply_complex_mask(rotate, spec)
    torch.testing.assert_close(rotated.real, -spec.imag)
    torch.testing.assert_close(rotated.imag, spec.real)
    mask = torch.stack([noise(2, 3, 4, seed=2), noise(2, 3, 4, seed=3)], dim=-1)
    a, b, c, d = mask[..., 0], mask[..., 1], spec.real, spec.imag
    product = apply_complex_mask(mask, spec)
    torch.testing.assert_close(product.real, a * c - b * d)
    torch.testing.assert_close(product.imag, a * d + b * c)


def test_unit_mask_reproduces_the_mixture():
    model = tiny()
    mix = noise(2, 2, 13001)
    spec = model.stft(mix)
    unit = torch.stack([torch.ones(spec.shape), torch.zeros(spec.shape)], dim=-1)
    torch.testing.assert_close(model.istft(apply_complex_mask(unit, spec), 13001), mix)


def test_forward_applies_the_estimated_mask_to_the_mixture_stft():
    model = tiny().eval()
    mix = noise(1, 2, 11025)
    with torch.no_grad():
        spec = model.stft(mix)
        expected = model.istft(apply_complex_mask(model.estimate_mask(spec), spec), 11025)
        torch.testing.assert_close(model(mix)[:, 0], expected)


def test_spectral_l1_loss_weights_magnitude_and_parts():
    target = torch.full((1, 4), complex(3.0, 4.0))
    silence = torch.zeros_like(target)
    assert spectral_l1_loss(silence, target, alpha=0.5).item() == pytest.approx(6.0)
    assert spectral_l1_loss(silence, target, alpha=1.0).item() == pytest.approx(5.0)
    assert spectral_l1_loss(target, target, alpha=0.5).item() == 0.0


def test_alpha_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="alpha"):
        tiny(alpha=1.5)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_overfits_one_batch(name):
    model = tiny(name)
    t = torch.arange(11025) / SR
    target = (0.3 * torch.sin(2 * math.pi * 440 * t)).expand(1, 1, 2, -1)
    mix = target[:, 0] + noise(1, 2, 11025)
    losses = fit_one_batch(model, mix, target, steps=40, lr=3e-3)
    assert losses[-1] < losses[0] / 5


def test_checkpointing_gives_the_same_loss_and_gradients():
    plain, checkpointed = tiny(num_layers=2), tiny(num_layers=2, checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    mix, target = noise(1, 2, 8000), noise(1, 1, 2, 8000, seed=1)
    for model in (plain, checkpointed):
        model.training_loss(mix, target).backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


@pytest.mark.parametrize("name", NAMES)
def test_init_kwargs_rebuild_the_model(name):
    model = tiny(name, source="drums", mlp_hidden=24).eval()
    rebuilt = build_model(model.name, **model.init_kwargs).eval()
    rebuilt.load_state_dict(model.state_dict())
    assert ("se_reduction" in model.init_kwargs) == (name == "se-bsrnn")
    mix = noise(1, 2, 6000)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(mix), model(mix))
