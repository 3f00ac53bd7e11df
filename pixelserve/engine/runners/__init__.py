"""What runs jobs: the in-process engine (queue, workers, batching, model cache), the supervised
worker process, and Ray Serve."""
