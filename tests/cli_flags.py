"""The CLI flags that make a fit take seconds: CPU, a few batches, no progress bar."""

FAST = [
    "--seed_everything", "7",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.limit_train_batches", "3",
    "--trainer.limit_val_batches", "1",
    "--data.num_workers", "0",
    "--data.batch_size", "16",
]  # fmt: skip
