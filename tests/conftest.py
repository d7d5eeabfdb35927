"""Suite-wide test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """Run the suite with one intra-op thread.

    The tests run many tiny tensor operations: one thread is as fast as two for them, and it
    does not thrash when the 2-core test machine runs other jobs (measured up to 30x faster
    under contention).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
