"""Training machinery around the LightningModule: checkpoints (finding, loading, the settings they
hold), callbacks (the last checkpoint, the run's config, prediction CSVs) and interrupt/resume."""
