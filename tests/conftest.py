import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for a test module: tiny models run many times faster on one thread than on two when
    other processes share the CPU. Use it with ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
