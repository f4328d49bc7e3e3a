"""quantfleet: a Kopf operator that calibrates quantized checkpoints and rolls out GPU-aware vLLM fleets."""

__version__ = "0.1.0"
