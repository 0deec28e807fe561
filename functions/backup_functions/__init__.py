"""The pipeline's Lambda functions: thin handlers over plain-Python domain logic."""
