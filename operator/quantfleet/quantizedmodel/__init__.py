"""QuantizedModel: calibrate a base model into a quantized checkpoint (plan, decide, status are pure)."""
