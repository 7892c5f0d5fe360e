"""bert-base-uncased WordPiece ids: [CLS] … [SEP], lower-cased, unpadded, truncated at the maximum."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.transform.tokenize import TokenizerUnavailable, load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("bert-base-uncased", max_tokens=16, offline=True)


def test_known_sentence_gives_known_ids(tok):
    assert tok.encode(["Hello world"]) == [[101, 7592, 2088, 102]]
    assert tok.encode(["HELLO World"]) == [[101, 7592, 2088, 102]]


def test_no_padding_and_truncation_at_the_maximum(tok):
    short, long = tok.encode(["hi", "word " * 100])
    assert short == [101, 7632, 102]
    assert len(long) == 16 and long[0] == 101 and long[-1] == 102


def test_the_fast_batch_gives_the_ids_of_the_full_encoding(tok):
    # encode() leaves the offsets out (encode_batch_fast); the ids are those of encode_batch
    import io

    from lake.transform.chunking import read_columns
    from lake.transform.generate import write_csv
    from lake.transform.stage import stage_records

    buf = io.BytesIO()
    write_csv(buf, 2000, seed=5)
    columns, header = read_columns(io.BytesIO(buf.getvalue()), "x.csv")
    rows = stage_records(
        buf.getvalue()[header:], columns, 1, {"run_id": "r", "chunk_id": 0, "raw_key": "k"}
    ).rows
    texts = [r["clean_text"] for r in rows] + ["Ünïcödé ßtraße 🔥 日本語", "", "a" * 500]
    texts += texts[:300]  # texts that recur in the batch are tokenized once, to the same ids
    assert len(set(texts)) < len(texts)
    assert tok.words is not None  # the word cache, against tokenizers on the whole texts
    assert tok.encode(texts) == [e.ids for e in tok.tokenizer.encode_batch(texts)]
    assert tok.encode_whole(texts) == [e.ids for e in tok.tokenizer.encode_batch(texts)]


def test_vocabulary_is_bert_base_uncased_and_hashed(tok):
    assert tok.tokenizer.get_vocab_size() == 30522
    assert tok.meta() == {"tokenizer": "bert-base-uncased", "vocab_sha256": tok.vocab_sha256}
    assert len(tok.vocab_sha256) == 64


def test_a_local_directory_with_a_vocab_is_loaded(tmp_path, tok):
    vocab = sorted(tok.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (tmp_path / "vocab.txt").write_text("\n".join(t for t, _ in vocab) + "\n")
    local = load_tokenizer(str(tmp_path), max_tokens=16, offline=True)
    assert local.encode(["Hello world"]) == [[101, 7592, 2088, 102]]
    assert local.vocab_sha256 == tok.vocab_sha256


def test_an_unknown_tokenizer_offline_fails_with_a_clear_error():
    with pytest.raises(TokenizerUnavailable, match="LAKE_TOKENIZER"):
        load_tokenizer("no-such-model", max_tokens=16, offline=True)


# words tweets hold, and characters a BERT pipeline treats specially: punctuation, whitespace
# other than a space, control and format characters, accents, CJK, emoji, added tokens
_ALPHABET = [*"aZ09 .,'!#$@-_~`^|\\[]", "[CLS]", "[sep]", "##", "don't", "Tesla's", "ﬁ"]
_ALPHABET += list("\t\n\x0b\x0c\x1c\x00\x7f\xa0\u2009\u3000\u200d\ufeffé\u0301ßİ日本🔥’“—")


_tokenizers = {n: load_tokenizer("bert-base-uncased", max_tokens=n, offline=True) for n in (4, 16, 512)}


@given(
    texts=st.lists(
        st.lists(st.sampled_from(_ALPHABET) | st.text(max_size=3), max_size=30).map("".join),
        min_size=1,
        max_size=8,
    ),
    max_tokens=st.sampled_from([4, 16, 512]),
)
@settings(max_examples=300, deadline=None)
def test_the_word_cache_gives_the_ids_tokenizers_gives_the_whole_text(texts, max_tokens):
    tok = _tokenizers[max_tokens]
    assert tok.words is not None
    assert tok.encode(texts) == [e.ids for e in tok.tokenizer.encode_batch(texts)]
    assert tok.encode(texts) == tok.encode_whole(texts)  # the second time from the cache


def test_a_full_word_cache_starts_again_and_gives_the_same_ids(tok):
    from lake.transform.tokenize import WordCache

    texts = ["the quick brown fox", "jumps over the lazy dog", "the fox again, quick!"] * 3
    small = WordCache(tok.tokenizer, limit=5)
    assert small.encode(texts) == [e.ids for e in tok.tokenizer.encode_batch(texts)]
    assert set(small.cache) == set(" ".join(texts).split(" "))  # emptied, then this batch's words


def test_no_word_cache_for_a_pipeline_it_does_not_know_or_that_fails_its_self_check(tok, monkeypatch, caplog):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from lake.transform.tokenize import LoadedTokenizer, WordCache

    other = Tokenizer(WordLevel({"hello": 0, "[UNK]": 1}, unk_token="[UNK]"))
    other.pre_tokenizer = Whitespace()
    assert WordCache.for_tokenizer(other) is None
    left = Tokenizer.from_str(tok.tokenizer.to_str())
    left.enable_truncation(max_length=8, direction="left")
    assert WordCache.for_tokenizer(left) is None
    # a WordPiece that went wrong is caught by the self-check: tokenizers alone encodes then
    monkeypatch.setattr(WordCache, "_pieces", lambda self, word: self.unk)
    assert WordCache.for_tokenizer(tok.tokenizer) is None
    assert "self-check" in caplog.text
    plain = LoadedTokenizer("x", "test", tok.vocab_sha256, tok.tokenizer, 16)
    assert plain.encode(["Hello world"]) == [[101, 7592, 2088, 102]]


def test_a_word_holding_an_added_token_raw_or_normalised_is_left_to_tokenizers(tok):
    from tokenizers import AddedToken, Tokenizer

    from lake.transform.tokenize import WordCache

    custom = Tokenizer.from_str(tok.tokenizer.to_str())
    custom.add_tokens([AddedToken("café", normalized=True), AddedToken("zq", normalized=False)])
    words = WordCache.for_tokenizer(custom)
    assert words is not None
    texts = ["cafe CAFÉ xcafex café", "zq xzqx ZQ", "le cafe, zq."]
    assert words.encode(texts) == [e.ids for e in custom.encode_batch(texts)]
