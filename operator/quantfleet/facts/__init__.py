"""Watch caches (informers, indexed stores) and the work queue: how the operator knows the cluster without polling."""
