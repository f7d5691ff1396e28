"""The ceiling for bench/ingest.py: a bare FastAPI endpoint that only answers 202."""

from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/errors", status_code=202)
async def errors() -> JSONResponse:
    return JSONResponse({"status": "accepted", "event_id": "ev_0", "pattern_id": "pat_0"}, status_code=202)
