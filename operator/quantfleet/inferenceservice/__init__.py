"""InferenceService: per-pool precision decisions rolled out as vLLM Deployments (decide and status are pure)."""
