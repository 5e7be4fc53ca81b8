"""Built-in detectors, one module a detector. Importing this package loads no model."""
