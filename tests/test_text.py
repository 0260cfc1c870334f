"""Text normalisation, tokens with offsets, paragraphs and site-chrome removal."""

from __future__ import annotations

from narratives.text import (
    content_paragraphs,
    is_generic_chrome,
    normalise,
    paragraph_key,
    read_paragraphs,
    split_paragraphs,
    tokenize,
    without_chrome,
    word_count,
)

ARTICLE = """\
Share on Facebook Share on X WhatsApp Copy link

The state transport corporation will add 1,200 electric buses to its fleet by March, the \
transport minister told the assembly on Thursday.

Click to start listening

The first 300 buses, built at a plant near Hosur, will run on airport and suburban routes \
from the second week of January, officials said.

Leave a Reply Cancel reply
"""

LONG_WITH_NEWSLETTER = (
    "The ministry said the figures, which it first published in its monthly newsletter for "
    "district officers, show that depot charging capacity has doubled since last year and "
    "that drivers trained on the new vehicles now outnumber those still assigned to diesel "
    "buses on the busiest routes in the capital."
)


def test_normalise_lowercases_zeroes_digits_and_drops_punctuation():
    assert normalise("The Minister SAID: 'No!'") == "the minister said no"
    assert normalise("Bus No. 42 left at 7.30") == "bus no 00 left at 0 00"
    assert normalise("fire-fighters; (rescue) teams...") == "fire fighters rescue teams"
    assert normalise("COVID19 cases") == "covid00 cases"


def test_thousands_separators_do_not_split_numbers():
    assert normalise("4,500") == normalise("4500") == "0000"
    assert normalise("at least 4,500 families") == normalise("at least 4500 families")
    # a different number of the same width normalises to the same text (digits -> 0)
    assert normalise("5,000 families") == normalise("4500 families")
    assert normalise("1,234,567 votes") == "0000000 votes"
    # a comma followed by a space is punctuation, not a separator
    assert normalise("In 2023, 450 people") == "in 0000 000 people"
    assert word_count("In 2023, 450 people and 4,500 more") == 7


def test_normalise_is_unicode_aware():
    assert normalise("Café CRÈME ﬁnal") == "café crème final"  # NFKC folds the ligature
    assert normalise("Minister’s meeting") == "minister s meeting"


def test_split_paragraphs_on_single_and_blank_lines():
    text = "  First line.\nSecond line.\n\n\n   \nThird line.  \n"
    assert split_paragraphs(text) == ["First line.", "Second line.", "Third line."]
    assert split_paragraphs("   \n\n ") == []


def test_tokenize_offsets_point_at_the_original_words():
    paragraphs = ["The ministry paid Rs 4,500 each.", "Opposition MPs walked out — again!"]
    tokens = tokenize(paragraphs)
    assert tokens.text == "\n\n".join(paragraphs)
    assert tokens.words == (
        "the",
        "ministry",
        "paid",
        "rs",
        "0000",
        "each",
        "opposition",
        "mps",
        "walked",
        "out",
        "again",
    )
    for number, word in enumerate(tokens.words):
        start, end = tokens.word_span(number)
        assert normalise(tokens.text[start:end]) == word
    start, end = tokens.word_span(4)
    assert tokens.text[start:end] == "4,500"
    # a snippet is the original text, punctuation and case included
    assert tokens.snippet(2, 5) == "paid Rs 4,500 each"
    assert tokens.snippet(5, 7) == "each.\n\nOpposition MPs"
    assert tokens.snippet(8, 10) == "walked out — again"
    # out-of-range word numbers are clamped
    assert tokens.snippet(9, 99) == "out — again"
    assert tokens.snippet(-3, 0) == "The"


def test_paragraph_starts_are_word_indices():
    tokens = tokenize(["One two three.", "Four five.", "Six"])
    assert tokens.paragraph_starts == (0, 3, 5)
    assert tokens.paragraph_offsets == (0, 16, 28)
    assert tokens.text[tokens.word_span(5)[0] :] == "Six"
    assert tokenize([]).words == ()
    assert tokenize([]).snippet(0, 3) == ""


def test_content_paragraphs_drops_generic_chrome():
    kept = content_paragraphs(ARTICLE)
    assert len(kept) == 2
    assert kept[0].startswith("The state transport corporation")
    assert kept[1].startswith("The first 300 buses")
    for line in (
        "Share on Facebook Share on X WhatsApp Copy link",
        "Leave a Reply Cancel reply",
        "Click to start listening",
        "Your email address will not be published. Required fields are marked *",
        "Subscribe to our newsletter",
    ):
        assert is_generic_chrome(line), line


def test_long_paragraph_mentioning_newsletter_is_kept():
    assert word_count(LONG_WITH_NEWSLETTER) > 30
    assert not is_generic_chrome(LONG_WITH_NEWSLETTER)
    assert content_paragraphs(ARTICLE + "\n" + LONG_WITH_NEWSLETTER)[-1] == LONG_WITH_NEWSLETTER
    assert is_generic_chrome("Sign up for our daily newsletter.")


def test_learned_chrome_is_dropped_only_from_short_paragraphs():
    house = "The Deccan Ledger is published every morning from Hubballi."
    long_paragraph = " ".join([house] * 8)  # > 60 words, same words
    text = "\n\n".join(["The council met on Monday.", house, long_paragraph])
    keys = {paragraph_key(house), paragraph_key(long_paragraph)}
    kept = content_paragraphs(text, chrome_keys=keys, max_chrome_words=60)
    assert kept == ["The council met on Monday.", long_paragraph]
    # without learned keys the house line stays: it is not generic chrome
    assert house in content_paragraphs(text)
    # the key ignores case, punctuation and digits
    assert paragraph_key("Call 1800-200 today!") == paragraph_key("call 1900 300 TODAY")
    assert paragraph_key("Call today") != paragraph_key("Call tomorrow")
    assert 0 <= paragraph_key(house) < 2**63


def test_word_span_skips_paragraphs_without_words():
    tokens = tokenize(["One two.", "— —", "Three four."])
    assert tokens.paragraph_starts == (0, 2, 2)
    assert tokens.snippet(1, 2) == "two.\n\n— —\n\nThree"
    assert tokens.snippet(3, 3) == "four"


def test_read_paragraphs_reads_each_paragraph_once_with_the_same_keys_and_words():
    text = "Share this article\n\nThe ministry paid Rs 4,500 each.\n\n" + "word " * 70
    paragraphs = read_paragraphs(text, max_chrome_words=60)
    assert [p.text for p in paragraphs] == split_paragraphs(text)
    expected = [tuple(normalise(t).split()) for t in split_paragraphs(text)]
    assert [p.words for p in paragraphs] == expected
    assert paragraphs[0].key == paragraph_key("Share this article") and paragraphs[0].generic_chrome
    assert paragraphs[1].key == paragraph_key(paragraphs[1].text)
    assert paragraphs[2].key is None  # 70 words: too long to be chrome
    kept = without_chrome(paragraphs, {paragraphs[1].key})
    assert [p.text for p in kept] == [paragraphs[2].text]
    assert tokenize(kept).words == tokenize([paragraphs[2].text]).words
