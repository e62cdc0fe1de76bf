"""ragcore: the shared library of the multi-tenant RAG platform (shipped as a Lambda layer)."""
