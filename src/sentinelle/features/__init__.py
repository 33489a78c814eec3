"""The fast engine's text features: n-gram counting and TF-IDF."""

__all__ = ["countfile", "counting", "ngrams", "tfidf", "vectorizer"]
