"""A real model behind the emulator: live calls and batch lines answered by an OpenAI-compatible
server (`client`), under the model names it knows (`models`), translated into the emulator's
shapes (`answers`), recorded and replayed from files (`tape`), put together by `service`.

The batch lifecycle, limits, scenarios, clock, ids, pricing and webhooks stay the emulator's: only
the content (and the usage, when the upstream reports it) comes from the upstream.
"""
