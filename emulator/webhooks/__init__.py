"""Webhooks: the tenant's subscriptions (`service`), the events batches emit (`events`), their
delivery on the emulator clock with ScaiGrid's retry schedule (`sender`, `policy`), what a
scenario does to deliveries (`chaos`), and the built-in receiver (`sink`)."""
