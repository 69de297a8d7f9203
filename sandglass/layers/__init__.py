"""Every layer of the four seed systems (see DESIGN.md), as plain ``nn.Module``s with explicit keyword arguments.

1-D layers take ``(B, T, C)`` with a padding mask ``(B, T)`` (true on real tokens); 2-D layers take ``(B, C, H, W)``.
"""

from sandglass.layers.augmented_conv import AugmentedAttention, AugmentedAttention2d, AugmentedConv, AugmentedConv2d
from sandglass.layers.batch_norm import MaskedBatchNorm1d
from sandglass.layers.conv import Conv
from sandglass.layers.dot_product_kernel_conv import DotProductKernelConv, DotProductKernelConv2d
from sandglass.layers.expand_conv import ExpandConv
from sandglass.layers.fc_generated_kernel_conv import FCGeneratedKernelConv, FCGeneratedKernelConv2d
from sandglass.layers.feed_forward import FeedForward
from sandglass.layers.kernel_weighted_conv import KernelWeightedConv, KernelWeightedConv2d
from sandglass.layers.mbconv import MBConv, MBConv2d
from sandglass.layers.mirror_attention import MirrorAttention
from sandglass.layers.reduce_attention import ReduceAttention
from sandglass.layers.reduce_conv import ReduceConv
from sandglass.layers.relative_attention import RelativeAttention, RelativeAttention2d
from sandglass.layers.reverse_conv import ReverseConv
from sandglass.layers.squeeze_excitation import SqueezeExcitation, SqueezeExcitation2d
from sandglass.layers.transformer_block import TransformerBlock

__all__ = [
    "AugmentedAttention",
    "AugmentedAttention2d",
    "AugmentedConv",
    "AugmentedConv2d",
    "Conv",
    "DotProductKernelConv",
    "DotProductKernelConv2d",
    "ExpandConv",
    "FCGeneratedKernelConv",
    "FCGeneratedKernelConv2d",
    "FeedForward",
    "KernelWeightedConv",
    "KernelWeightedConv2d",
    "MBConv",
    "MBConv2d",
    "MaskedBatchNorm1d",
    "MirrorAttention",
    "ReduceAttention",
    "ReduceConv",
    "RelativeAttention",
    "RelativeAttention2d",
    "ReverseConv",
    "SqueezeExcitation",
    "SqueezeExcitation2d",
    "TransformerBlock",
]
