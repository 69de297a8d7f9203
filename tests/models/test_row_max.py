import pytest
import torch

from sandglass.models.row_max import column_max, row_max


def assert_same_as_max(scores: torch.Tensor, block: int) -> None:
    """Both functions against ``max``: ``row_max`` of the rows, ``column_max`` of the same scores transposed."""
    expected_values, expected_indices = scores.max(dim=-1)
    result = row_max(scores, block=block)
    # Reduced-precision scores come back as float32 values, the same numbers widened; wider dtypes stay.
    widened = expected_values.to(torch.promote_types(scores.dtype, torch.float32))
    torch.testing.assert_close(result.values, widened, atol=0, rtol=0, equal_nan=True)
    torch.testing.assert_close(result.indices, expected_indices, atol=0, rtol=0)
    by_column = column_max(scores.t().contiguous(), block=block)
    torch.testing.assert_close(by_column.values, expected_values, atol=0, rtol=0, equal_nan=True)
    torch.testing.assert_close(by_column.indices, expected_indices, atol=0, rtol=0)


@pytest.mark.parametrize("columns", [7, 16, 40, 43, 161])
@pytest.mark.parametrize("block", [1, 4, 16])
def test_equals_max_on_random_scores(columns, block):
    torch.manual_seed(columns * 100 + block)
    assert_same_as_max(torch.randn(37, columns), block)


@pytest.mark.parametrize("columns", [40, 43])
def test_ties_go_to_the_first_column(columns):
    """Integer scores tie often, within a block and across blocks, including in a short final block."""
    torch.manual_seed(columns)
    scores = torch.randint(0, 3, (200, columns)).float()
    scores[0] = 5.0
    scores[1, -1] = scores[1, -3] = 9.0
    assert_same_as_max(scores, 8)
    for indices in (row_max(scores, block=8).indices, column_max(scores.t().contiguous(), block=8).indices):
        assert indices[0] == 0
        assert indices[1] == columns - 3


def test_the_maximum_in_the_short_final_block():
    scores = torch.zeros(2, 10)
    scores[0, 9] = 1.0
    scores[1, 8] = 1.0
    assert row_max(scores, block=4).indices.tolist() == [9, 8]
    assert column_max(scores.t().contiguous(), block=4).indices.tolist() == [9, 8]


def test_half_precision_and_no_rows():
    torch.manual_seed(0)
    assert_same_as_max(torch.randn(9, 50).bfloat16(), 8)
    assert_same_as_max(torch.randint(0, 3, (60, 43)).half(), 8)  # ties in a reduced precision
    assert_same_as_max(torch.randn(9, 50, dtype=torch.float64), 8)
    assert row_max(torch.randn(9, 50).bfloat16(), block=8).values.dtype == torch.float32
    assert column_max(torch.randn(50, 9).bfloat16(), block=8).values.dtype == torch.bfloat16
    for result in (row_max(torch.randn(0, 50), block=8), column_max(torch.randn(50, 0), block=8)):
        assert result.values.shape == result.indices.shape == (0,)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sixteen_bit_columns_read_as_integers_stay_exact(dtype):
    """``column_max`` orders 16-bit scores by their bits where a column's maximum is positive; the columns where
    that order is not the values' (all negative, a zero maximum after a -0.0, a NaN) must still come out right."""
    torch.manual_seed(3)
    scores = torch.randn(12, 90).to(dtype)  # (R, V): the helper hands column_max the transpose
    scores[1] = -scores[1].abs() - 0.5  # every score negative
    scores[2] = -scores[2].abs() - 0.5
    scores[2, 10], scores[2, 40] = -0.0, 0.0  # the maximum is zero, and -0.0 comes first
    scores[3, 20] = scores[3, 70] = float("inf")  # tied infinities in two blocks
    scores[4, 5] = float("nan")
    bits = scores.view(torch.int16)
    smallest_nan = 0x7F81 if dtype == torch.bfloat16 else 0x7C01
    bits[7, 5], bits[7, 60] = smallest_nan, 0x7FFF  # two positive NaNs: the first one is the smaller integer
    assert scores[7, 5].isnan() and scores[7, 60].isnan()
    scores[5] = 1.0  # every score ties
    scores[6, 89] = 100.0  # the maximum in the short final block
    assert_same_as_max(scores, 8)
    assert_same_as_max(torch.randn(300, 1000).to(dtype), 160)


def test_rejects_a_tensor_that_is_not_a_matrix():
    with pytest.raises(ValueError, match=r"\(R, V\)"):
        row_max(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(V, R\)"):
        column_max(torch.randn(2, 3, 4))
