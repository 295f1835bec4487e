"""The Studio as a service: REST API (`api`), job store (`store`), job runners (`runner`).

Needs the `server` extra (FastAPI, uvicorn, python-multipart): `pip install -e ".[server]"`.
Nothing is imported here so that `store` and `runner` stay usable without the web stack.
"""
