"""bert-base-uncased WordPiece ids: [CLS] … [SEP], lower-cased, unpadded, truncated at the maximum."""

import pytest

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
    assert tok.encode(texts) == [e.ids for e in tok.tokenizer.encode_batch(texts)]


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
