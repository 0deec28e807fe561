"""CDK stacks and constructs: one construct per capability, composed by ``PipelineStack``."""
