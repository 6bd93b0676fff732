"""`pixclass serve`: an exported model behind HTTP (FastAPI + uvicorn), with an upload page.

Owns the inference server: `settings` (limits and their reasons), `uploads` (streaming multipart
reading under those limits), `batcher` (micro-batching of concurrent requests), `metrics`
(Prometheus), `app` (`create_app(predictor, settings)`, the routes) and `static/` (the page).
Importing this package imports nothing heavy; `pixclass.server.app` imports FastAPI.
"""
