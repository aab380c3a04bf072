"""Long texts tokenized from their first words: a tokenizer that truncates at max_length tokens
still normalizes and splits the whole text first, so a 3,000-word e-mail costs 20 times what
its first 128 tokens do.

A text longer than max_length x CHARS_PER_TOKEN characters is cut at a space first. That
gives the same token ids as the whole text when the tokenizer splits every text at its spaces
before its model sees it (BERT's WordPiece, byte-level BPE, SentencePiece's Metaspace) and its
normalizer changes characters where they stand: the words before the cut are tokenized as in
the whole text. The cut text must still fill max_length tokens; one that does not (a long run
of spaces, a very long word) is tokenized whole again. Any other tokenizer (one that keeps the
end of a text, or whose splits this cannot read) tokenizes whole texts.
"""

from __future__ import annotations

# English runs 4 to 5 characters per token; 16 leaves room for long words and markup, and cuts
# only texts a few times longer than what the model reads.
CHARS_PER_TOKEN = 16
SPACE = " "
# The pre-tokenizers that split a text at every space (ByteLevel with its regex, Metaspace when
# it splits: checked below); pre-tokenizers only ever split further what came before them.
_SPLIT_AT_SPACES = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
# Normalizers that map characters in place (or collapse and strip spaces).
_LOCAL_NORMALIZERS = {
    *("BertNormalizer", "Lowercase", "StripAccents", "Strip", "Prepend", "Replace"),
    *("NFC", "NFD", "NFKC", "NFKD", "Nmt", "Precompiled"),
}


def cuts_exactly(tokenizer) -> bool:
    """Whether cutting a long text at a space leaves its first max_length token ids as they are."""
    if not getattr(tokenizer, "is_fast", False) or tokenizer.truncation_side != "right":
        return False
    backend = tokenizer.backend_tokenizer
    normalizer = backend.normalizer
    return _splits_at_spaces(backend.pre_tokenizer) and (
        normalizer is None or all(_kind(n) in _LOCAL_NORMALIZERS for n in _members(normalizer))
    )


def encode(tokenizer, texts: list[str], options: dict, cut: bool) -> dict[str, list]:
    """`tokenizer(texts, **options)` (truncating at options["max_length"]); with `cut`
    (cuts_exactly), each text over the limit tokenized from its first words."""
    if not cut:
        return tokenizer(texts, **options)
    max_length = options["max_length"]
    prefixes = [_prefix(text, max_length * CHARS_PER_TOKEN) for text in texts]
    encoded = tokenizer([p or t for p, t in zip(prefixes, texts, strict=True)], **options)
    short = [
        i
        for i, prefix in enumerate(prefixes)
        if prefix is not None and len(encoded["input_ids"][i]) < max_length
    ]
    if short:
        whole = tokenizer([texts[i] for i in short], **options)
        for key, values in whole.items():
            for i, value in zip(short, values, strict=True):
                encoded[key][i] = value
    return encoded


def shortened(tokenizer, texts: list[str], max_length: int) -> list[str]:
    """The texts for something that tokenizes them itself (a pipeline truncating at
    max_length): each long one replaced by its first words where those fill max_length tokens,
    which then are the whole text's."""
    if not cuts_exactly(tokenizer):
        return list(texts)
    limit = max_length * CHARS_PER_TOKEN
    prefixes = {i: p for i, text in enumerate(texts) if (p := _prefix(text, limit)) is not None}
    if not prefixes:
        return list(texts)
    options = {"truncation": True, "max_length": max_length, "return_attention_mask": False}
    lengths = tokenizer(list(prefixes.values()), return_length=True, **options)["length"]
    filled = {i for i, length in zip(prefixes, lengths, strict=True) if length >= max_length}
    return [prefixes[i] if i in filled else text for i, text in enumerate(texts)]


def _prefix(text: str, limit: int) -> str | None:
    """The text up to its last space before `limit` that follows anything but whitespace (a
    newline before a space is a word's end for BERT, not for Metaspace), or None: the text is
    short enough, or has no such space."""
    if len(text) <= limit:
        return None
    end = text.rfind(SPACE, 0, limit)
    while end > 0 and text[end - 1].isspace():
        end = text.rfind(SPACE, 0, end)
    return text[:end] if end > 0 else None


def _splits_at_spaces(pre_tokenizer) -> bool:
    kind = _kind(pre_tokenizer)
    if kind == "Sequence":
        return any(_splits_at_spaces(member) for member in _members(pre_tokenizer))
    if kind == "ByteLevel":
        return pre_tokenizer.use_regex
    if kind == "Metaspace":
        return pre_tokenizer.split
    return kind in _SPLIT_AT_SPACES


def _members(component) -> list:
    """A tokenizers Sequence's members (it can be indexed, not iterated), or the component."""
    if _kind(component) != "Sequence":
        return [component]
    members = []
    while True:
        try:
            members.append(component[len(members)])
        except IndexError:
            return members


def _kind(component) -> str:
    return type(component).__name__
