import pytest


@pytest.fixture(autouse=True)
def one_thread_for_every_bench_test(single_thread):
    """The bench tests train and time tiny models: one torch thread each (see tests/conftest.py)."""
