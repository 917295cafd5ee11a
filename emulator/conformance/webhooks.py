"""The writing checks of webhooks: one registered and deleted, and a test event delivered to the
local receiver, its signature and headers verified."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from emulator import errors
from emulator.conformance.probe import (
    Mismatch,
    Probe,
    error_of,
    expect_status,
    keys,
    need,
    ok_data,
    same_keys,
)
from emulator.conformance.receiver import Received, Receiver
from emulator.conformance.shapes import (
    EVENT_KEYS,
    TEST_ANSWER_KEYS,
    TEST_EVENT,
    WEBHOOK_KEYS,
    equal,
    instant,
    once,
    prefixed,
)

# --- writing checks: webhooks ---------------------------------------------------------------------


def _receiver(p: Probe) -> Receiver:
    return Receiver(p.options.receiver_port, p.options.receiver_url)


def _register(url: str, secret: str) -> dict[str, Any]:
    # an event no check makes happen: the hook hears nothing but what it is sent on purpose
    return {"url": url, "secret": secret, "events": ["webhook.auto_disabled"]}


async def webhook_objects(p: Probe) -> str:
    secret = "whsec_" + secrets.token_hex(16)
    with _receiver(p) as receiver:
        hook = ok_data(await p.post("/v1/webhooks", json=_register(receiver.url, secret)))
        hook_id = prefixed(hook, "id", "webhook", "data")
        try:
            same_keys(hook, WEBHOOK_KEYS, "the webhook object")
            equal("url", receiver.url, hook["url"])
            equal("events", ["webhook.auto_disabled"], hook["events"])
            equal("status", "active", hook["status"])
            need(hook, "max_retries", int, "the webhook")
            equal("GET /v1/webhooks/{id}", hook, ok_data(await p.get(f"/v1/webhooks/{hook_id}")))
        finally:
            deleted = await p.delete(f"/v1/webhooks/{hook_id}")
    expect_status(deleted, 200)
    error_of(await p.get(f"/v1/webhooks/{hook_id}"), errors.WebhookNotFound)
    return f"register, get, delete; object {keys(WEBHOOK_KEYS)}, never the secret"


@dataclass(frozen=True, slots=True)
class Delivery:
    secret: str
    answer: dict[str, Any]
    posts: list[Received]


async def delivered(p: Probe) -> Delivery:
    async def make(p: Probe) -> Delivery:
        secret = "whsec_" + secrets.token_hex(16)
        with _receiver(p) as receiver:
            hook = ok_data(await p.post("/v1/webhooks", json=_register(receiver.url, secret)))
            try:
                answer = ok_data(await p.post(f"/v1/webhooks/{hook['id']}/test"))
                # the documented ack deadline: a delivery that comes at all comes within it
                posts = await asyncio.to_thread(receiver.wait, 1, 10.0)
            finally:
                await p.delete(f"/v1/webhooks/{hook['id']}")
        return Delivery(secret, answer, posts)

    delivery: Delivery = await once(p, "delivery", "the test event", make)
    if not delivery.posts:
        raise Mismatch("the test event at the receiver", f"nothing within 10 s ({delivery.answer})")
    return delivery


async def test_events(p: Probe) -> str:
    d = await delivered(p)
    same_keys(d.answer, TEST_ANSWER_KEYS, "the test answer")
    prefixed(d.answer, "delivery_id", "delivery", "the test answer")
    equal("the test answer's status_code (the receiver answers 200)", 200, d.answer["status_code"])
    need(d.answer, "duration_ms", int, "the test answer")
    equal("the test answer's error", None, d.answer["error"])
    equal("posts at the receiver", 1, len(d.posts))
    equal("event_type", TEST_EVENT, body_of_post(d.posts[0]).get("event_type"))
    return f"test answer {keys(TEST_ANSWER_KEYS)}; one {TEST_EVENT} delivery"


async def webhook_headers(p: Probe) -> str:
    d = await delivered(p)
    post = d.posts[0]
    signed = "sha256=" + hmac.new(d.secret.encode(), post.body, hashlib.sha256).hexdigest()
    equal("X-ScaiGrid-Signature (sha256=HMAC of the raw body)", signed,
           post.headers.get("x-scaigrid-signature"))  # fmt: skip
    stamp = post.headers.get("x-scaigrid-timestamp", "")
    if not stamp.isdigit():
        raise Mismatch("X-ScaiGrid-Timestamp in Unix seconds", repr(stamp))
    event = body_of_post(post)
    equal("X-ScaiGrid-Event-Id", event.get("event_id"), post.headers.get("x-scaigrid-event-id"))
    equal("X-ScaiGrid-Event-Type", TEST_EVENT, post.headers.get("x-scaigrid-event-type"))
    equal("X-ScaiGrid-Delivery-Id", d.answer.get("delivery_id"),
           post.headers.get("x-scaigrid-delivery-id"))  # fmt: skip
    agent = post.headers.get("user-agent", "")
    if not agent.startswith("ScaiGrid-Webhook/"):
        raise Mismatch("User-Agent ScaiGrid-Webhook/...", repr(agent))
    return "signature verified; timestamp, event id and type, delivery id, user agent"


def body_of_post(post: Received) -> dict[str, Any]:
    try:
        event = orjson.loads(post.body)
    except orjson.JSONDecodeError:
        raise Mismatch("a JSON body", repr(post.body[:80])) from None
    if not isinstance(event, dict):
        raise Mismatch("a JSON object", repr(post.body[:80]))
    return event


async def delivered_body(p: Probe) -> str:
    event = body_of_post((await delivered(p)).posts[0])
    same_keys(event, EVENT_KEYS, "the delivered event")
    need(event, "payload", dict, "the event")
    instant(event, "timestamp", "the event")
    return f"the envelope itself: {keys(EVENT_KEYS)}"
