"""The controller manager: watch caches, work queue, workers, leader election, metrics."""
