import pytest
import torch

from sandglass.data.synthetic import symbol_names, synthetic_corpus
from sandglass.tokenizer import Tokenizer, TokenizerError, train_or_load

TEXTS = [
    "Ein Hund läuft im Park.",
    "A dog runs in the park.",
    "Zwei Männer spielen Fußball auf der Straße.",
    "Two men play football in the street.",
    "Eine Frau liest ein Buch.",
    "A woman reads a book.",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(TEXTS, vocab_size=60)


def test_round_trip(tokenizer):
    sentences = ["Ein Mann liest im Park.", "Two women play."]
    assert tokenizer.decode(tokenizer.encode(sentences)) == sentences
    assert 4 < tokenizer.vocab_size <= 60 and len(tokenizer) == tokenizer.vocab_size


def test_special_ids_are_fixed(tokenizer):
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert [tokenizer.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]
    ids = tokenizer.encode(["Ein Hund."], add_bos=True, add_eos=True)[0]
    assert ids[0] == 2 and ids[-1] == 3 and all(i > 3 for i in ids[1:-1])
    assert tokenizer.encode(["€"])[0][-1] == 1  # a character never seen in training is unknown


def test_decode_drops_pad_and_bos_and_stops_at_eos(tokenizer):
    ids = tokenizer.encode(["Ein Hund."])[0]
    noisy = [[2, *ids, 3, *ids, 0, 0], [2, *ids, *[0] * (len(ids) + 3)]]
    assert tokenizer.decode(noisy) == ["Ein Hund.", "Ein Hund."]
    assert tokenizer.decode(torch.tensor(noisy)) == ["Ein Hund.", "Ein Hund."]
    assert tokenizer.decode([]) == []
    with pytest.raises(TokenizerError, match="token id 999 is outside the vocabulary"):
        tokenizer.decode([[5, 999]])


def test_word_model_gives_one_id_per_symbol():
    corpus = synthetic_corpus("reverse", 300, seed=0)
    tokenizer = Tokenizer.train(corpus.source + corpus.target, vocab_size=100, model_type="word")
    assert tokenizer.vocab_size == 64
    ids = tokenizer.encode(corpus.source[:20])
    assert [len(row) for row in ids] == [len(text.split()) for text in corpus.source[:20]]
    assert len({i for i in tokenizer.encode([" ".join(symbol_names(60))])[0]}) == 60
    assert tokenizer.decode(ids) == corpus.source[:20]


def test_bytes_and_file_round_trip(tokenizer, tmp_path):
    copy = Tokenizer.from_bytes(tokenizer.to_bytes())
    assert copy.encode(TEXTS[:3]) == tokenizer.encode(TEXTS[:3])
    tokenizer.save(tmp_path / "sub" / "t.model")
    loaded = Tokenizer.load(tmp_path / "sub" / "t.model")
    assert loaded.to_bytes() == tokenizer.to_bytes() and loaded.vocab_size == tokenizer.vocab_size


def test_cache_is_reused(tmp_path, monkeypatch):
    first = train_or_load(TEXTS, tmp_path, vocab_size=40)
    (cached,) = tmp_path.glob("tokenizer-*.model")

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(Tokenizer, "train", no_training)
    second = train_or_load(iter(TEXTS), tmp_path, vocab_size=40)
    assert second.to_bytes() == first.to_bytes()
    monkeypatch.undo()
    train_or_load(TEXTS, tmp_path, vocab_size=41)
    train_or_load(TEXTS[:-1], tmp_path, vocab_size=40)
    assert len(list(tmp_path.glob("tokenizer-*.model"))) == 3 and cached.is_file()


def test_corrupt_and_missing_model_files(tmp_path):
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(TokenizerError, match=r"bad\.model: not a sentencepiece model.*delete the file"):
        Tokenizer.load(tmp_path / "bad.model")
    with pytest.raises(TokenizerError, match=r"cannot read the tokenizer model .*absent\.model"):
        Tokenizer.load(tmp_path / "absent.model")


def test_invalid_training_options():
    with pytest.raises(TokenizerError, match="model_type must be one of"):
        Tokenizer.train(TEXTS, vocab_size=50, model_type="wordpiece")
    with pytest.raises(TokenizerError, match="vocab_size must be an integer above 4"):
        Tokenizer.train(TEXTS, vocab_size=4)
    with pytest.raises(TokenizerError, match="no text"):
        Tokenizer.train(["", "  "], vocab_size=50)
