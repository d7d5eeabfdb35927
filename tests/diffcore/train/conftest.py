import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: one intra-op thread is as fast as two and does not thrash when the 2-core
    # test machine is shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
