"""The benchmarks that need a CUDA GPU: `python -m benchmarks.gpu` (the packed search against one
trial at a time and the peer, at most 8 minutes) and `python -m benchmarks.gpu.levers`."""
