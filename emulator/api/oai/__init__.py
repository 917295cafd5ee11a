"""The OpenAI-compatible surface (`/oai/v1`): the same service, in OpenAI's wire format."""
