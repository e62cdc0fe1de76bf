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
