from ragcore.generation import (
    NO_ANSWER,
    ExtractiveGenerator,
    TextDelta,
    UsageReport,
    split_sentences,
    word_groups,
)
from ragcore.retrieval import Source

from tests.fakes import BagOfWordsEmbedder


def source(content, name="doc"):
    return Source(document_id="d-" + name, document_name=name, chunk_index=0, content=content, score=0.5)


def run(question, sources):
    events = list(ExtractiveGenerator(BagOfWordsEmbedder()).stream(question, sources))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    usage = [e.usage for e in events if isinstance(e, UsageReport)]
    return text, events, usage


def test_answer_is_the_best_matching_sentence_with_its_citation():
    sources = [
        source("The cafeteria opens at noon. Parking is free on weekends.", "facilities"),
        source("Employees accrue twenty vacation days per year. Unused vacation days expire in March.", "hr"),
    ]
    text, _, _ = run("How many vacation days do employees accrue?", sources)
    assert text.startswith("Employees accrue twenty vacation days per year. [2]")
    assert "[1]" not in text.split("[2]")[0]


def test_answer_streams_in_several_pieces_and_ends_with_usage():
    sources = [source("Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda.")]
    text, events, usage = run("alpha beta gamma", sources)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 2
    assert isinstance(events[-1], UsageReport)
    assert usage[0]["provider"] == "extractive" and usage[0]["output_tokens"] > 0


def test_repeated_sentences_from_overlapping_chunks_appear_once():
    sentence = "The warranty covers parts and labour for two years."
    text, _, _ = run(
        "What does the warranty cover?", [source(sentence), source(sentence + " Shipping is extra.")]
    )
    assert text.count("warranty covers") == 1


def test_no_sources_gives_the_no_answer_message():
    text, _, _ = run("anything?", [])
    assert text == NO_ANSWER


def test_sentence_splitting_and_word_groups():
    assert split_sentences("One two. Three four!\n\nFive six") == ["One two.", "Three four!", "Five six"]
    assert "".join(word_groups("a b c d e f g", 3)) == "a b c d e f g"


def test_only_the_most_promising_sentences_are_embedded():
    class CountingEmbedder(BagOfWordsEmbedder):
        def embed(self, texts):
            self.sizes = [*getattr(self, "sizes", []), len(texts)]
            return super().embed(texts)

    filler = " ".join(f"Sentence number {i} is about topic {i}." for i in range(60))
    embedder = CountingEmbedder()
    generator = ExtractiveGenerator(embedder, max_candidates=16)
    chosen = generator.select(
        "Which topic has the refund policy?", [source(filler + " The refund policy lasts 30 days.")]
    )
    assert embedder.sizes == [17]  # the question and 16 candidates
    assert chosen[0][0] == "The refund policy lasts 30 days."


def test_weakly_related_sentences_are_left_out():
    sources = [
        source("The refund policy lasts thirty days for every order. Our office cat is called Biscuit.")
    ]
    text, _, _ = run("How long does the refund policy last?", sources)
    assert "refund policy" in text
    assert "Biscuit" not in text
