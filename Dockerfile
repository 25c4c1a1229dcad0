# closedloop daemon image. Secrets come from the environment only (never baked in):
#   docker run -e CLOSEDLOOP_HUBSPOT_TOKEN=... -v $PWD/closedloop.toml:/etc/closedloop/closedloop.toml \
#              -p 8700:8700 closedloop
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --system --home-dir /var/lib/closedloop --create-home closedloop
WORKDIR /opt/closedloop
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY adapters ./adapters
COPY mappings ./mappings
COPY state ./state
COPY sandbox ./sandbox
RUN pip install .

USER closedloop
WORKDIR /var/lib/closedloop
EXPOSE 8700
# Migrate (a no-op when current; takes a lock, so several replicas can start at once), then run.
CMD ["sh", "-c", "closedloop migrate --config /etc/closedloop/closedloop.toml && exec closedloop run --config /etc/closedloop/closedloop.toml"]
