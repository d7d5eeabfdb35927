import pytest
import torch

from diffcore.operators import Blur, Downsample, Mask, MatrixOperator, adjointness_error

G = torch.Generator().manual_seed(0)


def operators():
    mask = (torch.rand(1, 1, 8, 8, generator=G) > 0.5).double()
    return {
        "mask": (Mask(mask), (2, 3, 8, 8)),
        "matrix": (MatrixOperator.random(10, 24, generator=G, dtype=torch.float64), (2, 24)),
        "downsample": (Downsample(2), (2, 3, 8, 8)),
        "blur": (Blur.gaussian(1.0), (2, 3, 8, 8)),
        "blur-asymmetric": (Blur(torch.rand(3, 4, generator=G, dtype=torch.float64)), (2, 2, 8, 8)),
    }


@pytest.mark.parametrize("name", list(operators()))
def test_adjointness(name):
    op, shape = operators()[name]
    x = torch.randn(shape, generator=G, dtype=torch.float64)
    y = torch.randn(op.A(x).shape, generator=G, dtype=torch.float64)
    assert adjointness_error(op, x, y) < 1e-10


@pytest.mark.parametrize("name", list(operators()))
def test_pseudo_inverse_is_a_least_squares_solution(name):
    op, shape = operators()[name]
    x = torch.randn(shape, generator=G, dtype=torch.float64)
    y = op.A(x)
    x_dag = op.A_dagger(y)
    # consistent data: A A^+ y = y
    torch.testing.assert_close(op.A(x_dag), y, atol=1e-6, rtol=1e-6)


def test_generic_cg_pseudo_inverse_matches_pinv():
    op = MatrixOperator.random(6, 15, generator=G, dtype=torch.float64)
    y = torch.randn(3, 6, generator=G, dtype=torch.float64)
    from diffcore.operators import LinearOperator

    generic = LinearOperator.A_dagger(op, y)  # the CG default, least norm from a zero start
    torch.testing.assert_close(generic, op.A_dagger(y), atol=1e-8, rtol=1e-8)


def test_shape_errors_are_named():
    with pytest.raises(ValueError, match="entries per sample"):
        MatrixOperator.random(3, 5).A(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="multiples of factor"):
        Downsample(3).A(torch.zeros(1, 1, 8, 8))
