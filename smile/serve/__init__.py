"""``smile serve``: FastAPI routes over a :class:`smile.api.Predictor` (:mod:`.app`), micro-batching of
the faces of concurrent requests (:mod:`.batching`), and the web page (``static/``)."""
