"""The admin's search box: one UUID and a few whole filename words, whatever else is typed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pending_uploads.managers.admin import filename_words

# The search's bound: one UUID (an exact lookup) and at most this many filename words, each at
# most a filename's length (a longer word can match nothing). Whatever else the box holds is
# ignored, so 500 terms cost what one does.
MAX_SEARCH_WORDS = 3
MAX_WORD_CHARS = 100


@dataclass
class SearchTerms:
    key: uuid.UUID | None = None
    words: list[str] = field(default_factory=list)
    ignored: int = 0
    impossible: bool = False

    @property
    def empty(self) -> bool:
        return self.key is None and not self.words


def parse_search(text: str) -> SearchTerms:
    """The first UUID and the first MAX_SEARCH_WORDS filename words of ``text``."""
    terms = SearchTerms()
    for token in text.split():
        try:
            key = uuid.UUID(token)
        except ValueError:
            key = None
        if key is not None:
            if terms.key is None:
                terms.key = key
            else:
                terms.ignored += 1
            continue
        for word in filename_words(token):
            if len(terms.words) >= MAX_SEARCH_WORDS:
                terms.ignored += 1
            elif len(word) > MAX_WORD_CHARS:
                terms.impossible = True
            elif word not in terms.words:
                terms.words.append(word)
    return terms
