"""The REST API of the reviews app, a module per resource: outputs, tasks, webhooks, judges."""
