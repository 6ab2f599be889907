"""Training: samples and batches, chunked CE, the loop with early stopping, checkpoints, device placement."""
