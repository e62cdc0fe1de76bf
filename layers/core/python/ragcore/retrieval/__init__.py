"""Finding the chunks of a tenant that best match a question.

One module per retriever; ``types`` holds what they all return.
"""

from .dense import dense_search
from .types import Source

__all__ = ["Source", "dense_search"]
