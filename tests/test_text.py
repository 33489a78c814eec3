"""Text normalisation shared by preprocess and inference."""

from __future__ import annotations

import re
import sys
import unicodedata
from types import SimpleNamespace

import pytest

from sentinelle.text import canonical as canonical_module
from sentinelle.text.canonical import canonical
from sentinelle.text.normaliser import Normaliser


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Visit http://x.co/abc NOW", "visit _url_ now"),
        ("www.win.co.uk", "_url_"),
        ("mail me: Bob.Smith+x@example.co.uk", "mail me: _email_"),
        ("call 09061701461 or +44 7911 123456", "call _phone_ or _phone_"),
        ("win £1,000 cash or 150p/msg", "win _money_ cash or _money_ /msg"),
        ("txt WIN to 87121", "txt win to _num_"),
        ("ﬁnd ＦＲＥＥ", "find free"),  # NFKC: ligature and full-width letters
        ("fr\u200bee\u00ad prize", "free prize"),  # zero-width space and soft hyphen vanish
        ("frее рrizе", "free prize"),  # Cyrillic е, р look like Latin e, p
        ("  many\t\tspaces \n here ", "many spaces here"),
    ],
)
def test_canonical(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


# canonical's shortcuts (docs/performance.md, "The canonical form"), each with what it rests on.


def test_ascii_text_skips_the_unicode_folding_that_would_not_change_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ascii_text = "".join(map(chr, range(128)))
    # What the shortcut rests on: none of these steps changes ASCII text.
    assert unicodedata.normalize("NFKC", ascii_text) == ascii_text
    assert ascii_text.translate(canonical_module._INVISIBLE) == ascii_text
    assert ascii_text.translate(canonical_module._CONFUSABLES) == ascii_text
    assert ascii_text.casefold() == ascii_text.lower()
    # And the shortcut is taken: ASCII text never reaches unicodedata.
    broken = SimpleNamespace(normalize=None, category=None)  # calling either fails
    monkeypatch.setattr(canonical_module, "unicodedata", broken)
    assert canonical("WIN a FREE prize") == "win a free prize"
    with pytest.raises(TypeError):
        canonical("WIN a FRÉE prize")


def test_str_split_splits_on_exactly_what_the_regex_white_space_matches() -> None:
    # canonical collapses white space with " ".join(text.split()), as re.sub(r"\s+", " ",
    # text).strip() would: the same characters, checked here for the running Python.
    chars = [chr(i) for i in range(sys.maxunicode + 1)]
    assert [c for c in chars if c.isspace()] == [c for c in chars if re.fullmatch(r"\s", c)]
    text = " \u3000a\t\x1c\x85 b\u2028 "
    assert canonical(text, placeholders=False) == "a b" == re.sub(r"\s+", " ", text).strip()


def test_only_words_with_a_look_alike_reach_the_leet_reader() -> None:
    words = "free prize fr33 c@sh win150 4get l00k s0"
    # Without the lookahead, every word would be handed to _unleet (a Python call each).
    assert canonical_module._LEET_WORD_RE.findall(words) == ["fr33", "c@sh", "win150", "l00k", "s0"]
    assert canonical(words, placeholders=False) == "free prize free cash win150 4get look s0"


def test_canonical_without_placeholders_keeps_numbers() -> None:
    assert canonical("Call 09061701461 NOW", placeholders=False) == "call 09061701461 now"


def test_normaliser_tokenises_and_keeps_placeholders_whole() -> None:
    norm = Normaliser()
    assert norm("Don't miss: WIN £100!!! at www.x.com") == "don't miss : win _money_ !!! at _url_"


def test_stemming_and_stopwords_are_optional() -> None:
    text = "The winners are claiming their prizes"
    assert Normaliser()(text) == "the winners are claiming their prizes"
    assert Normaliser(stem=True)(text) == "the winner are claim their prize"
    assert Normaliser(stem=True, remove_stopwords=True)(text) == "winner claim prize"


def test_normalisation_is_idempotent_on_its_own_output() -> None:
    norm = Normaliser(stem=True)
    once = norm("URGENT! Call 09061701461 to claim your £900 prize: http://win.com")
    assert norm(once) == once


def test_nltk_loads_without_scipy_and_sklearn_which_still_import_afterwards() -> None:
    """A fresh interpreter: making a stemming Normaliser imports NLTK but neither SciPy nor
    scikit-learn (NLTK's __init__ would: docs/performance.md); both import normally
    afterwards, and modules imported before NLTK are untouched."""
    import subprocess
    import sys

    code = """
import sys
import scipy.sparse  # loaded before: NLTK may use it, while scipy.stats stays unloaded
from sentinelle.text.normaliser import Normaliser
assert Normaliser(stem=True)("Claiming prizes") == "claim prize"
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "pandas") \
or m == "scipy.stats")
assert not loaded, loaded
assert "nltk.parse.transitionparser" in sys.modules
import scipy.stats
import sklearn.feature_extraction.text
assert "_Unavailable" not in [type(f).__name__ for f in sys.meta_path]
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_each_distinct_token_is_stemmed_once() -> None:
    from sentinelle.text import normaliser

    normaliser._porter_stem.cache_clear()
    norm = Normaliser(stem=True)
    assert norm("claiming prizes, claiming prizes") == "claim prize , claim prize"
    assert norm("prizes") == "prize"
    info = normaliser._porter_stem.cache_info()
    assert (info.misses, info.hits, info.maxsize) == (3, 3, 1 << 18)


def test_tokens_are_nltks_regexp_tokenizer_tokens_on_the_bundled_corpus() -> None:
    """``re.findall`` with NLTK's flags gives exactly NLTK's ``RegexpTokenizer(TOKEN_PATTERN)``
    tokens."""
    from nltk.tokenize import RegexpTokenizer

    from sentinelle.data.sources import bundled_bytes
    from sentinelle.text import normaliser

    messages = [line.split("\t", 1)[-1] for line in bundled_bytes().decode("utf-8").splitlines()]
    assert len(messages) > 4800
    nltk_tokens = RegexpTokenizer(normaliser.TOKEN_PATTERN).tokenize
    for placeholders in (True, False):
        for message in messages:
            text = canonical(message, placeholders)
            assert normaliser._TOKENS(text) == nltk_tokens(text), text
