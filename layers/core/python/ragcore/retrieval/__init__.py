"""Finding the chunks of a tenant that best match a question.

One module per retriever (``dense``, ``lexical``), ``hybrid`` fuses them, and ``types`` holds what
they all return and the filters they all apply.
"""

from .dense import dense_search
from .hybrid import fuse, hybrid_search
from .lexical import lexical_search
from .types import Source

__all__ = ["Source", "dense_search", "fuse", "hybrid_search", "lexical_search"]
