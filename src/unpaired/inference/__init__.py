"""Inference: building a generator from saved weights, the :class:`~unpaired.inference.translator.Translator`,
folder translation, export writing and reading, scoring a run, and the web page. Never imports training."""
