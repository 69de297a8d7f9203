import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a busy shared machine two threads per process make tiny models many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
