from ragcore.chunking import MAX_WORD_CHARS, chunk_text


def words(n, prefix="w"):
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_short_text_is_one_chunk_with_original_text():
    text = "First line.\n\nSecond   paragraph here."
    chunks = chunk_text(text)
    assert len(chunks) == 1
    assert chunks[0].content == text.strip()
    assert chunks[0].index == 0


def test_default_window_is_512_words_with_64_overlap():
    text = words(1200)
    chunks = chunk_text(text, size_words=512, overlap_words=64)
    tokens = [c.content.split() for c in chunks]
    assert [len(t) for t in tokens[:-1]] == [512] * (len(tokens) - 1)
    assert tokens[1][:64] == tokens[0][-64:]
    assert tokens[-1][-1] == "w1199"
    covered = set().union(*map(set, tokens))
    assert covered == set(text.split())


def test_window_shrinks_to_what_the_embedder_reads():
    # Every word costs 3 word pieces; the embedder reads 254: at most 84 words fit.
    text = words(1000)
    chunks = chunk_text(
        text, size_words=512, overlap_words=64, max_tokens=254, count_word_pieces=lambda ws: [3] * len(ws)
    )
    assert all(c.token_count <= 254 for c in chunks)
    assert max(len(c.content.split()) for c in chunks) == 84
    first, second = chunks[0].content.split(), chunks[1].content.split()
    overlap = 64 * 84 // 512
    assert second[:overlap] == first[-overlap:]
    assert chunks[-1].content.split()[-1] == "w999"


def test_uneven_word_costs_never_exceed_budget():
    text = " ".join(("antidisestablishmentarianism" if i % 7 == 0 else "cat") for i in range(2000))
    cost = {"cat": 1, "antidisestablishmentarianism": 9}
    chunks = chunk_text(text, max_tokens=100, count_word_pieces=lambda ws: [cost[w] for w in ws])
    assert all(c.token_count <= 100 for c in chunks)
    assert sum(len(c.content.split()) for c in chunks) >= 2000


def test_overly_long_runs_of_characters_are_cut():
    blob = "x" * (MAX_WORD_CHARS * 3 + 5)
    chunks = chunk_text(f"start {blob} end", max_tokens=80, count_word_pieces=lambda ws: [len(w) for w in ws])
    assert all(c.token_count <= 80 for c in chunks)
    assert "".join(chunks[0].content.split()).startswith("start")


def test_empty_text_has_no_chunks():
    assert chunk_text("   \n\t ") == []


def test_overlap_must_be_smaller_than_window():
    import pytest

    with pytest.raises(ValueError):
        chunk_text("a b c", size_words=10, overlap_words=10)


# ---- structure-aware chunking -------------------------------------------------------------------------

from ragcore.chunking import chunk_sections  # noqa: E402
from ragcore.extractors import Section  # noqa: E402


def test_plain_text_chunks_are_exactly_those_of_chunk_text():
    text = "\n\n".join(words(300, prefix=f"p{n}w") for n in range(5))
    costs = {"max_tokens": 254, "count_word_pieces": lambda ws: [1 + len(w) // 4 for w in ws]}
    assert chunk_sections([Section(text)], size_words=200, overlap_words=30, **costs) == chunk_text(
        text, size_words=200, overlap_words=30, **costs
    )
    assert chunk_sections([Section("")]) == []


def test_chunks_stay_inside_their_section_and_carry_its_location():
    sections = [
        Section(words(30, "a"), page=1),
        Section(words(250, "b"), page=2, headings=("Guide", "Install")),
        Section(words(10, "c"), page=4, headings=("Guide",)),
    ]
    chunks = chunk_sections(sections, size_words=100, overlap_words=20)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    by_page = {}
    for chunk in chunks:
        assert chunk.page_start == chunk.page_end
        by_page.setdefault(chunk.page_start, []).append(chunk)
        prefixes = {w[0] for w in chunk.content.split()}
        assert len(prefixes) == 1  # never two sections in one chunk
    assert [len(by_page[p]) for p in (1, 2, 4)] == [1, 3, 1]
    assert by_page[1][0].content == words(30, "a") and by_page[1][0].headings == ()
    assert all(c.headings == ("Guide", "Install") for c in by_page[2])
    assert by_page[2][1].content.split()[:20] == by_page[2][0].content.split()[-20:]  # overlap inside
    assert by_page[4][0].headings == ("Guide",) and by_page[4][0].content == words(10, "c")


def test_sections_without_pages_have_no_page():
    chunks = chunk_sections([Section("one two", headings=("H",)), Section("three")])
    assert [(c.page_start, c.page_end, c.headings, c.content) for c in chunks] == [
        (None, None, ("H",), "one two"),
        (None, None, (), "three"),
    ]
