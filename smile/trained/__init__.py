"""A trained model, one concept in one package, without Lightning: what it is
(:mod:`~smile.trained.description`), where it comes from (:mod:`~smile.trained.sources`), how it is
stored (:mod:`~smile.trained.checkpoints`, :mod:`~smile.trained.shipped`,
:mod:`~smile.trained.exported`), the one model that predicts from any of these
(:mod:`~smile.trained.inference`), and what is made from it (:mod:`~smile.trained.export`,
:mod:`~smile.trained.ensemble`)."""
