import pytest
import torch
from torch import nn

from sandglass.config import preset
from sandglass.models import build_model
from sandglass.summary import summary


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 4)
        self.body = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 4))
        self.head = nn.Linear(4, 11, bias=False)
        self.head.weight = self.embed.weight
        self.scale = nn.Parameter(torch.ones(1))
        self.unused = nn.Linear(2, 2)
        self.unused.bias.requires_grad_(False)

    def forward(self, tokens):
        return self.head(self.body(self.embed(tokens)) * self.scale)


def test_totals_equal_the_parameter_count_and_rows_add_up():
    model = Tied()
    table = summary(model, torch.zeros(2, 5, dtype=torch.long))
    assert table.total_params == sum(p.numel() for p in model.parameters())
    assert sum(row.params for row in table.rows) == table.total_params
    assert table.trainable_params == table.total_params - 2
    assert table.non_trainable_params == 2


def test_rows_follow_call_order_with_output_shapes():
    table = summary(Tied(), torch.zeros(2, 5, dtype=torch.long))
    by_name = {row.name: row for row in table.rows}
    assert [row.name for row in table.rows][:5] == ["embed", "body.0", "body.1", "body.2", "head"]
    assert by_name["body.0"].output_shape == "(2, 5, 6)"
    assert by_name["head"].output_shape == "(2, 5, 11)"
    assert by_name["head"].params == 0  # tied to the embedding, counted once
    assert by_name["unused"].output_shape == "—"
    assert by_name["tied"].params == 1  # the root's own parameter


def test_text_rendering_lists_every_row_and_the_totals():
    model = Tied()
    text = str(summary(model, torch.zeros(1, 3, dtype=torch.long)))
    assert "body.0 (Linear)" in text
    assert f"Total params: {sum(p.numel() for p in model.parameters()):,}" in text


def test_mode_is_restored_even_when_forward_fails():
    model = Tied().train()
    with pytest.raises(IndexError):
        summary(model, torch.full((1, 2), 99, dtype=torch.long))
    assert model.training


def test_the_seed_augmented_conv_example_totals_5204_parameters_in_its_five_parts():
    from sandglass.layers import AugmentedConv2d

    model = nn.Sequential(
        nn.Conv2d(10, 10, 3, padding=1),
        AugmentedConv2d(10, 20, 5, dk=4, dv=4, num_heads=4, height=32, width=32),
    )
    table = summary(model, torch.ones(1, 10, 32, 32))
    assert table.total_params == 5204 == sum(p.numel() for p in model.parameters())
    assert [row.params for row in table.rows] == [910, 4016, 132, 63, 63, 20]


def test_every_sandglass_layer_with_weights_reports_its_output_shape():
    model = build_model(preset("tiny").model, 50)
    source = torch.randint(4, 50, (2, 7))
    table = summary(model, (source, torch.ones(2, 7, dtype=torch.bool)))
    assert [row.name for row in table.rows if row.params and row.output_shape == "—"] == []
    convs = [row for row in table.rows if row.type in {"SequenceConv1d", "WindowConv1d", "WindowConvTranspose1d"}]
    assert {row.type for row in convs} == {"SequenceConv1d", "WindowConv1d", "WindowConvTranspose1d"}
