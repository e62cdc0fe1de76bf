import pytest
from ragcore.config import Settings
from ragcore.ingest import Outcome, ingest_document

from tests.fakes import BagOfWordsEmbedder, InMemoryDocumentStore

SETTINGS = Settings(chunk_size_words=50, chunk_overlap_words=10, embed_batch_size=4, ingest_max_attempts=3)
TEXT = " ".join(f"word{i}" for i in range(230))


def no_sleep(_seconds):
    pass


@pytest.fixture(autouse=True)
def _instant_backoff(monkeypatch):
    monkeypatch.setattr("time.sleep", no_sleep)


def test_document_becomes_ready_with_all_chunks():
    store, embedder = InMemoryDocumentStore(), BagOfWordsEmbedder()
    org, doc = store.add(TEXT)
    assert ingest_document(org, doc, store=store, embedder=embedder, settings=SETTINGS) is Outcome.READY
    assert store.docs[doc]["status"] == "ready"
    chunks = store.chunks[doc]
    assert [c.index for c, _ in chunks] == list(range(len(chunks)))
    assert chunks[-1][0].content.endswith("word229")
    assert embedder.calls == -(-len(chunks) // 4)  # batches of at most embed_batch_size


def test_redelivery_of_an_ingested_document_does_nothing():
    store, embedder = InMemoryDocumentStore(), BagOfWordsEmbedder()
    org, doc = store.add(TEXT)
    ingest_document(org, doc, store=store, embedder=embedder, settings=SETTINGS)
    calls = embedder.calls
    assert ingest_document(org, doc, store=store, embedder=embedder, settings=SETTINGS) is Outcome.SKIPPED
    assert embedder.calls == calls


def test_deleted_document_is_skipped():
    store = InMemoryDocumentStore()
    org, doc = store.add(TEXT)
    del store.docs[doc]
    assert (
        ingest_document(org, doc, store=store, embedder=BagOfWordsEmbedder(), settings=SETTINGS)
        is Outcome.SKIPPED
    )


def test_empty_document_fails_with_a_reason():
    store = InMemoryDocumentStore()
    org, doc = store.add("   \n ")
    assert (
        ingest_document(org, doc, store=store, embedder=BagOfWordsEmbedder(), settings=SETTINGS)
        is Outcome.FAILED
    )
    assert store.docs[doc]["status"] == "failed"
    assert "no text" in store.docs[doc]["error"]


def test_transient_error_propagates_until_the_last_attempt_then_fails():
    store = InMemoryDocumentStore()
    org, doc = store.add(TEXT)
    embedder = BagOfWordsEmbedder(fail_times=100, error=ConnectionError("database went away"))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            ingest_document(org, doc, store=store, embedder=embedder, settings=SETTINGS)
        assert store.docs[doc]["status"] == "processing"
    assert ingest_document(org, doc, store=store, embedder=embedder, settings=SETTINGS) is Outcome.FAILED
    assert store.docs[doc]["status"] == "failed"
    assert "database went away" in store.docs[doc]["error"]


def test_a_document_left_processing_by_crashes_is_failed_on_the_next_delivery():
    store = InMemoryDocumentStore()
    org, doc = store.add(TEXT)
    for _ in range(3):  # three deliveries that died without reporting (timeout, out of memory)
        store.claim(org, doc)
    assert (
        ingest_document(org, doc, store=store, embedder=BagOfWordsEmbedder(), settings=SETTINGS)
        is Outcome.FAILED
    )
    assert "gave up after 3 attempts" in store.docs[doc]["error"]


def test_content_changed_while_embedding_is_not_saved():
    store = InMemoryDocumentStore()
    org, doc = store.add(TEXT)

    class ChangingEmbedder(BagOfWordsEmbedder):
        def embed(self, texts):
            store.docs[doc]["hash"] = "changed"
            return super().embed(texts)

    assert (
        ingest_document(org, doc, store=store, embedder=ChangingEmbedder(), settings=SETTINGS)
        is Outcome.SKIPPED
    )
    assert doc not in store.chunks


def test_too_many_chunks_fail_before_anything_is_embedded():
    store, embedder = InMemoryDocumentStore(), BagOfWordsEmbedder()
    org, doc = store.add(TEXT)  # 230 words in windows of 50 with 10 overlap: 6 chunks
    settings = SETTINGS.model_copy(update={"max_chunks_per_document": 5})
    assert ingest_document(org, doc, store=store, embedder=embedder, settings=settings) is Outcome.FAILED
    assert store.docs[doc]["error"] == "the document makes 6 chunks, more than 5 (the limit)"
    assert embedder.calls == 0


def test_an_extraction_failure_marks_the_document_failed_with_its_reason(monkeypatch):
    from ragcore.errors import ExtractionFailed

    def refuse(*_args, **_kwargs):
        raise ExtractionFailed("the PDF is encrypted (it needs a password to open)")

    monkeypatch.setattr("ragcore.ingest.chunk_document", refuse)
    store = InMemoryDocumentStore()
    org, doc = store.add(TEXT)
    outcome = ingest_document(org, doc, store=store, embedder=BagOfWordsEmbedder(), settings=SETTINGS)
    assert outcome is Outcome.FAILED
    assert store.docs[doc]["error"] == "the PDF is encrypted (it needs a password to open)"


def test_a_document_over_the_chunk_quota_fails_before_anything_is_embedded():
    store, embedder = InMemoryDocumentStore(max_chunks=2), BagOfWordsEmbedder()
    org, doc = store.add(TEXT)  # 230 words in windows of 50: more than 2 chunks
    assert ingest_document(org, doc, store=store, embedder=embedder, settings=SETTINGS) is Outcome.FAILED
    assert embedder.calls == 0
    assert store.docs[doc]["status"] == "failed"
    assert store.docs[doc]["error"].startswith("chunk_quota_exceeded")
    assert doc not in store.chunks
