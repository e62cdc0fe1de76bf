"""CDK constructs of the platform, one per concern, composed by infra.stacks.rag_stack.RagPlatformStack."""
