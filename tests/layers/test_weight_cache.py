"""WeightCache: a derived tensor kept until its weight changes."""

import torch

from sandglass.layers.weight_cache import WeightCache


def counting_derivation():
    calls = []

    def derive(weight: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return weight * 2

    return derive, calls


def test_the_derived_tensor_is_kept_while_the_weight_is_unchanged():
    weight = torch.nn.Parameter(torch.randn(3, 2))
    cache, (derive, calls) = WeightCache(), counting_derivation()
    first = cache.get(weight, derive)
    assert cache.get(weight, derive) is first
    assert len(calls) == 1
    torch.testing.assert_close(first, weight.detach() * 2)
    assert not first.requires_grad


def test_an_in_place_update_a_new_tensor_or_a_new_tag_derive_again():
    weight = torch.nn.Parameter(torch.randn(3, 2))
    cache, (derive, calls) = WeightCache(), counting_derivation()
    cache.get(weight, derive)
    with torch.no_grad():
        weight.add_(1.0)
    torch.testing.assert_close(cache.get(weight, derive), weight.detach() * 2)
    other = torch.randn(3, 2)
    torch.testing.assert_close(cache.get(other, derive), other * 2)
    cache.get(other, derive, tag="bf16")
    assert len(calls) == 4


def test_derived_is_kept_without_gradients_and_fresh_and_differentiable_with_them():
    weight = torch.nn.Parameter(torch.randn(3, 2))
    cache, (derive, calls) = WeightCache(), counting_derivation()
    with torch.no_grad():
        kept = cache.derived(weight, derive)
        assert cache.derived(weight, derive) is kept and len(calls) == 1
    fresh = cache.derived(weight, derive)
    assert fresh is not kept and fresh.requires_grad and len(calls) == 2
    fresh.sum().backward()
    torch.testing.assert_close(weight.grad, torch.full_like(weight, 2.0))
