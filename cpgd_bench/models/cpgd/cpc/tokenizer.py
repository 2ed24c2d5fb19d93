"""The SD 2.x prompt tokenizer (OpenCLIP's CLIP BPE, 77 tokens, padded with id 0 = "!").

From a diffusers SD 2.1 folder we load its ``tokenizer/``. A single-file checkpoint carries no
tokenizer, so we build the same one from the CLIP BPE merges shipped with the ``openai-clip`` package
(``clip/bpe_simple_vocab_16e6.txt.gz``, a dependency of pyiqa) -- found on disk, never imported (its
``__init__`` needs ``pkg_resources``) and never downloaded.
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

from cpgd_bench.models.registry import ModelError

CONTEXT = 77
_MERGES = 49152 - 256 - 2  # OpenCLIP/openai SimpleTokenizer: merges used from the BPE file


class TokenizerError(ModelError):
    """No tokenizer could be found; the message says where to get one."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars), strict=True))


def clip_bpe_file() -> Path:
    """``bpe_simple_vocab_16e6.txt.gz`` of the installed openai-clip package."""
    spec = importlib.util.find_spec("clip")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise TokenizerError(
        "no CLIP BPE vocabulary: install openai-clip (pip install openai-clip) or pass a diffusers SD 2.1 folder "
        "with tokenizer/"
    )


@lru_cache(maxsize=4)
def load_tokenizer(folder: Path | None = None) -> CLIPTokenizer:
    """``folder/tokenizer`` of a diffusers SD folder, else the CLIP BPE tokenizer with SD 2.x padding."""
    if folder is not None and (Path(folder) / "tokenizer").is_dir():
        return CLIPTokenizer.from_pretrained(Path(folder) / "tokenizer", local_files_only=True)
    with gzip.open(clip_bpe_file(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[1 : _MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges, pad_token="!")


def tokenize(prompts: list[str], folder: Path | None = None):  # -> torch.Tensor
    """Token ids (N, 77) for ``prompts`` (truncated, padded)."""
    tok = load_tokenizer(folder)
    return tok(prompts, padding="max_length", max_length=CONTEXT, truncation=True, return_tensors="pt").input_ids
