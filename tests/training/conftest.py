import pytest


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory):
    """One tokenizer cache for every test run: sentencepiece trains once."""
    return tmp_path_factory.mktemp("tokenizers")
