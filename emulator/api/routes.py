"""The route table: every endpoint the emulator serves, in one list."""

from __future__ import annotations

from starlette.routing import Route

from emulator.api import batches, control, files, inference, models

ROUTES: list[Route] = [
    # live inference first: the router tries routes in order, and these are the hot path
    Route("/v1/inference/chat", inference.chat, methods=["POST"]),
    Route("/v1/inference/generate", inference.generate, methods=["POST"]),
    Route("/v1/inference/embed", inference.embed, methods=["POST"]),
    Route("/v1/inference/images/generate", inference.images_generate, methods=["POST"]),
    Route("/v1/inference/images/{digest:str}.png", inference.image_content, methods=["GET"]),
    # models
    Route("/v1/models", models.list_models, methods=["GET"]),
    Route("/v1/models/{slug:path}", models.get_model, methods=["GET"]),
    # batches
    Route("/v1/inference/batch", batches.create_batch, methods=["POST"]),
    Route("/v1/inference/batch", batches.list_batches, methods=["GET"]),
    Route("/v1/inference/batch/{batch_id}", batches.get_batch, methods=["GET"]),
    Route("/v1/inference/batch/{batch_id}/cancel", batches.cancel_batch, methods=["POST"]),
    Route("/v1/inference/batch/{batch_id}/results", batches.get_results, methods=["GET"]),
    # files
    Route("/v1/files", files.create_file, methods=["POST"]),
    Route("/v1/files", files.list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", files.get_file, methods=["GET"]),
    Route("/v1/files/{file_id}", files.delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", files.get_file_content, methods=["GET"]),
    # control plane
    Route("/_emulator/health", control.health, methods=["GET"]),
    Route("/_emulator/reset", control.reset, methods=["POST"]),
    Route("/_emulator/clock", control.get_clock, methods=["GET"]),
    Route("/_emulator/clock", control.set_clock, methods=["PUT"]),
    Route("/_emulator/clock/advance", control.advance_clock, methods=["POST"]),
    Route("/_emulator/seed", control.get_seed, methods=["GET"]),
    Route("/_emulator/seed", control.set_seed, methods=["PUT"]),
    Route("/_emulator/scenarios", control.list_scenarios, methods=["GET"]),
    Route("/_emulator/scenario", control.get_scenario, methods=["GET"]),
    Route("/_emulator/scenario", control.set_scenario, methods=["PUT"]),
    Route("/_emulator/tenants/{tenant_id}/scenario", control.get_tenant_scenario, methods=["GET"]),
    Route("/_emulator/tenants/{tenant_id}/scenario", control.set_tenant_scenario, methods=["PUT"]),
    Route(
        "/_emulator/tenants/{tenant_id}/scenario",
        control.delete_tenant_scenario,
        methods=["DELETE"],
    ),
    Route("/_emulator/journal", control.journal, methods=["GET"]),
    Route("/_emulator/state", control.state, methods=["GET"]),
    Route("/openapi.json", control.openapi, methods=["GET"]),
]
